"""OVH's access rules: what a consumer key or a token may call, as a list of {method, path}.

A rule's path is relative to /1.0 ("/hosting/web/*"); `*` matches any run of characters, so
"/hosting/web/*" grants every path under /hosting/web/ but not /hosting/web itself (that is why
the official client's add_recursive_rules asks for both). The method "*" and the path "/*" are
the rule of credentials made whole by an operator or the portal: every call of their customer.
"""

import re
from functools import lru_cache

from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError

API_PREFIX = "/1.0"
METHODS = ("GET", "POST", "PUT", "DELETE")  # OVH's auth.MethodEnum, what a consumer key may ask for
ANY_METHOD = "*"
MAX_RULES = 100
MAX_PATH_LENGTH = 255
# Methods that read like GET: a key granted GET may ask for the headers or the options of a path.
READ_ALIASES = {"HEAD": "GET", "OPTIONS": "GET"}


def everything() -> list[dict]:
    """The rules of credentials that may make every call of their customer."""
    return [{"method": ANY_METHOD, "path": "/*"}]


@lru_cache(maxsize=1024)
def _pattern(path: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in path.split("*")), re.DOTALL)


def rules_allow(rules: list[dict], *, method: str, path: str) -> bool:
    """Whether one rule matches `method` and `path` (relative to /1.0)."""
    method = READ_ALIASES.get(method.upper(), method.upper())
    return any(
        rule["method"] in (ANY_METHOD, method) and _pattern(rule["path"]).fullmatch(path) is not None for rule in rules
    )


def api_path(full_path: str) -> str:
    """The request's path as rules name it: without the /1.0 prefix."""
    return full_path[len(API_PREFIX) :] if full_path.startswith(API_PREFIX + "/") else full_path


def rules_clean(rules) -> list[dict]:
    """The rules a client asks for, checked and without duplicates; ValidationError (400) otherwise.

    Each rule is {"method": GET|POST|PUT|DELETE, "path": "/…"}; other keys are ignored.
    """
    if not isinstance(rules, list) or not rules:
        raise ValidationError(_("A non-empty list of rules {method, path} is required."))
    if len(rules) > MAX_RULES:
        raise ValidationError(_("At most %(count)d rules.") % {"count": MAX_RULES})
    cleaned = []
    for rule in rules:
        if not isinstance(rule, dict):
            raise ValidationError(_("Each rule is an object {method, path}."))
        method, path = rule.get("method"), rule.get("path")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise ValidationError(_("A rule's method is one of GET, POST, PUT, DELETE."))
        if (
            not isinstance(path, str)
            or not path.startswith("/")
            or len(path) > MAX_PATH_LENGTH
            or any(character.isspace() or not character.isprintable() for character in path)
        ):
            raise ValidationError(_("A rule's path starts with / and names an API path, such as /hosting/web/*."))
        entry = {"method": method.upper(), "path": path}
        if entry not in cleaned:
            cleaned.append(entry)
    return cleaned
