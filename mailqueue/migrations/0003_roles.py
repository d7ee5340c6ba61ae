"""Operator roles: Support (view everything) and Operators (view and act)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ["hosting", "mailqueue", "reports"]


def create_roles(apps, schema_editor):
    for label in [*APPS, "auth"]:
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # historical app configs need this to get permissions
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_")
    support, _ = Group.objects.get_or_create(name="Support")
    support.permissions.add(*view)
    operators, _ = Group.objects.get_or_create(name="Operators")
    operators.permissions.add(*view, Permission.objects.get(codename="act_on_mailservice"))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Support", "Operators"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("mailqueue", "0002_mailservice_act_permission"),
        ("hosting", "0001_initial"),
        ("reports", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
