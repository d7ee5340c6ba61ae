"""The operators' admin, branded as the product, and its list of customers."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from hosting.admin_lookups import DeclaredLookupsOnly
from hosting.admin_paging import CappedCountPaginator
from hosting.admin_titles import ProductTitles
from hosting.models import Customer, Membership

# The product's name on every admin page (header, browser tab, home page), not Django's.
admin.site.site_header = _("Web hosting — Operators' area")
admin.site.site_title = _("Operators' area")
admin.site.index_title = _("Customers, hostings and their e-mail")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Customer)
class CustomerAdmin(ProductTitles, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ["slug", "name", "contact_email", "language", "created_at"]
    search_fields = ["slug", "name", "contact_email"]
    list_filter = ["language"]
    inlines = [MembershipInline]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facets count the whole table once per choice
    add_title = _("Add a customer")
