"""Filters of the log configuration (`LOGGING` in portal.settings): one line per request."""

import logging
from collections.abc import Mapping

from api.access_rules import API_PREFIX


class ApiAccessLineDropped(logging.Filter):
    """Drops the access-log line (runserver's or gunicorn's) of a /1.0/ request: `api.requests`
    logs that request already, with its X-Ovh-Queryid."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = access_line_path(record)
        return not (path == API_PREFIX or path.startswith((API_PREFIX + "/", API_PREFIX + "?")))


def access_line_path(record: logging.LogRecord) -> str:
    """The path of an access-log record: gunicorn passes its atoms, runserver the request line."""
    if isinstance(record.args, Mapping):
        return str(record.args.get("U") or "")
    if record.args and isinstance(record.args[0], str):
        words = record.args[0].split(" ")  # "GET /1.0/hosting/web HTTP/1.1"
        return words[1] if len(words) == 3 else ""
    return ""
