from django.contrib import admin

from hosting.admin_lookups import DeclaredLookupsOnly
from hosting.admin_paging import CappedCountPaginator
from hosting.models import Customer, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Customer)
class CustomerAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ["slug", "name", "contact_email", "language", "created_at"]
    search_fields = ["slug", "name", "contact_email"]
    list_filter = ["language"]
    inlines = [MembershipInline]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facets count the whole table once per choice
