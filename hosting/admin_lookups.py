"""Admin lists filter only by what they declare: no lookup on content or secrets from the URL.

Django's `ModelAdmin.lookup_allowed` accepts any lookup on a model's own fields, so a
read-only user could ask `?raw__contains=<guess>` of the messages list, or
`?smtp_password_hash__startswith=<guess>` of the hostings list, and read a yes/no answer
in the result count: content and digests recovered one character at a time, each query
scanning the whole table. Here a query-string parameter filters only when a declared list
filter or the date hierarchy produces it; anything else is Django's refusal
(DisallowedModelAdminLookup: 400 "Bad Request"). Search goes through `search_fields` or
`get_search_results`, which the query string cannot widen.
"""

from django.contrib import admin
from django.contrib.admin import widgets
from django.contrib.admin.filters import FieldListFilter
from django.contrib.admin.utils import get_fields_from_path

DATE_HIERARCHY_PARTS = ("year", "month", "day")


class DeclaredLookupsOnly:
    """ModelAdmin mixin: `lookup_allowed` answers yes only for the declared filters' parameters."""

    def lookup_allowed(self, lookup, value, request=None):
        if self._raw_id_popup_lookup(lookup, value):
            return True
        return lookup in self.declared_filter_parameters(request)

    def declared_filter_parameters(self, request) -> frozenset[str]:
        """The query-string parameters that this admin's list filters and date hierarchy read."""
        cache = getattr(request, "_declared_filter_parameters", None)
        if cache is None:
            cache = {}
            if request is not None:
                request._declared_filter_parameters = cache
        if self not in cache:
            cache[self] = frozenset(self._declared_filter_parameters(request))
        return cache[self]

    def _declared_filter_parameters(self, request):
        if self.date_hierarchy:
            yield from (f"{self.date_hierarchy}__{part}" for part in DATE_HIERARCHY_PARTS)
        list_filter = self.get_list_filter(request) if request is not None else self.list_filter
        for item in list_filter:
            if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
                yield item.parameter_name
                continue
            field_path, filter_class = item if isinstance(item, (list, tuple)) else (item, FieldListFilter.create)
            field = get_fields_from_path(self.model, field_path)[-1]
            # The filter itself names its parameters (`status__exact`, `created_at__gte`…).
            yield from filter_class(field, request, {}, self.model, self, field_path=field_path).expected_parameters()

    def _raw_id_popup_lookup(self, lookup, value) -> bool:
        """Django's exception for raw-id popups opened with a foreign key's `limit_choices_to`."""
        for fk_lookup in self.model._meta.related_fkey_lookups:
            if callable(fk_lookup):
                fk_lookup = fk_lookup()
            if (lookup, value) in widgets.url_params_from_lookup_dict(fk_lookup).items():
                return True
        return False
