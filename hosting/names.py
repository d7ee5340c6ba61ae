"""Service names of hostings: host names in one canonical form, so that one name is one hosting.

The canonical form is what DNS compares: lower-case ASCII, internationalised labels as their
IDNA 2008 A-label (`bücher.fr` → `xn--bcher-kva.fr`, via the `idna` package with UTS 46
mapping), no trailing dot. Stored and shown in that form, a name cannot pass for another in
the portal or the admin: a Cyrillic `аcme-shop.fr` is `xn--cme-shop-06g.fr`. Labels mixing
scripts (the classic homoglyph spoof) are refused outright, as browsers refuse to display them.
"""

import re
import unicodedata

import idna
from django.utils.translation import gettext_lazy as _

MAX_NAME_LENGTH = 253  # RFC 1035, without the trailing dot
_ASCII_ALLOWED = re.compile(r"[a-z0-9.-]", re.IGNORECASE)
# Scripts that may share a label (Unicode TS 39 "highly restrictive"): Japanese, Chinese, Korean.
_SCRIPT_MIXES_ALLOWED = [
    {"LATIN", "CJK", "HIRAGANA", "KATAKANA"},
    {"LATIN", "CJK", "BOPOMOFO"},
    {"LATIN", "CJK", "HANGUL"},
]


class ServiceNameError(ValueError):
    """A name that is not a host name; `message` says why (translatable)."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def service_name_normalize(name: str) -> str:
    """The canonical form of `name`, or ServiceNameError saying why it is not a host name.

    Refused: empty, spaces and control characters, ASCII other than letters, digits, hyphens
    and dots, labels that IDNA 2008 refuses (empty, over 63 characters, hyphen at an end,
    invalid A-label…), a single label, an all-numeric last label (an IP address), more than
    253 characters, and a label mixing scripts. One trailing dot (the absolute form of the
    same name) is dropped; upper case is lowered.
    """
    shown = name.encode("unicode_escape").decode()  # a homoglyph or a NUL shows as \u0430, \x00
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ServiceNameError(_("The service name is empty."))
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in name):
        raise ServiceNameError(_("“%(name)s” contains a space or a control character.") % {"name": shown})
    for char in name:
        if char.isascii() and not _ASCII_ALLOWED.match(char):
            raise ServiceNameError(
                _("“%(name)s” contains “%(char)s”, which no host name may contain.") % {"name": shown, "char": char}
            )
    try:
        if name.endswith("."):  # idna takes one trailing dot, which was dropped above: a second is an empty label
            raise idna.IDNAError("Empty label")
        canonical = idna.encode(name, uts46=True).decode("ascii")
        labels = idna.decode(canonical).split(".")
    except (idna.IDNAError, UnicodeError):
        raise ServiceNameError(
            _(
                "“%(name)s” is not a valid host name: labels of 1 to 63 letters, digits or hyphens (not at either "
                "end), separated by dots."
            )
            % {"name": shown}
        ) from None
    if len(canonical) > MAX_NAME_LENGTH:
        raise ServiceNameError(
            _("“%(name)s” is longer than %(max)d characters.") % {"name": shown, "max": MAX_NAME_LENGTH}
        )
    if len(labels) < 2:
        raise ServiceNameError(_("“%(name)s” has a single label: give a domain (example.com).") % {"name": shown})
    if labels[-1].isdigit():
        raise ServiceNameError(_("“%(name)s” is an IP address, not a host name.") % {"name": shown})
    for label in labels:
        scripts = _scripts(label)
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_MIXES_ALLOWED):
            raise ServiceNameError(
                _("“%(name)s” mixes scripts (%(scripts)s): it could pass for another name.")
                % {"name": shown, "scripts": ", ".join(sorted(script.lower() for script in scripts))}
            )
    return canonical


def _scripts(label: str) -> set[str]:
    """The scripts of a label's letters (the first word of their Unicode names: LATIN, CYRILLIC…)."""
    scripts = set()
    for char in label:
        if unicodedata.category(char).startswith("L"):
            script = unicodedata.name(char, "UNKNOWN").split()[0]
            if script != "KATAKANA-HIRAGANA":  # the prolonged sound mark, common to both
                scripts.add(script)
    return scripts
