"""The interactive API docs render under the Content-Security-Policy (no inline script)."""

import pytest
from playwright.sync_api import expect
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _generous_rates(monkeypatch):
    """The docs page and its schema count against the anonymous rate; earlier tests of the
    session from the same address must not have spent it."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100000/minute", "user": "100000/minute"})


def test_the_api_docs_render_and_list_the_endpoints(new_page):
    page = new_page()
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )

    response = page.goto("/1.0/docs/")

    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hosting portal API")
    expect(
        page.locator(".opblock-summary-path").filter(has_text="/1.0/hosting/web/{service_name}/email/request")
    ).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    assert refused == []
