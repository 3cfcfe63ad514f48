"""Memory: publishing in a long loop of transactions must not grow the process."""

from __future__ import annotations

import gc
import os
import sys

from django.db import transaction

from django_domain_events import publish

from ..benchapp.events import TOTAL, OrderPlaced
from ..benchapp.noops import noop_receivers
from ..harness import Bench, MemoryTrace, memory_case

POINTS = 10
"""RSS readings after warm-up, evenly spread over the loop."""


def rss_bytes() -> int:
    """The process's current resident set size (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        # A peak rather than the current size, but growth still shows in it.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB elsewhere


def _rss_after_collect() -> int:
    gc.collect()
    return rss_bytes()


@memory_case("rss", "RSS growth: publish() 1 event per atomic(), 1 receiver", limit_mb=10)
def publish_loop_rss(bench: Bench) -> MemoryTrace:
    alias = bench.alias
    warmup = max(1, bench.n // 10)
    readings: list[int] = []
    published = 0
    with noop_receivers(1, dispatcher="deferred"):
        for i in range(warmup):
            with transaction.atomic(using=alias):
                publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
        readings.append(_rss_after_collect())
        step = max(1, bench.n // POINTS)
        for i in range(bench.n):
            with transaction.atomic(using=alias):
                publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
            published += 1
            if published % step == 0 or published == bench.n:
                readings.append(_rss_after_collect())
    return MemoryTrace(events=published, warmup=warmup, rss_bytes=tuple(readings))
