import datetime

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mailqueue.addresses import EMAIL_MAX_LENGTH, email_address_valid
from mailqueue.message_log import DAY_VALIDATORS
from mailqueue.report_recipient import INVALID_ADDRESS


class ErrorsDescribeFieldsForm(forms.Form):
    """A field in error names its message in aria-describedby (`<auto_id>_error` in the template),
    so that a screen reader says why when the field takes the focus."""

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["aria-describedby"] = f"{self[name].auto_id}_error"


class RecipientForm(ErrorsDescribeFieldsForm):
    """The error-report recipient; the texts are the reference UI's (SPEC §5)."""

    email = forms.CharField(
        label=_("E-mail address"),
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "email", "inputmode": "email", "maxlength": EMAIL_MAX_LENGTH}),
    )

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if not email:
            raise ValidationError(_("You must enter an e-mail address."), code="required")
        if len(email) > EMAIL_MAX_LENGTH:
            raise ValidationError(
                _("The e-mail address must not be longer than %(max)d characters."),
                code="max_length",
                params={"max": EMAIL_MAX_LENGTH},
            )
        if not email_address_valid(email):
            raise ValidationError(INVALID_ADDRESS, code="invalid")
        return email


LIMIT_ERROR = _("The number of e-mails must be a whole number between 1 and 100.")


class ErrorLimitForm(ErrorsDescribeFieldsForm):
    """How many delivery errors the page lists: 1–100, 20 by default (SPEC §5, as the API's `limit`)."""

    DEFAULT = 20

    limit = forms.IntegerField(
        label=_("Number of e-mails (max 100):"),
        min_value=1,
        max_value=100,
        initial=DEFAULT,
        error_messages={
            "required": LIMIT_ERROR,
            "invalid": LIMIT_ERROR,
            "min_value": LIMIT_ERROR,
            "max_value": LIMIT_ERROR,
        },
    )


class ErrorsExportForm(forms.Form):
    """The days of the error list's CSV export (SPEC §10.3); by default the retention period."""

    # ISO dates in the field, whatever the language: what a date input reads and writes.
    since = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=DAY_VALIDATORS,
    )
    until = forms.DateField(
        label=_("To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=DAY_VALIDATORS,
    )

    @classmethod
    def with_retention_period(cls) -> "ErrorsExportForm":
        today = timezone.localdate()
        since = today - datetime.timedelta(days=settings.RETENTION_DAYS)
        return cls(initial={"since": since, "until": today}, auto_id="errors_export_%s")

    def period(self) -> tuple[datetime.date, datetime.date | None]:
        """(since, until) once valid; a missing start is the start of the retention period."""
        since = self.cleaned_data.get("since")
        if since is None:
            since = timezone.localdate() - datetime.timedelta(days=settings.RETENTION_DAYS)
        return since, self.cleaned_data.get("until")
