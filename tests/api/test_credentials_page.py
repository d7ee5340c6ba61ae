"""The portal's API credentials page: secrets shown once, digests and ciphertext at rest, revocation."""

import datetime
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone

from api import keys
from api.models import ApiApplication, ApiToken, ConsumerKey
from api.services import api_credentials_create, consumer_key_validate
from tests.api.conftest import ApiClient, email_path, record_of, request_key, signed
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/api-credentials/"


def secrets_in(html: str) -> dict:
    return dict(
        re.findall(r"<dt>(application_key|application_secret|consumer_key|token)</dt><dd><code>([^<]+)</code>", html)
    )


def all_database_text() -> str:
    """Every column of every API credential row, as text."""
    rows = []
    with connection.cursor() as cursor:
        for model in (ApiApplication, ConsumerKey, ApiToken):
            cursor.execute(f"SELECT * FROM {model._meta.db_table}")
            rows += [" ".join(str(value) for value in row) for row in cursor.fetchall()]
    return "\n".join(rows)


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner[0])
    return client


def test_create_shows_the_four_secrets_once(logged_in, owner, hosting):
    page = logged_in.post(URL, {"name": "deploy script", "customer": owner[1].pk})
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    shown = secrets_in(page.content.decode())
    assert set(shown) == {"application_key", "application_secret", "consumer_key", "token"}
    assert all(len(value) >= 16 for value in shown.values())
    later = logged_in.get(URL).content.decode()
    assert secrets_in(later) == {}
    for name in ("application_secret", "consumer_key", "token"):
        assert shown[name] not in later
    assert "deploy script" in later
    # and they work
    credentials = type("Shown", (), shown)
    api = ApiClient(logged_in, credentials)
    assert api.get("/hosting/web").json() == [hosting.service_name]
    assert api.get("/hosting/web", auth="bearer").json() == [hosting.service_name]


def test_only_digests_and_ciphertext_are_stored(logged_in, owner):
    shown = secrets_in(logged_in.post(URL, {"name": "x", "customer": owner[1].pk}).content.decode())
    stored = all_database_text()
    for name in ("application_secret", "consumer_key", "token"):
        assert shown[name] not in stored, name
    application = ApiApplication.objects.get(application_key=shown["application_key"])
    assert ConsumerKey.objects.get(application=application).key_hash == keys.digest(shown["consumer_key"])
    assert ApiToken.objects.get().token_hash == keys.digest(shown["token"])
    assert application.secret_encrypted != shown["application_secret"]
    assert keys.decrypt(application.secret_encrypted) == shown["application_secret"]


def test_customer_choice_is_limited_to_the_users_customers(logged_in, other_hosting):
    page = logged_in.post(URL, {"name": "x", "customer": other_hosting.customer.pk})
    assert page.status_code == 400
    assert secrets_in(page.content.decode()) == {}
    assert not ApiApplication.objects.exists()


def created_on_the_page(client, owner, name: str):
    """The credentials as the page shows them once, with attribute access as ApiClient wants."""
    shown = secrets_in(client.post(URL, {"name": name, "customer": owner[1].pk}).content.decode())
    return type("Shown", (), shown)


def test_revoking_an_application_revokes_its_consumer_keys_and_its_token(logged_in, owner):
    """Before, the bearer token created with a revoked application kept working."""
    revoked = ApiClient(logged_in, created_on_the_page(logged_in, owner, "leaked"))
    kept = ApiClient(logged_in, created_on_the_page(logged_in, owner, "other"))
    assert revoked.get("/hosting/web", auth="bearer").status_code == 200
    application = ApiApplication.objects.get(name="leaked")

    response = logged_in.post(f"/api-credentials/applications/{application.pk}/revoke/")

    assert response.status_code == 302
    assert revoked.get("/hosting/web").json()["errorCode"] == "INVALID_KEY"
    assert revoked.get("/hosting/web", auth="bearer").json()["errorCode"] == "INVALID_CREDENTIAL"
    assert kept.get("/hosting/web").status_code == 200, "another application's credentials are untouched"
    assert kept.get("/hosting/web", auth="bearer").status_code == 200
    assert ApiToken.objects.get(name="leaked").revoked_at == ApiApplication.objects.get(name="leaked").revoked_at


