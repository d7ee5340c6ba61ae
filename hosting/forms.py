"""Forms of the hosting app."""

from django import forms

from hosting.models import Hosting
from hosting.names import ServiceNameError
from hosting.services import hosting_service_name_clean


class HostingForm(forms.ModelForm):
    """The operators' hosting form: the service name is checked and stored as `hosting_create` does."""

    class Meta:
        model = Hosting
        fields = ["service_name", "customer", "plan"]

    def clean_service_name(self):
        try:
            return hosting_service_name_clean(
                service_name=self.cleaned_data["service_name"], exclude_pk=self.instance.pk
            )
        except ServiceNameError as error:
            raise forms.ValidationError(error.message) from None
