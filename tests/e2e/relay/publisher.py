"""A publisher that dies between its commit and its dispatch.

``python -m tests.e2e.relay.publisher COUNT COMMITTED_FILE`` publishes COUNT events in
one transaction. Its first on-commit hook, which runs before the one that would dispatch the
deliveries, writes COMMITTED_FILE and waits to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import django


def main(count: int, committed: Path) -> None:
    django.setup()
    from django.db import transaction

    from django_domain_events import publish

    from .receivers import RECORDED

    def wait_to_be_killed() -> None:
        committed.write_text("committed")
        time.sleep(60)

    with transaction.atomic():
        transaction.on_commit(wait_to_be_killed)
        for n in range(count):
            publish(RECORDED, {"n": n})


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
