"""A publisher for the chaos test: publishes an event every few milliseconds, each in its own
transaction, until the STOP_FILE exists, then prints how many it published.

``python -m tests.e2e.relay.chaos_publisher STOP_FILE``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import django


def main(stop: Path) -> None:
    django.setup()
    from django.db import transaction

    from django_domain_events import publish
    from tests.testapp.receivers import RECORDED

    published = 0
    while not stop.exists():
        with transaction.atomic():
            publish(RECORDED, {"n": published})
        published += 1
        time.sleep(0.005)
    print(f"published {published}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
