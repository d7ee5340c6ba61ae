"""The embedded broker (portal/broker.py): a consumer never reads half a message.

Each test stops a publisher in the middle of writing a message and lets a consumer look at the
queue at that moment, as a worker polling the folder does.
"""

import os

import pytest
from kombu import Connection
from kombu.transport import filesystem

from portal.broker import AtomicFilesystemTransport


@pytest.fixture
def options(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    return {"data_folder_in": str(folder), "data_folder_out": str(folder), "processed_folder": str(tmp_path)}


def test_a_message_being_written_is_invisible_to_a_consumer(options, monkeypatch):
    seen_mid_write = []
    real_fsync = os.fsync

    with Connection(transport=AtomicFilesystemTransport, transport_options=options) as connection:
        queue = connection.SimpleQueue("tasks")

        def fsync_and_look(fd):  # the content is written, the file not yet renamed into place
            real_fsync(fd)
            try:
                seen_mid_write.append(queue.get(block=False).payload)
            except queue.Empty:
                seen_mid_write.append(None)

        monkeypatch.setattr(os, "fsync", fsync_and_look)
        queue.put({"task": "mailqueue.tasks.purge_watchdog"})
        monkeypatch.undo()

        assert seen_mid_write == [None]  # nothing to take while it is being written
        assert queue.get(timeout=1).payload == {"task": "mailqueue.tasks.purge_watchdog"}
        assert not [name for name in os.listdir(options["data_folder_in"]) if name.endswith(".part")]


def test_kombus_own_transport_shows_an_empty_file_mid_write(options, monkeypatch):
    """Why portal/broker.py exists: kombu creates the message file in the queue folder, then
    writes it; a worker listing the folder then takes an empty file, and its consumer dies on it."""
    visible = []
    real_lock = filesystem.lock
    folder = options["data_folder_in"]

    def lock_and_look(handle, flags):  # the file exists, nothing written yet
        real_lock(handle, flags)
        visible.extend(
            os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder) if name.endswith(".msg")
        )

    with Connection(transport="filesystem", transport_options=options) as connection:
        queue = connection.SimpleQueue("tasks")
        monkeypatch.setattr(filesystem, "lock", lock_and_look)
        queue.put({"task": "mailqueue.tasks.purge_watchdog"})

    assert visible == [0]  # an empty message file in the queue folder
