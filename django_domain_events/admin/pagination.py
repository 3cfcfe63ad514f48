"""A paginator that never counts millions of rows: exact up to a bound, estimated past it."""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_COUNT_LIMIT = 10_000
"""Result sets up to this size are counted exactly; a count stops reading rows past it."""


def estimated_count(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's own estimate of the rows ``queryset`` returns, or None elsewhere.

    An unfiltered table reads ``pg_class.reltuples`` (kept by VACUUM and ANALYZE); a filtered
    query asks the planner (``EXPLAIN``), which reads the same statistics and runs nothing.
    """
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    if not queryset.query.where:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        # -1 means never vacuumed nor analyzed: fall back to the planner.
        if row is not None and row[0] >= 0:
            return int(row[0])
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def bounded_count(
    queryset: QuerySet[Any], exact_limit: int = EXACT_COUNT_LIMIT
) -> tuple[int, bool]:
    """The rows of ``queryset``, and whether that figure is an estimate.

    On PostgreSQL the planner is asked first (no rows read): past ``exact_limit`` its estimate
    is the answer, below it the rows are counted, reading at most ``exact_limit + 1`` of them.
    Elsewhere the rows are counted in full.
    """
    estimate = estimated_count(queryset)
    if estimate is None:
        return queryset.count(), False
    if estimate > exact_limit:
        return estimate, True
    bounded = queryset.order_by()[: exact_limit + 1].count()
    if bounded <= exact_limit:
        return bounded, False
    # The planner guessed low by a lot: say "more than the limit" rather than count on.
    return bounded, True


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """On PostgreSQL, counts results the planner expects to be small and estimates the others
    (``bounded_count()``), instead of a ``COUNT(*)`` over millions of rows.

    On other databases results are counted exactly. An estimate can be off, so the last pages
    of a huge result may be empty; nobody pages that far through an outbox, they filter.
    """

    @cached_property
    def _counted(self) -> tuple[int, bool]:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset), False
        return bounded_count(queryset)

    @cached_property
    def count(self) -> int:
        return self._counted[0]

    @property
    def is_estimated(self) -> bool:
        """Whether ``count`` is the planner's estimate rather than an exact count."""
        return self._counted[1]
