"""The roles of 0003_roles on the rows of 0013: Support views suppressions, complaints and
unattributed bounces; Operators view them too and may remove suppressions (the admin's action,
through suppressions_remove: `delete_suppression` is the right to act, not Django's delete)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MODELS = ["suppression", "complaint", "unattributedbounce"]
SUPPORT = [f"view_{model}" for model in MODELS]
OPERATORS = [*SUPPORT, "delete_suppression"]


def _permissions(apps, codenames):
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.filter(content_type__app_label="mailqueue", codename__in=codenames)


def grant(apps, schema_editor):
    app_config = apps.get_app_config("mailqueue")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = True  # historical app configs need this to get permissions
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    support, _ = Group.objects.get_or_create(name="Support")
    support.permissions.add(*_permissions(apps, SUPPORT))
    operators, _ = Group.objects.get_or_create(name="Operators")
    operators.permissions.add(*_permissions(apps, OPERATORS))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=["Support", "Operators"]):
        group.permissions.remove(*_permissions(apps, OPERATORS))


class Migration(migrations.Migration):
    dependencies = [
        ("mailqueue", "0013_bounces_and_suppressions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
