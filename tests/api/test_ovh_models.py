"""Live answers of the API against OVH's model types (tests/api/fixtures/ovh_models.json)."""

import json
from pathlib import Path

import jsonschema
import pytest

from mailqueue.blocking import mail_service_auto_block, mail_service_unblock
from mailqueue.state import Actor
from tests.factories import DeliveryErrorFactory

pytestmark = pytest.mark.django_db

MODELS = json.loads((Path(__file__).parent / "fixtures" / "ovh_models.json").read_text())


def check(instance, model: str) -> None:
    jsonschema.validate(instance, {"$ref": f"#/$defs/{model}", "$defs": MODELS["$defs"]})


def test_hosting_email_bounces_volumes_and_credential_have_ovhs_types(api, hosting):
    DeliveryErrorFactory(hosting=hosting)
    base = f"/hosting/web/{hosting.service_name}"

    check(api.get(base).json(), "hosting.web.Service")
    check(api.get(f"{base}/email").json(), "hosting.web.email")
    [bounce] = api.get(f"{base}/email/bounces").json()
    check(bounce, "hosting.web.email.Bounce")
    volumes = api.get(f"{base}/email/volumes").json()
    assert len(volumes) == 30
    for volume in volumes:
        check(volume, "hosting.web.email.VolumeHistory")
    check(api.get("/auth/currentCredential").json(), "api.Credential")


@pytest.mark.parametrize("reason", ["bounce", "spam", "rate"])
def test_every_state_is_one_of_ovhs(api, hosting, reason):
    mail_service_auto_block(hosting=hosting, reason=reason)
    check(api.get(f"/hosting/web/{hosting.service_name}/email").json(), "hosting.web.email")
    if reason == "bounce":
        mail_service_unblock(hosting=hosting, actor=Actor.api("test"))
        email = api.get(f"/hosting/web/{hosting.service_name}/email").json()
        check(email, "hosting.web.email")
        assert email["state"] == "force"


def test_the_schema_catches_a_wrong_type():
    with pytest.raises(jsonschema.ValidationError):
        check({"date": "2026-12-01", "volume": 3}, "hosting.web.email.VolumeHistory")  # a date, not a datetime
    with pytest.raises(jsonschema.ValidationError):
        check({"serviceName": "a.fr", "plan": "perso", "customer": "acme"}, "hosting.web.Service")
