from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailqueueConfig(AppConfig):
    name = "mailqueue"
    verbose_name = _("Scripts e-mail")

    def ready(self) -> None:
        from mailqueue import checks  # noqa: F401 (registers the system checks)