def test_revoke_a_token_alone(logged_in, owner):
    created = api_credentials_create(customer=owner[1])
    api = ApiClient(logged_in, created)
    token = ApiToken.objects.get()
    logged_in.post(f"/api-credentials/tokens/{token.pk}/revoke/")
    assert api.get("/hosting/web", auth="bearer").json()["errorCode"] == "INVALID_CREDENTIAL"
    assert api.get("/hosting/web").status_code == 200, "the application's signed requests go on"
    page = logged_in.get(URL).content.decode()
    assert "révoqué" in page


def test_another_customers_credentials_cannot_be_revoked(logged_in, other_hosting):
    foreign = api_credentials_create(customer=other_hosting.customer)
    application = ApiApplication.objects.get()
    token = ApiToken.objects.get()
    assert logged_in.post(f"/api-credentials/applications/{application.pk}/revoke/").status_code == 404
    assert logged_in.post(f"/api-credentials/tokens/{token.pk}/revoke/").status_code == 404
    application.refresh_from_db()
    token.refresh_from_db()
    assert application.revoked_at is None and token.revoked_at is None
    assert ApiClient(logged_in, foreign).get("/hosting/web").status_code == 200
    page = logged_in.get(URL).content.decode()
    assert foreign.application_key not in page


def test_anonymous_is_sent_to_login(client, credentials):
    for method, path in [
        ("get", URL),
        ("post", URL),
        ("post", f"/api-credentials/applications/{ApiApplication.objects.get().pk}/revoke/"),
        ("post", f"/api-credentials/tokens/{ApiToken.objects.get().pk}/revoke/"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert ApiApplication.objects.get().revoked_at is None


def test_csrf_is_enforced(owner, credentials):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner[0])
    application = ApiApplication.objects.get()
    assert client.post(URL, {"name": "x", "customer": owner[1].pk}).status_code == 403
    assert client.post(f"/api-credentials/applications/{application.pk}/revoke/").status_code == 403
    assert ApiApplication.objects.count() == 1
    assert ApiApplication.objects.get().revoked_at is None


def test_user_of_two_customers_creates_for_the_chosen_one(logged_in, owner):
    second = MembershipFactory(user=owner[0]).customer
    shown = secrets_in(logged_in.post(URL, {"name": "x", "customer": second.pk}).content.decode())
    assert ApiApplication.objects.get(application_key=shown["application_key"]).customer == second


# --- applications and consumer keys (SPEC §9.3) ------------------------------------------------


def test_create_an_application_shows_its_key_and_secret_once(logged_in, owner):
    page = logged_in.post(
        "/api-credentials/applications/new/",
        {
            "application-name": "Dashboard",
            "application-description": "Reads the mail",
            "application-customer": owner[1].pk,
        },
    )
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    shown = secrets_in(page.content.decode())
    assert set(shown) == {"application_key", "application_secret"}
    application = ApiApplication.objects.get(application_key=shown["application_key"])
    assert (application.customer, application.name, application.description) == (
        owner[1],
        "Dashboard",
        "Reads the mail",
    )
    assert keys.decrypt(application.secret_encrypted) == shown["application_secret"]
    assert not ConsumerKey.objects.exists(), "its consumer keys are asked for by the application itself"
    later = logged_in.get(URL).content.decode()
    assert shown["application_secret"] not in later
    assert "Dashboard" in later and "Reads the mail" in later


def test_an_application_is_created_for_one_of_the_users_customers_only(logged_in, other_hosting):
    page = logged_in.post(
        "/api-credentials/applications/new/",
        {"application-name": "x", "application-customer": other_hosting.customer.pk},
    )
    assert page.status_code == 400
    assert not ApiApplication.objects.exists()


def keys_table(client) -> str:
    page = client.get(URL).content.decode()
    return re.search(r'<table class="table" id="consumer-keys">(.*?)</table>', page, re.S).group(1)


def test_consumer_keys_are_listed_with_rules_status_expiry_and_last_use(logged_in, client, owner, hosting, application):
    pending = request_key(client, application.key).json()["consumerKey"]
    validated = request_key(client, application.key, rules=[{"method": "PUT", "path": "/hosting/web/*/email"}])
    validated_key = validated.json()["consumerKey"]
    consumer_key_validate(
        consumer_key=record_of(validated_key), user=owner[0], customer=owner[1], lifetime=datetime.timedelta(days=1)
    )
    signed(client, application, validated_key).put(email_path(hosting), {"email": "ops@example.org"})
    table = keys_table(logged_in)
    assert f"{pending[:6]}…" in table and "en attente de validation" in table
    assert f"{validated_key[:6]}…" in table and "validée" in table
    assert "PUT /hosting/web/*/email" in table
    assert "GET /hosting/web/*" in table
    expires = formats.date_format(timezone.localtime(record_of(validated_key).expires_at), "SHORT_DATETIME_FORMAT")
    last_use = formats.date_format(timezone.localtime(record_of(validated_key).last_used_at), "SHORT_DATETIME_FORMAT")
    assert expires in table and last_use in table
    assert "Tous les appels du client" not in table  # no whole credentials here
    api_credentials_create(customer=owner[1])
    assert "Tous les appels du client" in keys_table(logged_in)
    ConsumerKey.objects.filter(key_hash=keys.digest(validated_key)).update(expires_at=timezone.now())
    assert "expirée" in keys_table(logged_in)


def test_revoke_a_consumer_key(logged_in, client, owner, hosting, application):
    consumer_key = request_key(client, application.key).json()["consumerKey"]
    record = record_of(consumer_key)
    consumer_key_validate(consumer_key=record, user=owner[0], customer=owner[1], lifetime=None)
    api = signed(client, application, consumer_key)
    assert api.get(email_path(hosting)).status_code == 200
    response = logged_in.post(f"/api-credentials/keys/{record.pk}/revoke/")
    assert response.status_code == 302
    assert api.get(email_path(hosting)).json()["errorCode"] == "INVALID_CREDENTIAL"
    assert record_of(consumer_key).status == "revoked"
    assert "révoquée" in keys_table(logged_in)


def test_a_key_validated_for_another_customer_is_that_customers_business(logged_in, client, owner, application):
    """The application is the owner's; a stranger validated a key of it for their own customer."""
    stranger = MembershipFactory()
    consumer_key = request_key(client, application.key).json()["consumerKey"]
    record = record_of(consumer_key)
    consumer_key_validate(consumer_key=record, user=stranger.user, customer=stranger.customer, lifetime=None)
    assert f"{consumer_key[:6]}…" not in keys_table(logged_in)
    assert stranger.customer.name not in logged_in.get(URL).content.decode()
    assert logged_in.post(f"/api-credentials/keys/{record.pk}/revoke/").status_code == 404
    assert record_of(consumer_key).status == "validated"
    theirs = Client()
    theirs.force_login(stranger.user)
    assert f"{consumer_key[:6]}…" in keys_table(theirs)
    assert theirs.post(f"/api-credentials/keys/{record.pk}/revoke/").status_code == 302
    assert record_of(consumer_key).status == "revoked"


def test_another_customers_keys_and_applications_are_404(logged_in, client, other_hosting):
    foreign = api_credentials_create(customer=other_hosting.customer)
    record = record_of(foreign.consumer_key)
    assert logged_in.post(f"/api-credentials/keys/{record.pk}/revoke/").status_code == 404
    assert record_of(foreign.consumer_key).status == "validated"
    assert f"{foreign.consumer_key[:6]}…" not in keys_table(logged_in)


def test_the_new_forms_need_csrf_and_a_login(client, owner, application):
    record = record_of(request_key(client, application.key).json()["consumerKey"])
    for path in ("/api-credentials/applications/new/", f"/api-credentials/keys/{record.pk}/revoke/"):
        response = Client().post(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(owner[0])
        assert strict.post(path, {"application-name": "x", "application-customer": owner[1].pk}).status_code == 403
    assert ApiApplication.objects.count() == 1
    assert ConsumerKey.objects.get(pk=record.pk).status == "pendingValidation"


def test_the_page_costs_the_same_queries_with_more_keys(logged_in, client, owner, application):
    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert logged_in.get(URL).status_code == 200
        return len(captured)

    api_credentials_create(customer=owner[1])
    request_key(client, application.key)
    few = count()
    for _ in range(5):
        api_credentials_create(customer=owner[1])
        request_key(client, application.key)
    assert count() == few
