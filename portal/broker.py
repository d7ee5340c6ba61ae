"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu's own `_put` creates the message file in the queue folder and then writes it, so a worker
listing the folder at that moment takes an empty file and its consumer dies on the JSON
(`Unrecoverable error: JSONDecodeError`): every task of the embedded run stops. Here a message
is written under a hidden name (which no queue's pattern matches), flushed, then renamed into
place: a reader sees the whole file or none.
"""

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class AtomicFilesystemChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        hidden = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(hidden, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(hidden, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicFilesystemChannel
