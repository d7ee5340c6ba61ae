"""No input gets a server error: malformed JSON, wrong content types, huge values, non-UTF-8 bytes."""

import pytest

from mailqueue.models import Event, Message
from tests.api.conftest import email_path

pytestmark = pytest.mark.django_db

BAD_BODIES = [
    ("application/json", b"{"),
    ("application/json", b'{"email": '),
    ("application/json", b"\xff\xfe\x00garbage"),
    ("application/json", b'{"email": "\xe9t\xe9@example.org"}'),
    ("application/json", b'{"action": "BLOCK"' + b" " * 10 + b"}" * 3),
    ("application/json", b"[" * 5000 + b"]" * 5000),
    ("application/json", b'{"email": 1' + b"0" * 5000 + b"}"),
    ("application/json", b'{"email": 1e999}'),
    ("application/json", b"null"),
    ("application/json", b"42"),
    ("application/json", b'"\\ud800"'),
    ("application/json", b'{"email": "\\u0000@example.org"}'),
    ("application/json", b'{"action": "\\u0000"}'),
    ("application/json", b'{"recipients": ["a@example.org"], "message": "' + b"x" * 100_000 + b'\\ud800"}'),
    ("text/plain", b"email=a@example.org"),
    ("application/xml", b"<email>a@example.org</email>"),
    ("application/x-www-form-urlencoded", b"email=%ff%fe&action=\xff"),
    ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\n\xff\r\n--x--'),
    ("multipart/form-data", b"no boundary"),
    ("", b"\x00\x01\x02"),
    ("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % n for n in range(2000))),
]
WRITES = [("PUT", "/email"), ("POST", "/email/request"), ("POST", "/email/messages")]


@pytest.mark.parametrize("auth", ["sign", "bearer"])
@pytest.mark.parametrize(("content_type", "body"), BAD_BODIES)
@pytest.mark.parametrize(("method", "suffix"), WRITES)
def test_malformed_bodies_are_client_errors(api, hosting, auth, content_type, body, method, suffix):
    response = api.call(
        method, f"/hosting/web/{hosting.service_name}{suffix}", body=body, content_type=content_type, auth=auth
    )
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()) >= {"message"}
    assert not Message.objects.exists()
    assert not Event.objects.exists()


HUGE_QUERIES = [
    "/email/bounces?limit=" + "9" * 10_000,
    "/email/bounces?limit=%00",
    "/email/bounces?limit=1&limit=2",
    "/email/messages?status=%00",
    "/email/messages?status=" + "x" * 10_000,
    "/email/messages?pageSize=" + "9" * 10_000,
    "/email/messages?pageSize=-1",
    "/email/messages?cursor=" + "A" * 10_000,
    "/email/events?cursor=%ff%fe",
    "/email/events?pageSize=%00",
]


@pytest.mark.parametrize("suffix", HUGE_QUERIES)
def test_odd_query_strings_never_fail_the_server(api, hosting, suffix):
    response = api.get(f"/hosting/web/{hosting.service_name}{suffix}")
    # A NUL byte anywhere in a URL is a 404 (no name or value of the product holds one).
    assert response.status_code in ((404,) if "%00" in suffix else (200, 400)), response.content
    if response.status_code != 200:
        assert set(response.json()) == {"message"}


@pytest.mark.parametrize(
    "service_name", ["%00", "a%00b", "x" * 5000, "%ff%fe", "%C3%A9t%C3%A9.fr", "..", "a%20b", "%2F"]
)
def test_odd_service_names_are_404(api, service_name):
    for suffix in ("", "/email", "/email/events"):
        response = api.get(f"/hosting/web/{service_name}{suffix}", auth="bearer")
        assert response.status_code == 404, (suffix, response.content)
        assert set(response.json()) == {"message"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"HTTP_X_OVH_APPLICATION": "\x00"}, (403, "INVALID_KEY")),
        ({"HTTP_X_OVH_APPLICATION": "k" * 5000, "HTTP_X_OVH_CONSUMER": "c"}, (403, "INVALID_KEY")),
        ({"HTTP_X_OVH_APPLICATION": "k", "HTTP_X_OVH_CONSUMER": "c"}, (403, "INVALID_KEY")),
        (
            {"HTTP_X_OVH_APPLICATION": "k", "HTTP_X_OVH_CONSUMER": "c", "HTTP_X_OVH_TIMESTAMP": "9" * 5000},
            (403, "INVALID_KEY"),
        ),
        ({"HTTP_X_OVH_APPLICATION": "{app}", "HTTP_X_OVH_CONSUMER": "c"}, (400, "QUERY_TIME_OUT")),
        (
            {"HTTP_X_OVH_APPLICATION": "{app}", "HTTP_X_OVH_CONSUMER": "c", "HTTP_X_OVH_TIMESTAMP": "9" * 5000},
            (400, "QUERY_TIME_OUT"),
        ),
        (
            {
                "HTTP_X_OVH_APPLICATION": "{app}",
                "HTTP_X_OVH_CONSUMER": "c\x00",
                "HTTP_X_OVH_TIMESTAMP": "{now}",
                "HTTP_X_OVH_SIGNATURE": "s",
            },
            (400, "INVALID_SIGNATURE"),
        ),
        ({"HTTP_AUTHORIZATION": "Bearer \x00"}, (403, "INVALID_CREDENTIAL")),
        ({"HTTP_AUTHORIZATION": "Bearer " + "x" * 10_000}, (403, "INVALID_CREDENTIAL")),
        ({"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="}, (401, None)),
    ],
)
def test_odd_auth_headers_are_refused_as_ovh_does(api, headers, expected):
    import time

    values = {"app": api.credentials.application_key, "now": str(int(time.time()))}
    headers = {name: value.format(**values) if "{" in value else value for name, value in headers.items()}
    response = api.call("GET", "/hosting/web", auth="none", **headers)
    status, error_code = expected
    assert response.status_code == status, response.content
    assert response.json().get("errorCode") == error_code
    assert response.json()["message"]


def test_unsupported_method_is_405_with_message(api, hosting):
    response = api.call("DELETE", email_path(hosting))
    assert response.status_code == 405
    assert set(response.json()) == {"message"}


def test_unknown_api_path_is_a_json_404(api):
    for path in ("/nope", "/hosting/web/a/b/c", "/hosting"):
        response = api.get(path, auth="none")
        assert response.status_code == 404
        assert set(response.json()) == {"message"}


@pytest.mark.django_db
def test_a_non_ascii_signature_is_a_400_not_a_500(client):
    from api.services import api_credentials_create
    from tests.factories import CustomerFactory

    credentials = api_credentials_create(customer=CustomerFactory(), name="x")
    response = client.get(
        "/1.0/hosting/web",
        HTTP_X_OVH_APPLICATION=credentials.application_key,
        HTTP_X_OVH_CONSUMER=credentials.consumer_key,
        HTTP_X_OVH_TIMESTAMP=str(int(__import__("time").time())),
        HTTP_X_OVH_SIGNATURE="$1$é" + "0" * 39,
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_SIGNATURE"
