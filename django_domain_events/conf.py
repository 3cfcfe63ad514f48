"""The ``DOMAIN_EVENTS`` settings: defaults, read from Django's settings on every access.

Nothing is read at import time, so ``override_settings(DOMAIN_EVENTS=...)`` works in tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Dispatcher used by receivers that do not name one: "sync", "deferred", or the dotted
    # path of a Dispatcher subclass.
    "DISPATCHER": "sync",
    # Attempts before a failing delivery becomes a dead letter (per receiver: max_attempts=).
    "MAX_ATTEMPTS": 5,
    # Backoff between attempts: full jitter over min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2**n).
    "RETRY_BASE_DELAY": 2.0,
    "RETRY_MAX_DELAY": 3600.0,
    # Seconds one receiver run may take before it counts as a failed attempt (per receiver:
    # timeout=; None: no limit). See docs/receivers.md for where a run can be interrupted.
    "RECEIVER_TIMEOUT": 300.0,
    # Failed attempts kept per delivery, the newest (0: none; the delivery keeps its last error).
    "ATTEMPT_HISTORY": 20,
    # Largest encoded payload publish() accepts, in bytes.
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    # Most receivers one event type may have (None: no limit); checked at start-up.
    "MAX_RECEIVERS_PER_EVENT": None,
    # Ordering: whether receivers that do not say (@receiver(ordered=...)) get the deliveries
    # of one ordering key one at a time in publish order, and what a dead delivery does to
    # those behind it: "block" (they wait until a person acts) or "skip" (they go on).
    "ORDERED_RECEIVERS": False,
    "ORDERED_ON_DEAD": "block",
    # Log every publish, dispatch and delivery, with ids and timings, at DEBUG level.
    "DEBUG": False,
    # Prometheus metrics (the "prometheus" extra): counters and histograms of publishes and
    # deliveries, and gauges read from the outbox on scrape, at most once per
    # METRICS_CACHE_SECONDS. OpenTelemetry spans (the "otel" extra) around publish and every
    # receiver run.
    "METRICS": False,
    "METRICS_CACHE_SECONDS": 5.0,
    "TRACING": False,
    # The Celery dispatcher: the dotted path of the Celery app (None: Celery's current app, the
    # project's own), the queue of receivers that name none (None: Celery's routing decides),
    # the seconds a publish may spend retrying an unreachable broker, the seconds a connect to
    # or an answer from the broker may take when sending (where Celery's own settings do not
    # say), the seconds after a failed send during which the broker is not tried at all, and
    # the longest retry wait sent through Celery as a countdown (longer ones are left to the
    # relay).
    "CELERY_APP": None,
    "CELERY_QUEUE": None,
    "CELERY_PUBLISH_TIMEOUT": 1.5,
    "CELERY_BROKER_TIMEOUT": 1.0,
    "CELERY_BROKER_COOLDOWN": 5.0,
    "CELERY_MAX_RETRY_DELAY": 60.0,
    # The django.tasks dispatcher (Django 6+): the TASKS backend alias its tasks go to, the
    # queue of receivers that name none (None: the backend's default queue), the priority of
    # every task, and priorities by receiver name that override it.
    "TASKS_BACKEND": "default",
    "TASKS_QUEUE": None,
    "TASKS_PRIORITY": 0,
    "TASKS_PRIORITIES": {},
    # The relay: deliveries claimed per batch, seconds between rounds that found nothing, the
    # age a pending delivery must reach before the relay takes it (so the dispatch at commit is
    # not raced), how long a relay's claim lasts, and how long a dispatched delivery may go
    # unsettled before it counts as lost and is dispatched again.
    "RELAY_BATCH_SIZE": 500,
    # The most deliveries of receivers declared with shares_commit=True that the relay runs in
    # one transaction (1: each commits on its own).
    "SHARED_COMMIT_SIZE": 100,
    "RELAY_INTERVAL": 1.0,
    "RELAY_GRACE": 5.0,
    "RELAY_LEASE": 60.0,
    "DISPATCH_TIMEOUT": 300.0,
    # On PostgreSQL: whether a transaction that leaves deliveries to the relay (the "deferred"
    # dispatcher) sends a NOTIFY on RELAY_CHANNEL when it commits, and relays LISTEN for it and
    # run a pass at once; RELAY_INTERVAL is then only the safety net.
    "RELAY_LISTEN": True,
    "RELAY_CHANNEL": "domain_events",
    # prune_events: events older than this many days, all of whose deliveries are settled.
    "PRUNE_RETENTION_DAYS": 30.0,
    # How long settled deliveries are kept, by state, for every event type ("default") and for
    # named event types, each a timedelta or None (kept for ever). See docs/operations.md.
    "RETENTION": {},
    # Seconds between the relay's pruning by RETENTION (None: the relay does not prune).
    "RELAY_PRUNE_EVERY": None,
    # events_status: unhealthy when a delivery has been owed longer than this many seconds, or
    # when there are more dead deliveries than this (None: dead letters do not count).
    "STATUS_MAX_OWED_AGE": 300.0,
    "STATUS_MAX_DEAD": None,
    # events_status: unhealthy when more ordering keys than this are blocked by a dead delivery
    # (None: blocked keys do not count).
    "STATUS_MAX_BLOCKED_KEYS": 0,
    # publish() outside transaction.atomic(): "ignore" (it runs in a transaction of its own),
    # "warn" (a PublishedOutsideAtomic warning) or "raise" (PublishOutsideAtomicError).
    "PUBLISH_OUTSIDE_ATOMIC": "ignore",
    # Let users with the delete permission delete outbox rows in the admin (off: the outbox is
    # an audit trail, trimmed by prune_events).
    "ADMIN_ALLOW_DELETE": False,
    # Integration events to other services: brokers by alias ({"default": {"BACKEND": ...,
    # "URL": ..., "OPTIONS": {...}}}), routes from event types (or "prefix.*") to destinations
    # on them, and the CloudEvents "source" of the messages sent (None: "/<project>", the
    # package of ROOT_URLCONF). See docs/talking-to-services.md.
    "TRANSPORTS": {},
    "ROUTES": {},
    "INTEGRATION_SOURCE": None,
    # What consume_events takes: {"TRANSPORT": "default", "QUEUE": "billing", "DESTINATIONS":
    # [{"NAME": "payments", "ROUTING_KEY": "shop.#"}]} (None: nothing). See docs/consuming.md.
    "CONSUME": None,
    # A consumed message whose type no @consumer takes, or that cannot be read: "record" (kept
    # in the inbox and acknowledged) or "dead_letter" (kept and rejected to the broker's dead
    # letters).
    "CONSUMER_UNKNOWN_TYPES": "record",
    # How long inbox rows are kept, by outcome, each a timedelta or None (for ever), for
    # prune_inbox; outcomes a project's setting leaves out keep these (the rest: for ever).
    "INBOX_RETENTION": {"processed": dt.timedelta(days=30)},
}


class Settings:
    """Typed view of ``settings.DOMAIN_EVENTS``; each attribute falls back to its default."""

    def _get(self, key: str) -> Any:
        configured: dict[str, Any] = getattr(django_settings, "DOMAIN_EVENTS", None) or {}
        return configured.get(key, DEFAULTS[key])

    @property
    def DISPATCHER(self) -> str:
        return str(self._get("DISPATCHER"))

    @property
    def MAX_ATTEMPTS(self) -> int:
        return int(self._get("MAX_ATTEMPTS"))

    @property
    def RETRY_BASE_DELAY(self) -> float:
        return float(self._get("RETRY_BASE_DELAY"))

    @property
    def RETRY_MAX_DELAY(self) -> float:
        return float(self._get("RETRY_MAX_DELAY"))

    @property
    def RECEIVER_TIMEOUT(self) -> float | None:
        value = self._get("RECEIVER_TIMEOUT")
        return None if value is None else float(value)

    @property
    def ATTEMPT_HISTORY(self) -> int:
        return int(self._get("ATTEMPT_HISTORY"))

    @property
    def MAX_PAYLOAD_BYTES(self) -> int:
        return int(self._get("MAX_PAYLOAD_BYTES"))

    @property
    def MAX_RECEIVERS_PER_EVENT(self) -> int | None:
        value = self._get("MAX_RECEIVERS_PER_EVENT")
        return None if value is None else int(value)

    @property
    def ORDERED_RECEIVERS(self) -> bool:
        return bool(self._get("ORDERED_RECEIVERS"))

    @property
    def ORDERED_ON_DEAD(self) -> str:
        return str(self._get("ORDERED_ON_DEAD"))

    @property
    def DEBUG(self) -> bool:
        return bool(self._get("DEBUG"))

    @property
    def METRICS(self) -> bool:
        return bool(self._get("METRICS"))

    @property
    def METRICS_CACHE_SECONDS(self) -> float:
        return float(self._get("METRICS_CACHE_SECONDS"))

    @property
    def TRACING(self) -> bool:
        return bool(self._get("TRACING"))

    @property
    def CELERY_APP(self) -> str | None:
        value = self._get("CELERY_APP")
        return None if value is None else str(value)

    @property
    def CELERY_QUEUE(self) -> str | None:
        value = self._get("CELERY_QUEUE")
        return None if value is None else str(value)

    @property
    def CELERY_PUBLISH_TIMEOUT(self) -> float:
        return float(self._get("CELERY_PUBLISH_TIMEOUT"))

    @property
    def CELERY_BROKER_TIMEOUT(self) -> float:
        return float(self._get("CELERY_BROKER_TIMEOUT"))

    @property
    def CELERY_BROKER_COOLDOWN(self) -> float:
        return float(self._get("CELERY_BROKER_COOLDOWN"))

    @property
    def CELERY_MAX_RETRY_DELAY(self) -> float:
        return float(self._get("CELERY_MAX_RETRY_DELAY"))

    @property
    def TASKS_BACKEND(self) -> str:
        return str(self._get("TASKS_BACKEND"))

    @property
    def TASKS_QUEUE(self) -> str | None:
        value = self._get("TASKS_QUEUE")
        return None if value is None else str(value)

    @property
    def TASKS_PRIORITY(self) -> int:
        return int(self._get("TASKS_PRIORITY"))

    @property
    def TASKS_PRIORITIES(self) -> dict[str, int]:
        return {str(name): int(value) for name, value in self._get("TASKS_PRIORITIES").items()}

    @property
    def RELAY_BATCH_SIZE(self) -> int:
        return int(self._get("RELAY_BATCH_SIZE"))

    @property
    def SHARED_COMMIT_SIZE(self) -> int:
        return int(self._get("SHARED_COMMIT_SIZE"))

    @property
    def RELAY_INTERVAL(self) -> float:
        return float(self._get("RELAY_INTERVAL"))

    @property
    def RELAY_GRACE(self) -> float:
        return float(self._get("RELAY_GRACE"))

    @property
    def RELAY_LEASE(self) -> float:
        return float(self._get("RELAY_LEASE"))

    @property
    def DISPATCH_TIMEOUT(self) -> float:
        return float(self._get("DISPATCH_TIMEOUT"))

    @property
    def RELAY_LISTEN(self) -> bool:
        return bool(self._get("RELAY_LISTEN"))

    @property
    def RELAY_CHANNEL(self) -> str:
        return str(self._get("RELAY_CHANNEL"))

    @property
    def PRUNE_RETENTION_DAYS(self) -> float:
        return float(self._get("PRUNE_RETENTION_DAYS"))

    @property
    def RETENTION(self) -> dict[str, Any]:
        return dict(self._get("RETENTION") or {})

    @property
    def RELAY_PRUNE_EVERY(self) -> float | None:
        value = self._get("RELAY_PRUNE_EVERY")
        return None if value is None else float(value)

    @property
    def STATUS_MAX_OWED_AGE(self) -> float:
        return float(self._get("STATUS_MAX_OWED_AGE"))

    @property
    def STATUS_MAX_DEAD(self) -> int | None:
        value = self._get("STATUS_MAX_DEAD")
        return None if value is None else int(value)

    @property
    def STATUS_MAX_BLOCKED_KEYS(self) -> int | None:
        value = self._get("STATUS_MAX_BLOCKED_KEYS")
        return None if value is None else int(value)

    @property
    def PUBLISH_OUTSIDE_ATOMIC(self) -> str:
        return str(self._get("PUBLISH_OUTSIDE_ATOMIC"))

    @property
    def ADMIN_ALLOW_DELETE(self) -> bool:
        return bool(self._get("ADMIN_ALLOW_DELETE"))

    @property
    def TRANSPORTS(self) -> dict[str, Any]:
        value = self._get("TRANSPORTS")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def ROUTES(self) -> dict[str, Any]:
        value = self._get("ROUTES")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def INTEGRATION_SOURCE(self) -> str:
        value = self._get("INTEGRATION_SOURCE")
        if value:
            return str(value)
        urlconf = getattr(django_settings, "ROOT_URLCONF", None)
        project = str(urlconf).split(".", 1)[0] if urlconf else "django"
        return f"/{project}"

    @property
    def CONSUME(self) -> dict[str, Any] | None:
        value = self._get("CONSUME")
        return None if value is None else dict(value)

    @property
    def CONSUMER_UNKNOWN_TYPES(self) -> str:
        return str(self._get("CONSUMER_UNKNOWN_TYPES"))

    @property
    def INBOX_RETENTION(self) -> dict[str, dt.timedelta | None]:
        return {**DEFAULTS["INBOX_RETENTION"], **(self._get("INBOX_RETENTION") or {})}


settings = Settings()


class SettingSwitch:
    """A yes or no worked out from ``DOMAIN_EVENTS`` on first use, and again only after the
    setting changes (``override_settings`` sends ``setting_changed``): on hot paths, asking
    costs one call. Call the instance to get the answer."""

    def __init__(self, compute: Callable[[], bool]) -> None:
        self._compute = compute
        self._value: bool | None = None
        _switches.append(self)

    def __call__(self) -> bool:
        value = self._value
        if value is None:
            value = self._value = self._compute()
        return value

    def reset(self) -> None:
        """Work the answer out again on next use."""
        self._value = None


_switches: list[SettingSwitch] = []


def _reset_switches(*, setting: str, **kwargs: Any) -> None:
    if setting == "DOMAIN_EVENTS":
        for switch in _switches:
            switch.reset()


setting_changed.connect(_reset_switches, dispatch_uid="django_domain_events.switches")
