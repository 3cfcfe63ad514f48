"""``manage.py relay_events``: dispatch owed deliveries, in a loop or once (for cron)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from django_domain_events.conf import settings
from django_domain_events.delivery.relay import Relay, RelayTotals
from django_domain_events.delivery.wakeups import Wake, cannot_listen
from django_domain_events.management.options import (
    add_database_argument,
    check_batch_size,
    database_alias,
    selection_errors,
)
from django_domain_events.management.stopping import stop_on_signals
from django_domain_events.operations.scheduled_pruning import PruneSchedule
from django_domain_events.operations.selection import parse_duration


class Command(BaseCommand):
    help = (
        "Dispatch owed deliveries: pending ones whose dispatch at commit never happened, failed "
        "ones whose retry is due, and dispatched ones never settled (a lost task). Runs until "
        "SIGTERM or SIGINT, which let the current batch finish; --once runs until nothing is "
        "owed, then exits. On PostgreSQL it listens for the NOTIFY publishing sends, so "
        "deferred deliveries run at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="Dispatch everything owed now, then exit (for cron).",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds to wait after a round that found nothing (default: RELAY_INTERVAL).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Deliveries claimed per batch (default: RELAY_BATCH_SIZE).",
        )
        parser.add_argument(
            "--no-listen",
            action="store_true",
            help=(
                "Do not LISTEN for the notifications publishing sends on PostgreSQL: only poll "
                "every --interval seconds (default: listen when RELAY_LISTEN is on)."
            ),
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Serve Prometheus metrics on this port (needs DOMAIN_EVENTS['METRICS']).",
        )
        parser.add_argument(
            "--prune-every",
            default=None,
            help=(
                "Also prune events past their retention this often, in small batches between "
                "rounds: 1h, 30m, 1d; a bare number is seconds (default: RELAY_PRUNE_EVERY, "
                "None: never)."
            ),
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        interval: float | None = options["interval"]
        batch_size: int | None = options["batch_size"]
        database: str | None = options["database"]
        if interval is not None and interval < 0:
            raise CommandError(f"--interval is {interval}; give a number of seconds >= 0.")
        check_batch_size(batch_size)
        relay = Relay(using=database_alias(database), batch_size=batch_size)
        schedule = self._prune_schedule(relay.alias, options["prune_every"])
        if schedule is not None:
            relay.between_passes = schedule.run_if_due
        if options["metrics_port"] is not None:
            self._serve_metrics(options["metrics_port"])
        size = batch_size or settings.RELAY_BATCH_SIZE
        self.stdout.write(
            f"Relay {relay.relay_id} on database {relay.alias!r}: batches of {size}, "
            f"{'once' if options['once'] else 'until stopped'}."
        )
        if not relay.skips_locked_rows:
            self.stdout.write(
                self.style.WARNING(
                    f"The database {relay.alias!r} ({connections[relay.alias].vendor}) has no "
                    f"SELECT ... FOR UPDATE SKIP LOCKED: run one relay at a time on it."
                )
            )
        if schedule is not None:
            self.stdout.write(f"Pruning by retention every {schedule.every:g} s.")
        listen = not options["no_listen"] and settings.RELAY_LISTEN
        if not options["once"]:
            every = interval if interval is not None else settings.RELAY_INTERVAL
            reason = cannot_listen(relay.alias) if listen else "--no-listen or RELAY_LISTEN off"
            if reason is None:
                self.stdout.write(
                    f"Listening on channel {settings.RELAY_CHANNEL!r}; polling every {every:g} s "
                    f"as the safety net."
                )
            else:
                self.stdout.write(f"Polling every {every:g} s, not listening: {reason}.")
        self._verbosity = int(options["verbosity"])
        with stop_on_signals(relay.stop):
            if options["once"]:
                totals = relay.run_pass(on_batch=self._progress)
                if schedule is not None:
                    schedule.run_if_due()
            else:
                totals = relay.run_forever(
                    interval=interval,
                    on_batch=self._progress,
                    listen=listen,
                    on_wait=self._waiting,
                    on_wake=self._woken,
                )
        self.stdout.write(f"Relay {relay.relay_id} done. Totals: {totals}.")
        if options["once"] and totals.errors:
            raise CommandError("The relay stopped on a database error; see the log.")

    def _prune_schedule(self, alias: str, text: str | None) -> PruneSchedule | None:
        every = settings.RELAY_PRUNE_EVERY
        if text is not None:
            with selection_errors():
                every = parse_duration(
                    text, option="--prune-every", default_unit="s"
                ).total_seconds()
            if every <= 0:
                raise CommandError(f"--prune-every is {text}; give a duration above 0, like 1h.")
        return None if every is None else PruneSchedule(using=alias, every=every)

    def _serve_metrics(self, port: int) -> None:
        if not 0 <= port <= 65535:
            raise CommandError(f"--metrics-port is {port}; give a port number from 0 to 65535.")
        from django_domain_events.observability import metrics

        if not metrics.enabled():
            raise CommandError(
                "--metrics-port needs metrics on: set DOMAIN_EVENTS['METRICS'] = True and "
                'install prometheus_client (pip install "django-domain-outbox[prometheus]").'
            )
        metrics.start_http_server(port)
        self.stdout.write(f"Serving Prometheus metrics on port {port}.")

    def _waiting(self, seconds: float, listening: bool) -> None:
        if self._verbosity >= 2:
            how = "or a notification" if listening else "without listening"
            self.stdout.write(f"Waiting up to {seconds:g} s {how}.")

    def _woken(self, woke: Wake) -> None:
        if self._verbosity >= 2 and woke is not Wake.STOPPED:
            self.stdout.write(f"Woken: {woke.value}.")

    def _progress(self, batch: RelayTotals) -> None:
        if batch.errors:
            self.stderr.write(
                "A batch failed on a database error (logged); the relay carries on once the "
                "database answers."
            )
        else:
            self.stdout.write(f"Batch: {batch}.")
