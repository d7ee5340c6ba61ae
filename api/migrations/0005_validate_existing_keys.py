# The data step of 0004, in a migration of its own: on PostgreSQL, updating rows in the
# transaction that created their new indexes fails ("pending trigger events").

from django.db import migrations
from django.db.models import F

EVERY_CALL = [{"method": "*", "path": "/*"}]


def validate_existing_keys(apps, schema_editor):
    """Keys made before the consumer-key flow were whole credentials of their application's
    customer: they stay working, validated for that customer with every call granted."""
    ConsumerKey = apps.get_model("api", "ConsumerKey")
    for application_id, customer_id in (
        ConsumerKey.objects.values_list("application_id", "application__customer_id").distinct().iterator()
    ):
        keys = ConsumerKey.objects.filter(application_id=application_id)
        keys.update(customer_id=customer_id, access_rules=EVERY_CALL, validated_at=F("created_at"))
        keys.filter(revoked_at__isnull=True).update(status="validated")
        keys.filter(revoked_at__isnull=False).update(status="revoked")


class Migration(migrations.Migration):

    dependencies = [
        ("api", "0004_consumer_key_flow"),
    ]

    operations = [
        migrations.RunPython(validate_existing_keys, migrations.RunPython.noop),
    ]
