"""Request and response shapes of the API, named as OVH's hosting.web.email types."""

from rest_framework import serializers

from mailqueue.actions import CUSTOMER_ACTIONS_BY_API_NAME
from mailqueue.models import MessageStatus

ACTIONS = list(CUSTOMER_ACTIONS_BY_API_NAME)
STATES = ["bounce", "force", "ko", "ok", "purging", "spam"]  # OVH's hosting.web.mail.StateEnum


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="What went wrong, for a person to read")


class HostingSerializer(serializers.Serializer):
    serviceName = serializers.CharField()
    plan = serializers.CharField()
    customer = serializers.CharField()


class EmailSerializer(serializers.Serializer):
    bounce = serializers.IntegerField(help_text="Delivery errors in total")
    email = serializers.EmailField(allow_null=True, help_text="Recipient of the error reports")
    maxPerDay = serializers.IntegerField(help_text="Messages per day the hourly limit allows")
    sent = serializers.IntegerField(help_text="Messages sent in total")
    sentToday = serializers.IntegerField()
    state = serializers.ChoiceField(choices=STATES)


class EmailUpdateSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254, allow_blank=True, help_text="Empty: the customer's contact e-mail")

    def validate(self, attrs):
        unknown = set(self.initial_data) - {"email"} if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError(f"Read-only or unknown fields: {', '.join(sorted(unknown))}")
        return attrs


class EmailRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTIONS)


class BounceSerializer(serializers.Serializer):
    date = serializers.DateTimeField(source="created_at")
    to = serializers.CharField(source="recipient")
    message = serializers.CharField(source="reply")


class BounceQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20, required=False)


class VolumeSerializer(serializers.Serializer):
    date = serializers.DateField(source="day")
    volume = serializers.IntegerField(source="sent")


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


class MessageQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=MessageStatus.values, required=False)


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
