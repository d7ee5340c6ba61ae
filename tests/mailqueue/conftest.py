"""Fixtures of the mail queue's tests: a real spamd (tests/spamd.py)."""

from tests.spamd import spamd, spamd_factory  # noqa: F401
