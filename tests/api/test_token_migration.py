"""Migrations of existing credentials: api 0002 links the tokens made before it to the application
created with them, so that revoking one of those applications from now on revokes its token too;
api 0004 keeps the consumer keys made before the consumer-key flow working, with every call.

Each test ends on the latest migration, so that the tests after it find the current schema."""

import datetime
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from api import keys
from api.models import ApiApplication, ApiToken, ConsumerKey
from api.services import api_application_revoke
from hosting.models import Customer
from tests.api.conftest import ApiClient
from tests.factories import HostingFactory

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE, AFTER = ("api", "0001_initial"), ("api", "0002_token_application")
LATEST = ("api", "0005_validate_existing_keys")


def migrate_to(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def test_existing_tokens_are_linked_to_the_application_made_with_them():
    old = migrate_to(BEFORE)
    try:
        Customer = old.get_model("hosting", "Customer")
        Application, Token = old.get_model("api", "ApiApplication"), old.get_model("api", "ApiToken")
        customer = Customer.objects.create(slug="acme", name="ACME", contact_email="it@acme.example")
        made_at = timezone.now() - datetime.timedelta(days=30)
        for number, name in enumerate(["deploy", "backup"]):
            application = Application.objects.create(
                customer=customer, name=name, application_key=f"app-{number}", secret_encrypted="x"
            )
            token = Token.objects.create(customer=customer, name=name, token_hash=f"hash-{number}", token_prefix="t")
            Application.objects.filter(pk=application.pk).update(created_at=made_at)
            Token.objects.filter(pk=token.pk).update(created_at=made_at + datetime.timedelta(milliseconds=3))
        lone = Token.objects.create(customer=customer, name="deploy", token_hash="hash-lone", token_prefix="t")
    finally:
        migrate_to(LATEST)

    linked = dict(ApiToken.objects.values_list("token_hash", "application__application_key"))
    assert linked == {"hash-0": "app-0", "hash-1": "app-1", "hash-lone": None}, "a token made later is its own"
    api_application_revoke(application=ApiApplication.objects.get(application_key="app-0"))
    revoked = set(ApiToken.objects.filter(revoked_at__isnull=False).values_list("token_hash", flat=True))
    assert revoked == {"hash-0"}
    assert ApiToken.objects.get(pk=lone.pk).revoked_at is None


def test_consumer_keys_made_before_the_flow_stay_working_with_every_call(client):
    old = migrate_to(("api", "0003_english_source_strings"))
    try:
        OldCustomer = old.get_model("hosting", "Customer")
        Application, Key = old.get_model("api", "ApiApplication"), old.get_model("api", "ConsumerKey")
        customer = OldCustomer.objects.create(slug="acme", name="ACME", contact_email="it@acme.example")
        application = Application.objects.create(
            customer=customer, name="deploy", application_key="app-key", secret_encrypted=keys.encrypt("secret")
        )
        Key.objects.create(application=application, key_hash=keys.digest("working-key"), key_prefix="workin")
        revoked = Key.objects.create(application=application, key_hash=keys.digest("revoked-key"), key_prefix="revoke")
        Key.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    finally:
        migrate_to(LATEST)

    working = ConsumerKey.objects.get(key_prefix="workin")
    assert (working.status, working.customer_id, working.expires_at) == ("validated", customer.pk, None)
    assert working.access_rules == [{"method": "*", "path": "/*"}]
    assert working.validated_at == working.created_at
    assert ConsumerKey.objects.get(key_prefix="revoke").status == "revoked"
    HostingFactory(customer=Customer.objects.get(pk=customer.pk), service_name="acme-shop.fr")
    credentials = SimpleNamespace(application_key="app-key", application_secret="secret", consumer_key="working-key")
    assert ApiClient(client, credentials).get("/hosting/web").json() == ["acme-shop.fr"]
    gone = SimpleNamespace(application_key="app-key", application_secret="secret", consumer_key="revoked-key")
    assert ApiClient(client, gone).get("/hosting/web").json()["errorCode"] == "INVALID_CREDENTIAL"
