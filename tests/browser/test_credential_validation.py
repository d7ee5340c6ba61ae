"""The consumer-key flow of SPEC §9.3 end to end, in headless Chromium against the live server: the
script of docs/API.md (the official client README's, aimed at this API) asks for a read-only key,
a person validates it on the portal's page, and the script goes on within its rules."""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import ovh
import pytest
from django.utils import timezone
from rest_framework.throttling import SimpleRateThrottle

from api.models import ConsumerKey, CredentialStatus
from api.services import api_application_create
from tests.browser.conftest import CHROMIUM
from tests.factories import TEST_PASSWORD, CustomerFactory, HostingFactory, MembershipFactory

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

API_MD = Path(__file__).resolve().parents[2] / "docs" / "API.md"
SCRIPT_MARKER = "<!-- the consumer-key script, run by tests/browser/test_credential_validation.py -->"
DOCUMENTED_ENDPOINT = "http://127.0.0.1:8000/1.0"
DOCUMENTED_REDIRECTION = "https://my-tool.example/validated"


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)


@pytest.fixture(autouse=True)
def _generous_rates(monkeypatch):
    """The anonymous rate is per address, and every test's live server is 127.0.0.1: not these tests' subject."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100000/minute", "user": "100000/minute"})


@pytest.fixture
def landing_page():
    """The application's own page, where the browser goes once the key is validated: a tiny local server."""
    visits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            visits.append(self.path)
            body = b"<!DOCTYPE html><html><head><title>My tool</title></head><body><h1>Thanks!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/validated?from=portal", visits=visits)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def acme():
    """alice, member of acme (acme-shop.fr) and of a second customer; acme's developer made an application."""
    acme = CustomerFactory(slug="acme", name="ACME")
    alice = MembershipFactory(user__username="alice", customer=acme).user
    MembershipFactory(user=alice, customer=CustomerFactory(slug="acme-labs", name="ACME Labs"))
    HostingFactory(service_name="acme-shop.fr", customer=acme)
    HostingFactory(service_name="someone-else.example")
    application = api_application_create(customer=acme, name="Mail dashboard", description="Reads your mail state")
    return SimpleNamespace(customer=acme, user=alice, application=application)


def validate_in_the_browser(page, validation_url: str, *, customer: str, lifetime: str, button="Valider") -> None:
    """What the person does with the validationUrl: log in, check, choose, validate (or refuse)."""
    page.goto(validation_url)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/api-credentials/validate/"))
    page.get_by_label("Identifiant").fill("alice")
    page.get_by_label("Mot de passe").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Valider un accès à l’API")).to_be_visible()
    expect(page.locator("#request")).to_contain_text("Mail dashboard")
    expect(page.locator("#request")).to_contain_text("Reads your mail state")
    expect(page.locator("#rules")).to_contain_text("/1.0/hosting/web/*")
    page.get_by_label("Pour le compte client").select_option(label=customer)
    page.get_by_label(lifetime).check()
    page.get_by_role("button", name=button, exact=True).click()


def test_the_documented_script_runs_against_the_portal(acme, live_server, new_page, landing_page, monkeypatch):
    """docs/API.md's script, as written but for the addresses and keys: request → validation in
    Chromium → calls within the rules (a read, and a write it is not granted)."""
    documented = API_MD.read_text(encoding="utf-8").split(SCRIPT_MARKER, 1)[1]
    script = re.search(r"```python\n(.*?)```", documented, re.S).group(1)
    for documented_value, value in [
        (DOCUMENTED_ENDPOINT, f"{live_server.url}/1.0"),
        ("APPLICATION_KEY", acme.application.application_key),
        ("APPLICATION_SECRET", acme.application.application_secret),
        (DOCUMENTED_REDIRECTION, landing_page.url),
    ]:
        assert documented_value in script
        script = script.replace(documented_value, value)
    monkeypatch.setitem(ovh.client.ENDPOINTS, "portal", "")  # the script's own registration is undone afterwards
    printed = []
    page = new_page()

    def press_enter(prompt=""):
        [validation_url] = re.findall(r"Please visit (\S+) to authenticate", "\n".join(printed))
        validate_in_the_browser(page, validation_url, customer="ACME", lifetime="30 jours")
        page.wait_for_url(landing_page.url)
        expect(page.get_by_role("heading", name="Thanks!")).to_be_visible()
        return ""

    exec(script, {"print": lambda *words: printed.append(" ".join(map(str, words))), "input": press_enter})  # noqa: S102

    assert [visit for visit in landing_page.visits if visit != "/favicon.ico"] == ["/validated?from=portal"]
    output = "\n".join(printed)
    assert "Welcome acme-shop.fr ok" in output
    assert "someone-else.example" not in output
    assert re.search(r"Read-only, as asked: .*", output)
    key = ConsumerKey.objects.get()
    assert re.search(rf"your 'consumerKey' is '{re.escape(key.key_prefix)}[\w-]+'", output)
    assert (key.status, key.customer, key.validated_by) == (CredentialStatus.VALIDATED, acme.customer, acme.user)
    assert key.expires_at > timezone.now() + timezone.timedelta(days=29)
    assert key.access_rules == [{"method": "GET", "path": "/hosting/web"}, {"method": "GET", "path": "/hosting/web/*"}]


def test_refusing_in_the_browser(acme, live_server, new_page, landing_page, monkeypatch):
    monkeypatch.setitem(ovh.client.ENDPOINTS, "portal-test", f"{live_server.url}/1.0")
    client = ovh.Client(
        endpoint="portal-test",
        application_key=acme.application.application_key,
        application_secret=acme.application.application_secret,
    )
    request = client.new_consumer_key_request()
    request.add_rules(ovh.API_READ_WRITE, "/hosting/web/*")
    validation = request.request(redirect_url=landing_page.url)
    page = new_page()
    validate_in_the_browser(
        page, validation["validationUrl"], customer="ACME Labs", lifetime="1 heure", button="Refuser"
    )
    expect(page.locator("#outcome")).to_contain_text("Vous avez refusé cet accès")
    assert landing_page.visits == [], "a refusal stays on the portal"
    page.goto(validation["validationUrl"])
    expect(page.locator("#outcome")).to_contain_text("Ce lien de validation a déjà servi.")
    assert ConsumerKey.objects.get().status == CredentialStatus.REFUSED
    with pytest.raises(ovh.exceptions.InvalidCredential):
        client.get("/hosting/web/acme-shop.fr/email")
