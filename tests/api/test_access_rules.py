"""OVH's access rules: a method and a path where `*` matches any run of characters."""

import pytest
from rest_framework.exceptions import ValidationError

from api.access_rules import api_path, everything, rules_allow, rules_clean

READ_HOSTINGS = [{"method": "GET", "path": "/hosting/web/*"}]


@pytest.mark.parametrize(
    ("rules", "method", "path", "allowed"),
    [
        (READ_HOSTINGS, "GET", "/hosting/web/acme-shop.fr/email", True),
        (READ_HOSTINGS, "GET", "/hosting/web/", True),
        (READ_HOSTINGS, "GET", "/hosting/web", False),  # hence add_recursive_rules' two rules
        (READ_HOSTINGS, "POST", "/hosting/web/acme-shop.fr/email/request", False),
        (READ_HOSTINGS, "HEAD", "/hosting/web/acme-shop.fr", True),
        (READ_HOSTINGS, "get", "/hosting/web/x", True),
        (READ_HOSTINGS, "GET", "/hosting/webx", False),
        (READ_HOSTINGS, "GET", "/auth/currentCredential", False),
        ([{"method": "GET", "path": "/hosting/web"}], "GET", "/hosting/web", True),
        ([{"method": "GET", "path": "/hosting/web"}], "GET", "/hosting/web/x", False),
        ([{"method": "PUT", "path": "/hosting/web/*/email"}], "PUT", "/hosting/web/a.fr/email", True),
        ([{"method": "PUT", "path": "/hosting/web/*/email"}], "PUT", "/hosting/web/a.fr/email/request", False),
        ([{"method": "GET", "path": "/hosting/web/a.fr"}], "GET", "/hosting/web/aXfr", False),  # "." is literal
        (everything(), "DELETE", "/hosting/web/a.fr/email/suppressions/x", True),
        (everything(), "PATCH", "/anything", True),
        ([], "GET", "/hosting/web", False),
    ],
)
def test_rules_allow(rules, method, path, allowed):
    assert rules_allow(rules, method=method, path=path) is allowed


def test_api_path_is_relative_to_the_version():
    assert api_path("/1.0/hosting/web") == "/hosting/web"
    assert api_path("/1.0/") == "/"


def test_rules_clean_upper_cases_and_deduplicates():
    asked = [{"method": "get", "path": "/me"}, {"method": "GET", "path": "/me", "x": 1}]
    asked.append({"method": "PUT", "path": "/me"})
    cleaned = rules_clean(asked)
    assert cleaned == [{"method": "GET", "path": "/me"}, {"method": "PUT", "path": "/me"}]


@pytest.mark.parametrize(
    "rules",
    [None, [], "GET /*", [["GET", "/*"]], [{"method": "TRACE", "path": "/*"}], [{"method": "GET", "path": "*"}]],
)
def test_rules_clean_refuses_what_is_not_a_rule(rules):
    with pytest.raises(ValidationError):
        rules_clean(rules)
