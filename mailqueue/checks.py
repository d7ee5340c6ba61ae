"""System checks (`manage.py check`, and before every command that checks): what the mail queue
needs of its database and of its doors' event loop."""

import importlib.util
import sqlite3

from django.conf import settings
from django.core import checks

# Delivery claims with UPDATE … RETURNING (mailqueue.claims), which SQLite has since 3.35 (2021).
SQLITE_LEAST = (3, 35, 0)


@checks.register(checks.Tags.compatibility)
def sqlite_version_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """An error when the embedded database is an SQLite older than delivery needs."""
    return sqlite_version_errors(settings.DATABASES["default"]["ENGINE"], sqlite3.sqlite_version)


def sqlite_version_errors(engine: str, version: str) -> list[checks.CheckMessage]:
    """`sqlite_version_check` for this database engine and this SQLite library version."""
    if not engine.endswith("sqlite3") or tuple(int(part) for part in version.split(".")) >= SQLITE_LEAST:
        return []
    return [
        checks.Error(
            f"SQLite {version} is too old for delivery (UPDATE … RETURNING needs "
            f"{'.'.join(map(str, SQLITE_LEAST))} or later).",
            hint="Use Python's SQLite of Debian 12 or later, or PostgreSQL (DATABASE_URL).",
            id="mailqueue.E001",
        )
    ]


# SMTP_EVENT_LOOP's choices (mailqueue.smtpd_server.door_loop_new).
EVENT_LOOPS = ("uvloop", "asyncio")


@checks.register(checks.Tags.compatibility)
def event_loop_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """An error when SMTP_EVENT_LOOP names no loop the doors can run."""
    return event_loop_errors(settings.SMTP_EVENT_LOOP, uvloop_installed=importlib.util.find_spec("uvloop") is not None)


def event_loop_errors(name: str, *, uvloop_installed: bool) -> list[checks.CheckMessage]:
    if name not in EVENT_LOOPS:
        return [
            checks.Error(
                f"SMTP_EVENT_LOOP is {name!r}: the doors' event loop is one of {', '.join(EVENT_LOOPS)}.",
                id="mailqueue.E002",
            )
        ]
    if name == "uvloop" and not uvloop_installed:
        return [
            checks.Error(
                "SMTP_EVENT_LOOP is 'uvloop', which is not installed.",
                hint="pip install -r requirements.txt, or SMTP_EVENT_LOOP=asyncio.",
                id="mailqueue.E003",
            )
        ]
    return []
