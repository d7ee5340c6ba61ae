"""Admin paging that never counts a whole table: lists stay fast on millions of rows."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property

# Rows counted at most; beyond it the admin shows this many and the last page is reachable
# by the page links. Bounded cost whatever the table size.
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        return len(self.object_list.values_list("pk", flat=True)[: COUNT_CAP + 1])
