"""The doors' event loop (SMTP_EVENT_LOOP): uvloop's by default, asyncio's on demand; every door
test runs on the loop the door runs on in production (tests.support's doors take it too)."""

import asyncio
import smtplib

import pytest
import uvloop

from mailqueue.models import Message
from mailqueue.smtpd_server import door_loop_new, door_run
from tests.factories import HostingFactory
from tests.support import BounceDoor, SubmissionDoor


async def loop_running() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_the_doors_run_on_uvloop_by_default():
    loop = door_run(loop_running())

    assert isinstance(loop, uvloop.Loop)
    assert loop.is_closed()  # as asyncio.run leaves it


def test_smtp_event_loop_asyncio_gives_the_standard_librarys(settings):
    settings.SMTP_EVENT_LOOP = "asyncio"
    loop = door_loop_new()
    try:
        assert isinstance(loop, asyncio.BaseEventLoop)  # the standard library's (uvloop's is not one)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_message_is_stored_through_the_door_on_either_loop(settings, loop):
    settings.SMTP_EVENT_LOOP = loop
    hosting = HostingFactory()
    raw = b"From: shop@example.net\r\nTo: c@example.org\r\nSubject: on " + loop.encode() + b"\r\n\r\nHi\r\n"
    with SubmissionDoor(addr="127.0.0.1:0") as door, smtplib.SMTP(door.host, door.port, timeout=30) as client:
        assert isinstance(door._loop, uvloop.Loop) == (loop == "uvloop")
        client.login(hosting.service_name, hosting.smtp_password)
        assert client.sendmail("shop@example.net", ["c@example.org"], raw) == {}

    assert Message.objects.get(hosting=hosting).subject == f"on {loop}"


def test_the_bounce_door_of_the_tests_runs_on_the_doors_loop():
    with BounceDoor() as door:
        assert isinstance(door.loop, uvloop.Loop)
