"""Request and response shapes of the webhook endpoints (`/1.0/me/webhooks`, docs/API.md)."""

from rest_framework import serializers

from mailqueue.models import WebhookDeliveryStatus, WebhookEndpoint
from mailqueue.webhooks import CHOOSABLE_EVENTS

EVENTS = [event.value for event in CHOOSABLE_EVENTS]
URL_MAX = WebhookEndpoint._meta.get_field("url").max_length


def _events_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=EVENTS),
        min_length=1,
        max_length=len(EVENTS) * 2,
        help_text="The events it is sent (docs/WEBHOOKS.md)",
        **kwargs,
    )


class WebhookEndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS))
    active = serializers.BooleanField(help_text="false: sent nothing (turned off, or disabled after a day of failures)")
    createdAt = serializers.DateTimeField(source="created_at")
    failingSince = serializers.DateTimeField(
        source="failing_since", allow_null=True, help_text="The first failure since the last success; null: none"
    )
    disabledAt = serializers.DateTimeField(
        source="disabled_at", allow_null=True, help_text="When a day of failures disabled it; null: it was not"
    )


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret, shown this once")


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret, shown this once; the old one no longer signs")


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=URL_MAX, help_text="http:// or https:// on a public address")
    events = _events_field()


class WebhookEndpointUpdateSerializer(serializers.Serializer):
    """A PUT takes any of the writable fields, or the whole object read back by GET: the
    read-only fields are ignored; an unknown field is a 400."""

    READ_ONLY = ("id", "createdAt", "failingSince", "disabledAt")

    url = serializers.URLField(max_length=URL_MAX, required=False)
    events = _events_field(required=False)
    active = serializers.BooleanField(required=False, help_text="true again: its past failures are forgotten")

    def validate(self, attrs):
        data = self.initial_data if isinstance(self.initial_data, dict) else {}
        unknown = set(data) - set(self.fields) - set(self.READ_ONLY)
        if unknown:
            raise serializers.ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}")
        return attrs


class WebhookAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    statusCode = serializers.IntegerField(
        source="status_code", allow_null=True, help_text="The receiver's HTTP status; null: no answer"
    )
    durationMs = serializers.IntegerField(source="duration_ms")
    reply = serializers.CharField(help_text="The first 300 characters of the reply, or why there was none")


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    eventId = serializers.UUIDField(source="event_id", help_text="The event's id (X-Portal-Delivery)")
    type = serializers.CharField(source="event_type")
    createdAt = serializers.DateTimeField(source="created_at")
    status = serializers.ChoiceField(choices=WebhookDeliveryStatus.values)
    nextAttemptAt = serializers.DateTimeField(
        source="next_attempt_at", allow_null=True, help_text="When it is tried again; null: no more attempts"
    )
    attempts = WebhookAttemptSerializer(source="attempt_log", many=True, help_text="Newest first")


class WebhookDeliveryQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20, required=False)
