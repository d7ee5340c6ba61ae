"""Request and response shapes of the API, named as OVH's hosting.web.email types."""

import datetime

from django.utils import timezone
from rest_framework import serializers

from api.access_rules import ANY_METHOD, METHODS, rules_clean
from api.auth_errors import ERROR_CODES
from api.models import CredentialStatus
from mailqueue.actions import CUSTOMER_ACTIONS_BY_API_NAME
from mailqueue.message_log import DAY_VALIDATORS
from mailqueue.models import MessageStatus

ACTIONS = list(CUSTOMER_ACTIONS_BY_API_NAME)
STATES = ["bounce", "force", "ko", "ok", "purging", "spam"]  # OVH's hosting.web.mail.StateEnum


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="What went wrong, for a person to read")
    errorCode = serializers.ChoiceField(
        choices=ERROR_CODES, required=False, help_text="On authentication failures only: OVH's code of the failure"
    )


class AccessRuleSerializer(serializers.Serializer):
    """OVH's auth.AccessRule. `*` in the path matches any characters; the path is relative to /1.0."""

    method = serializers.ChoiceField(choices=METHODS)
    path = serializers.CharField(max_length=255, help_text="e.g. /hosting/web/* (relative to /1.0)")


class GrantedRuleSerializer(AccessRuleSerializer):
    method = serializers.ChoiceField(
        choices=[*METHODS, ANY_METHOD], help_text="* (credentials made in the portal): every method"
    )


class CredentialRequestSerializer(serializers.Serializer):
    """What the official client's new_consumer_key_request() / request() send."""

    accessRules = AccessRuleSerializer(many=True)
    redirection = serializers.CharField(
        max_length=2000,
        allow_null=True,
        allow_blank=True,
        required=False,
        default="",
        help_text="Where the browser goes once the key is validated (http or https)",
    )
    allowedIPs = serializers.ListField(
        child=serializers.CharField(), allow_null=True, required=False, help_text="Not supported: null or omitted"
    )

    def validate_accessRules(self, rules):
        return rules_clean(rules)

    def validate_allowedIPs(self, allowed):
        if allowed:  # ignoring it would leave the key usable from anywhere, unknown to its owner
            raise serializers.ValidationError("allowedIPs is not supported: omit it or send null.")
        return None


class CredentialRequestedSerializer(serializers.Serializer):
    consumerKey = serializers.CharField()
    validationUrl = serializers.URLField(help_text="The portal page where a user validates the key")
    state = serializers.ChoiceField(choices=[CredentialStatus.PENDING.value])


class CredentialSerializer(serializers.Serializer):
    """OVH's api.Credential: the credential of the request."""

    credentialId = serializers.IntegerField()
    applicationId = serializers.IntegerField(allow_null=True)
    rules = GrantedRuleSerializer(many=True)
    status = serializers.ChoiceField(choices=CredentialStatus.values)
    creation = serializers.DateTimeField()
    expiration = serializers.DateTimeField(allow_null=True, help_text="null: no expiry")
    lastUse = serializers.DateTimeField(allow_null=True)
    ovhSupport = serializers.BooleanField(help_text="Always false: no support staff credentials here")
    allowedIPs = serializers.ListField(child=serializers.CharField(), allow_null=True, help_text="Always null")


class HostingSerializer(serializers.Serializer):
    """OVH's hosting.web.Service, for the fields the platform has (docs/API.md)."""

    serviceName = serializers.CharField()
    displayName = serializers.CharField(help_text="The service name: hostings have no other display name here")
    offer = serializers.CharField(help_text="The plan: starter, perso, pro or performance")
    state = serializers.ChoiceField(choices=["active"], help_text="A hosting served by the platform is active")
    primaryLogin = serializers.CharField(help_text="The hosting's login: its SMTP user, the service name")


class EmailSerializer(serializers.Serializer):
    bounce = serializers.IntegerField(help_text="Delivery errors in total")
    email = serializers.EmailField(
        allow_null=True, help_text="The configured recipient of the error reports; null: the customer's contact"
    )
    maxPerDay = serializers.IntegerField(help_text="Messages per day the hourly limit allows")
    sent = serializers.IntegerField(help_text="Messages sent in total")
    sentToday = serializers.IntegerField()
    state = serializers.ChoiceField(choices=STATES)


