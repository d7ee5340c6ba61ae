"""The embedded default relay (SMTP_RELAY_URL `file://…`): each delivered message becomes an .eml
file under a directory, with its envelope on top."""

import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.utils import timezone


class FileRelay:
    """The embedded default: each delivered message becomes an .eml file under the directory."""

    def __init__(self, url: str):
        self.directory = Path(unquote(urlsplit(url).path))
        self.connections_opened = 0
        self.opened = False

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.connections_opened += 1
        self.opened = True

    def close(self) -> None:
        self.opened = False

    def send(
        self, *, sender: str, recipients: list[str], raw: bytes, before_end=None, **_pipelining
    ) -> dict[str, tuple[int, str]]:
        """As `SmtpRelay.send`; nothing is pipelined to a directory."""
        if not self.opened:
            self.open()
        if before_end is not None:
            before_end()
        name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
        envelope = f"X-Envelope-From: <{sender}>\r\nX-Envelope-To: {', '.join(recipients)}\r\n".encode()
        (self.directory / name).write_bytes(envelope + raw)
        return dict.fromkeys(recipients, (250, f"written to {name}"))
