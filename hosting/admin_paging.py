"""Admin paging that never counts a whole table: lists stay fast on millions of rows."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property

# Rows counted at most. Beyond it the admin says "10000+" and offers the first
# COUNT_CAP // per_page pages: bounded cost whatever the table size.
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows, in the database (COUNT over a LIMITed subquery).

    `count` never exceeds COUNT_CAP; `capped` tells whether more rows exist, and the admin
    templates (templates/admin/pagination.html, actions.html, search_form.html) then show
    `count_label` ("10000+") instead of a false exact figure.
    """

    @cached_property
    def _rows_seen(self) -> int:
        object_list = self.object_list
        if hasattr(object_list, "values"):
            return object_list.values("pk")[: COUNT_CAP + 1].count()
        return len(object_list[: COUNT_CAP + 1])

    @cached_property
    def capped(self) -> bool:
        return self._rows_seen > COUNT_CAP

    @cached_property
    def count(self) -> int:
        return min(self._rows_seen, COUNT_CAP)

    @property
    def count_label(self) -> str:
        return f"{self.count}+" if self.capped else str(self.count)

    def page(self, number):
        """As Paginator.page, but the last page of a capped count is a full page, not cut at the cap."""
        if not self.capped:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)