class EmailUpdateSerializer(serializers.Serializer):
    """A PUT takes the whole object read back by GET (SPEC §9.2): `email` is the only writable
    field; the read-only ones may come along unchanged, and a changed one is a 400. The counters
    move with every delivery between the GET and the PUT, so they are only checked to be counts."""

    SETTINGS = ("maxPerDay", "state")  # read-only: a different value is an attempt to change it
    COUNTERS = ("bounce", "sent", "sentToday")  # read-only and moving: ignored
    READ_ONLY = SETTINGS + COUNTERS

    email = serializers.CharField(
        max_length=254, allow_blank=True, allow_null=True, help_text="Empty or null: the customer's contact e-mail"
    )

    def __init__(self, *args, current: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = current or {}

    def validate(self, attrs):
        data = self.initial_data if isinstance(self.initial_data, dict) else {}
        unknown = set(data) - {"email", *self.READ_ONLY}
        if unknown:
            raise serializers.ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}")
        changed = sorted(name for name in self.SETTINGS if name in data and data[name] != self.current[name])
        changed += sorted(
            name
            for name in self.COUNTERS
            if name in data and (not isinstance(data[name], int) or isinstance(data[name], bool) or data[name] < 0)
        )
        if changed:
            raise serializers.ValidationError(f"Read-only fields cannot be changed: {', '.join(changed)}")
        return attrs


class EmailRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTIONS)


class BounceSerializer(serializers.Serializer):
    date = serializers.DateTimeField(source="created_at")
    to = serializers.CharField(source="recipient")
    message = serializers.CharField(source="reply")


class BounceQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=0, max_value=100, default=20, required=False)  # 0: the manager's


class SuppressionSerializer(serializers.Serializer):
    address = serializers.CharField(help_text="The suppressed address, in lower case")
    date = serializers.DateTimeField(source="created_at", help_text="When it was suppressed")
    expires = serializers.DateTimeField(source="expires_at", help_text="When it stops being suppressed")
    reason = serializers.CharField(help_text="The error that suppressed it")


class SuppressionQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20, required=False)
    search = serializers.CharField(
        max_length=320, allow_blank=True, required=False, default="", help_text="Part of the address"
    )


class VolumeSerializer(serializers.Serializer):
    """OVH's VolumeHistory: the date is a datetime, the local midnight of the day."""

    date = serializers.SerializerMethodField()
    volume = serializers.IntegerField(source="sent")

    def get_date(self, volume) -> datetime.datetime:
        midnight = datetime.datetime.combine(volume["day"], datetime.time())
        return timezone.make_aware(midnight).isoformat()


class MessageSubmitSerializer(serializers.Serializer):
    # Blank is let through to the submission service, whose refusal of the null sender (553 5.7.1)
    # is the same at every door.
    sender = serializers.CharField(
        max_length=320,
        allow_blank=True,
        required=False,
        default="",
        help_text="The envelope sender; the null sender (empty or <>) is refused (smtpCode 553)",
    )
    recipients = serializers.ListField(child=serializers.CharField(max_length=320), min_length=1, max_length=1000)
    message = serializers.CharField(help_text="The raw RFC 5322 message (headers and body)", trim_whitespace=False)


class MessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    messageId = serializers.CharField(source="message_id")
    sender = serializers.CharField()
    recipients = serializers.SerializerMethodField()
    subject = serializers.CharField()
    size = serializers.IntegerField()
    status = serializers.ChoiceField(choices=MessageStatus.values)
    createdAt = serializers.DateTimeField(source="created_at")
    heldUntil = serializers.DateTimeField(source="held_until", allow_null=True)
    attempts = serializers.IntegerField()

    def get_recipients(self, message) -> list[str]:
        return [recipient["address"] for recipient in message.recipients]


class DayRangeQuerySerializer(serializers.Serializer):
    since = serializers.DateField(
        required=False, validators=DAY_VALIDATORS, help_text="From this day (local time); empty: no bound"
    )
    until = serializers.DateField(
        required=False, validators=DAY_VALIDATORS, help_text="To this day (local time), included; empty: no bound"
    )


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateTimeField(source="created_at")
    action = serializers.CharField()
    fromState = serializers.CharField(source="from_state")
    toState = serializers.CharField(source="to_state")
    reason = serializers.CharField()
    actor = serializers.CharField(source="actor_kind")
    actorLabel = serializers.CharField(source="actor_label")
    messageCount = serializers.IntegerField(source="message_count", allow_null=True)
    detail = serializers.CharField()
