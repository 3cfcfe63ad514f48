"""``manage.py events_status``: the outbox's health, for people and for monitors."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_domain_events.management.options import add_database_argument, database_alias
from django_domain_events.operations.health import STATES, outbox_status


class Command(BaseCommand):
    help = (
        "Print deliveries by state and by receiver, how many are owed and how long the oldest "
        "has waited. Exits with status 1 when a delivery has been owed longer than "
        "--max-owed-age (STATUS_MAX_OWED_AGE), there are more dead deliveries than "
        "--max-dead (STATUS_MAX_DEAD), or more ordering keys blocked by a dead delivery than "
        "--max-blocked-keys (STATUS_MAX_BLOCKED_KEYS), 0 otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="Print JSON.")
        output.add_argument(
            "--prometheus",
            action="store_true",
            help="Print the outbox gauges in Prometheus' text format (needs prometheus_client).",
        )
        parser.add_argument(
            "--max-owed-age",
            type=float,
            default=None,
            help="Seconds the oldest owed delivery may wait (default: STATUS_MAX_OWED_AGE).",
        )
        parser.add_argument(
            "--max-dead",
            type=int,
            default=None,
            help="Dead deliveries allowed (default: STATUS_MAX_DEAD, else no limit).",
        )
        parser.add_argument(
            "--max-blocked-keys",
            type=int,
            default=None,
            help="Ordering keys a dead delivery may block (default: STATUS_MAX_BLOCKED_KEYS).",
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max_owed_age"] is not None and options["max_owed_age"] < 0:
            raise CommandError("--max-owed-age must be a number of seconds >= 0.")
        if options["max_dead"] is not None and options["max_dead"] < 0:
            raise CommandError("--max-dead must be a number >= 0.")
        if options["max_blocked_keys"] is not None and options["max_blocked_keys"] < 0:
            raise CommandError("--max-blocked-keys must be a number >= 0.")
        status = outbox_status(
            using=database_alias(options["database"]),
            max_owed_age=options["max_owed_age"],
            max_dead=options["max_dead"],
            max_blocked_keys=options["max_blocked_keys"],
        )
        if options["prometheus"]:
            self.stdout.write(_prometheus_text(options["database"]), ending="")
        elif options["json"]:
            self.stdout.write(json.dumps(status.as_dict(), indent=2, sort_keys=True))
        else:
            counts = ", ".join(f"{state} {status.by_state[state]}" for state in STATES)
            self.stdout.write(f"Deliveries: {counts}.")
            oldest = status.oldest_owed_seconds
            waited = f", the oldest waiting {oldest:.1f} s" if oldest is not None else ""
            self.stdout.write(f"Owed now: {status.owed}{waited}.")
            self.stdout.write(f"Dead: {status.dead}.")
            if status.by_receiver:
                self.stdout.write("Unsettled and dead deliveries by receiver:")
                for receiver, counts_by_state in status.by_receiver.items():
                    parts = ", ".join(
                        f"{state} {count}" for state, count in counts_by_state.items() if count
                    )
                    self.stdout.write(f"  {receiver}: {parts}")
            if status.blocked_keys:
                self.stdout.write(f"Blocked ordering keys: {status.blocked_keys}.")
                for line in status.blocked:
                    since = f", since {line.since:%Y-%m-%d %H:%M:%S}" if line.since else ""
                    self.stdout.write(
                        f"  {line.receiver} / {line.ordering_key}: dead {line.dead}{since}"
                    )
            if status.healthy:
                self.stdout.write(self.style.SUCCESS("Healthy."))
        if not status.healthy:
            raise CommandError("Unhealthy: " + "; ".join(status.problems) + ".", returncode=1)


def _prometheus_text(database: str | None) -> str:
    from django_domain_events.observability.metrics import exposition

    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise CommandError(
            "events_status --prometheus needs prometheus_client: pip install "
            '"django-domain-outbox[prometheus]".'
        ) from None
    body, _content_type = exposition(outbox_only=True, using=database)
    return body.decode()
