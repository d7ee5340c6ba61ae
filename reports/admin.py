from django.contrib import admin

from portal.admin_paging import CappedCountPaginator
from reports.models import ErrorDigest


@admin.register(ErrorDigest)
class ErrorDigestAdmin(admin.ModelAdmin):
    list_display = ["day", "hosting", "status", "recipient", "error_count", "attempts", "sent_at"]
    list_select_related = ["hosting"]
    list_filter = ["status", "day"]
    search_fields = ["=hosting__service_name", "recipient"]
    raw_id_fields = ["hosting"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facets count the whole table once per choice

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
