"""The doors' database threads: a connection's health checked without a round trip while its
socket is quiet, and by Django's own check once the server has ended it (`db_threads`)."""

import threading
import time

import psycopg
import pytest
from django.db import connection

from mailqueue.db_threads import connections_ready
from tests.conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


def in_thread(function):
    """`function()` in a thread of its own (its own connection, closed after); its result."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_quiet_connection_is_taken_as_healthy_and_one_the_server_ended_is_made_anew():
    def scenario():
        connection.ensure_connection()
        first_pid = connection.connection.info.backend_pid
        connections_ready()
        quiet = connection.health_check_done

        with psycopg_admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first_pid])
        time.sleep(0.2)  # the server's FATAL error reaches the socket
        connections_ready()
        after_termination = connection.health_check_done
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (second_pid,) = cursor.fetchone()
        return quiet, after_termination, first_pid, second_pid

    quiet, after_termination, first_pid, second_pid = in_thread(scenario)

    assert quiet is True
    assert after_termination is False
    assert second_pid != first_pid


def psycopg_admin() -> psycopg.Connection:
    """A session of its own on the test database, outside Django."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("prepare_threshold", None)
    return psycopg.connect(**params, autocommit=True)
