"""What an authenticated caller may call: its credential's access rules (SPEC §9.3)."""

from rest_framework.permissions import BasePermission

from api.access_rules import api_path, rules_allow
from api.auth_errors import NotGrantedCall


class AccessRulesGranted(BasePermission):
    """A consumer key or a token may make the calls one of its rules matches; otherwise 403
    NOT_GRANTED_CALL. The portal session (the browsable API) has no rules: its tenancy is the user's."""

    def has_permission(self, request, view) -> bool:
        rules = getattr(request.auth, "access_rules", None)
        if rules is None:
            return True
        if not rules_allow(rules, method=request.method, path=api_path(request.path_info)):
            raise NotGrantedCall()
        return True
