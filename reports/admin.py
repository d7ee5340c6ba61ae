from django.contrib import admin

from mailqueue.admin import ReadOnlyAdmin
from reports.models import ErrorDigest


@admin.register(ErrorDigest)
class ErrorDigestAdmin(ReadOnlyAdmin):
    list_display = ["day", "hosting", "status", "recipient", "error_count", "attempts", "sent_at"]
    list_select_related = ["hosting"]
    list_filter = ["status", "day"]
    search_fields = ["=hosting__service_name", "recipient"]
    raw_id_fields = ["hosting"]
