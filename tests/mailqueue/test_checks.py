"""The mail queue's system checks: an SQLite too old for delivery's claims, or a doors' event loop that
cannot run, is named before it fails."""

from django.core import checks

from mailqueue.checks import event_loop_check, event_loop_errors, sqlite_version_check, sqlite_version_errors

SQLITE = "django.db.backends.sqlite3"


def test_an_sqlite_without_update_returning_is_an_error_naming_its_version():
    [error] = sqlite_version_errors(SQLITE, "3.34.1")

    assert (error.id, error.level) == ("mailqueue.E001", checks.ERROR)
    assert "3.34.1" in error.msg and "3.35.0" in error.msg


def test_a_recent_sqlite_and_postgresql_pass():
    assert sqlite_version_errors(SQLITE, "3.35.0") == []
    assert sqlite_version_errors(SQLITE, "3.40.1") == []
    assert sqlite_version_errors("django.db.backends.postgresql", "3.7.17") == []


def test_the_check_is_registered_and_passes_on_this_machine():
    assert sqlite_version_check in checks.registry.registry.get_checks()
    assert sqlite_version_check() == []


def test_an_event_loop_the_doors_cannot_run_is_an_error():
    [unknown] = event_loop_errors("tokio", uvloop_installed=True)
    [missing] = event_loop_errors("uvloop", uvloop_installed=False)

    assert (unknown.id, unknown.level) == ("mailqueue.E002", checks.ERROR)
    assert "'tokio'" in unknown.msg and "uvloop, asyncio" in unknown.msg
    assert (missing.id, missing.level) == ("mailqueue.E003", checks.ERROR)
    assert "SMTP_EVENT_LOOP=asyncio" in missing.hint
    assert event_loop_errors("uvloop", uvloop_installed=True) == []
    assert event_loop_errors("asyncio", uvloop_installed=False) == []


def test_the_event_loop_check_is_registered_and_passes_with_the_default():
    assert event_loop_check in checks.registry.registry.get_checks()
    assert event_loop_check() == []
