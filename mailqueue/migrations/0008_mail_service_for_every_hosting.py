"""Every hosting has its mail service row: create the missing ones (active, plan's limits)."""

from django.db import migrations


def mail_services_create(apps, schema_editor):
    Hosting = apps.get_model("hosting", "Hosting")
    MailService = apps.get_model("mailqueue", "MailService")
    missing = Hosting.objects.filter(mail_service__isnull=True).values_list("pk", flat=True)
    MailService.objects.bulk_create([MailService(hosting_id=pk) for pk in list(missing)], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("hosting", "0002_verbose_names"),
        ("mailqueue", "0007_verbose_names"),
    ]

    operations = [migrations.RunPython(mail_services_create, migrations.RunPython.noop)]
