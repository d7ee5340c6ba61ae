"""What `make run` shows: one log line per request and per platform e-mail, a favicon, no 404 for it."""

import logging
import logging.config

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from portal.log_filters import ApiAccessLineDropped
from portal.mail_backends import EmlFileBackend


def test_the_favicon_is_served_without_a_404(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an icon file
    assert "max-age" in response["Cache-Control"]  # asked once a day, not on every page


def test_the_favicon_is_read_only(client):
    assert client.post("/favicon.ico").status_code == 405


def test_a_platform_email_is_one_file_and_one_info_line(tmp_path, caplog, settings):
    settings.EMAIL_BACKEND = "portal.mail_backends.EmlFileBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    message = EmailMultiAlternatives("[acme-shop.fr] Rapport d’erreurs", "Bonjour,\n", to=["contact@acme.example"])
    message.attach_alternative("<p>Bonjour,</p>", "text/html")

    with caplog.at_level(logging.DEBUG):
        sent = mail.get_connection().send_messages([message, message])

    assert sent == 2
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 2
    assert b"To: contact@acme.example" in files[0].read_bytes()
    assert b"Bonjour," in files[0].read_bytes()
    lines = [record for record in caplog.records if record.name == "portal.mail"]
    assert [record.levelname for record in lines] == ["INFO", "INFO"]
    assert "contact@acme.example" in lines[0].getMessage()
    assert str(files[0]) in lines[0].getMessage() or str(files[1]) in lines[0].getMessage()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_message_without_recipients_is_not_written(tmp_path):
    assert EmlFileBackend(file_path=tmp_path).send_messages([EmailMultiAlternatives("Nobody", "…")]) == 0
    assert list(tmp_path.iterdir()) == []


def access_record(name: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, '"%s" %s %s', args, None)


@pytest.mark.parametrize(
    ("request_line", "kept"),
    [
        ("GET /1.0/hosting/web HTTP/1.1", False),
        ("GET /1.0 HTTP/1.1", False),
        ("GET /1.0?x=1 HTTP/1.1", False),
        ("GET /1.0.html HTTP/1.1", True),
        ("GET /accounts/login/ HTTP/1.1", True),
        ("GET /favicon.ico HTTP/1.1", True),
    ],
)
def test_runserver_access_lines_of_the_api_are_dropped(request_line, kept):
    """api.requests logs each /1.0/ request with its query id: the access line would be a second one."""
    assert ApiAccessLineDropped().filter(access_record("django.server", request_line, "200", "12")) is kept


@pytest.mark.parametrize(("path", "kept"), [("/1.0/me/webhooks", False), ("/admin/", True)])
def test_gunicorn_access_lines_of_the_api_are_dropped(path, kept):
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%(r)s %(s)s", ({"U": path, "r": "…", "s": "200"},), None
    )

    assert ApiAccessLineDropped().filter(record) is kept


def test_a_request_is_logged_once_in_the_one_format():
    """Django's own console handler and runserver's are gone: everything goes through the root's."""
    # As Django configures it at start (a Celery worker started by an earlier test re-formats the root's).
    logging.config.dictConfig(settings.LOGGING)
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django.server").handlers == []
    assert logging.getLogger("django.server").propagate
    [console] = [handler for handler in logging.getLogger().handlers if type(handler) is logging.StreamHandler]
    assert console.formatter._fmt == "%(asctime)s %(levelname)s %(name)s %(message)s"
