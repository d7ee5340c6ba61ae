from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _


class RecipientForm(forms.Form):
    """The error-report recipient; the texts are the reference UI's (SPEC §5)."""

    email = forms.CharField(label=_("Adresse e-mail"), max_length=254, required=False)

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if not email:
            raise ValidationError(_("Vous devez saisir une adresse e-mail."), code="required")
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError(_("L'adresse e-mail n'est pas valide."), code="invalid") from None
        return email


class ErrorLimitForm(forms.Form):
    limit = forms.IntegerField(label=_("Nombre d'e-mails (max 100) :"), min_value=1, max_value=100, initial=20)
