"""System checks of the ``DOMAIN_EVENTS`` settings and the dispatchers they name."""

from __future__ import annotations

import difflib
import importlib.util
import math
from collections.abc import Sequence
from typing import Any

import django
from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, register

from django_domain_events.conf import DEFAULTS
from django_domain_events.dispatchers import BUILTIN_DISPATCHERS, dispatcher_class
from django_domain_events.exceptions import DispatcherError

PREFIX = "django_domain_events"


@register(Tags.compatibility)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E001 unknown keys, E002 bad values, E003 unknown default dispatcher, E010 the Celery
    dispatcher without Celery, E050 a bad ``PUBLISH_OUTSIDE_ATOMIC``."""
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    if configured is None:
        return []
    if not isinstance(configured, dict):
        return [
            Error(
                f"DOMAIN_EVENTS must be a dict, got {type(configured).__name__}.",
                hint='Write DOMAIN_EVENTS = {"DISPATCHER": "sync"} or leave it out.',
                id=f"{PREFIX}.E002",
            )
        ]
    errors: list[CheckMessage] = []
    for key in configured:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            errors.append(
                Error(
                    f"DOMAIN_EVENTS has an unknown key {key!r}.",
                    hint=f"{hint}Known keys: {', '.join(sorted(DEFAULTS))}.",
                    id=f"{PREFIX}.E001",
                )
            )
    for key, kinds, minimum in (
        ("MAX_ATTEMPTS", int, 1),
        ("ATTEMPT_HISTORY", int, 0),
        ("RETRY_BASE_DELAY", int | float, 0),
        ("RETRY_MAX_DELAY", int | float, 0),
        ("MAX_PAYLOAD_BYTES", int, 1),
        ("CELERY_PUBLISH_TIMEOUT", int | float, 0),
        ("CELERY_BROKER_TIMEOUT", int | float, 0.001),
        ("CELERY_BROKER_COOLDOWN", int | float, 0),
        ("CELERY_MAX_RETRY_DELAY", int | float, 0),
        ("RELAY_BATCH_SIZE", int, 1),
        ("SHARED_COMMIT_SIZE", int, 1),
        ("RELAY_INTERVAL", int | float, 0),
        ("RELAY_GRACE", int | float, 0),
        ("RELAY_LEASE", int | float, 1),
        ("DISPATCH_TIMEOUT", int | float, 0),
        ("PRUNE_RETENTION_DAYS", int | float, 0),
        ("STATUS_MAX_OWED_AGE", int | float, 0),
        ("METRICS_CACHE_SECONDS", int | float, 0),
    ):
        if key not in configured:
            continue
        value = configured[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or not math.isfinite(value)
            or value < minimum
        ):
            what = "an integer" if kinds is int else "a finite number"
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {value!r}; it must be {what} >= {minimum}.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id=f"{PREFIX}.E002",
                )
            )
    limit = configured.get("MAX_RECEIVERS_PER_EVENT")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['MAX_RECEIVERS_PER_EVENT'] is {limit!r}; it must be None or an "
                f"integer >= 1.",
                hint="The default is None (no limit).",
                id=f"{PREFIX}.E002",
            )
        )
    timeout = configured.get("RECEIVER_TIMEOUT", DEFAULTS["RECEIVER_TIMEOUT"])
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['RECEIVER_TIMEOUT'] is {timeout!r}; it must be None or a number "
                f"of seconds above 0.",
                hint=f"The default is {DEFAULTS['RECEIVER_TIMEOUT']!r}; None sets no limit.",
                id=f"{PREFIX}.E002",
            )
        )
    for key, default in (
        ("STATUS_MAX_DEAD", "None (dead deliveries do not make events_status fail)"),
        ("STATUS_MAX_BLOCKED_KEYS", "0 (any blocked ordering key makes events_status fail)"),
    ):
        limit = configured.get(key)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {limit!r}; it must be None or an integer >= 0.",
                    hint=f"The default is {default}.",
                    id=f"{PREFIX}.E002",
                )
            )
    on_dead = configured.get("ORDERED_ON_DEAD", "block")
    if on_dead not in ("block", "skip"):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['ORDERED_ON_DEAD'] is {on_dead!r}; it must be 'block' or 'skip'.",
                hint="The default is 'block': a dead delivery holds up its key until retried.",
                id=f"{PREFIX}.E002",
            )
        )
    for key in (
        "DEBUG",
        "ADMIN_ALLOW_DELETE",
        "METRICS",
        "TRACING",
        "ORDERED_RECEIVERS",
        "RELAY_LISTEN",
    ):
        if key in configured and not isinstance(configured[key], bool):
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {configured[key]!r}; it must be True or False.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id=f"{PREFIX}.E002",
                )
            )
    errors.extend(_outside_atomic_errors(configured))
    errors.extend(_channel_errors(configured))
    errors.extend(_celery_setting_errors(configured))
    errors.extend(_tasks_setting_errors(configured))
    errors.extend(_observability_errors(configured))
    if "DISPATCHER" in configured:
        errors.extend(dispatcher_errors(configured["DISPATCHER"], 'DOMAIN_EVENTS["DISPATCHER"]'))
    return errors


PUBLISH_OUTSIDE_ATOMIC_MODES = ("ignore", "warn", "raise")
"""What ``publish()`` may do outside ``atomic()``."""


def _outside_atomic_errors(configured: dict[str, Any]) -> list[CheckMessage]:
    mode = configured.get("PUBLISH_OUTSIDE_ATOMIC", DEFAULTS["PUBLISH_OUTSIDE_ATOMIC"])
    if isinstance(mode, str) and mode in PUBLISH_OUTSIDE_ATOMIC_MODES:
        return []
    return [
        Error(
            f"DOMAIN_EVENTS['PUBLISH_OUTSIDE_ATOMIC'] is {mode!r}; it must be 'ignore', 'warn' "
            f"or 'raise'.",
            hint=(
                "The default is 'ignore'; 'warn' issues a PublishedOutsideAtomic warning and "
                "'raise' raises PublishOutsideAtomicError when publish() runs outside atomic()."
            ),
            id=f"{PREFIX}.E050",
        )
    ]


def _channel_errors(configured: dict[str, Any]) -> list[CheckMessage]:
    channel = configured.get("RELAY_CHANNEL", DEFAULTS["RELAY_CHANNEL"])
    # PostgreSQL refuses a channel name longer than an identifier, 63 bytes.
    if isinstance(channel, str) and channel and len(channel.encode()) <= 63:
        return []
    return [
        Error(
            f"DOMAIN_EVENTS['RELAY_CHANNEL'] is {channel!r}; it must be a non-empty string of "
            f"at most 63 bytes, a PostgreSQL channel name.",
            hint=f"The default is {DEFAULTS['RELAY_CHANNEL']!r}.",
            id=f"{PREFIX}.E002",
        )
    ]


def _celery_setting_errors(configured: dict[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key in ("CELERY_APP", "CELERY_QUEUE"):
        value = configured.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {value!r}; it must be None or a non-empty string.",
                    hint="The default is None; see the Using Celery page of the docs.",
                    id=f"{PREFIX}.E002",
                )
            )
    path = configured.get("CELERY_APP")
    if isinstance(path, str) and path and _celery_installed():
        from django_domain_events.dispatchers.celery.dispatcher import celery_app

        try:
            celery_app(path)
        except DispatcherError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint=(
                        "Give the dotted path of your Celery app, such as 'proj.celery.app', or "
                        "leave CELERY_APP out to use Celery's current app."
                    ),
                    id=f"{PREFIX}.E002",
                )
            )
    return errors


def _observability_errors(configured: dict[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key, module, extra in (
        ("METRICS", "prometheus_client", "prometheus"),
        ("TRACING", "opentelemetry.trace", "otel"),
    ):
        if configured.get(key) is True and importlib.util.find_spec(module) is None:
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is True, but {module.split('.')[0]} is not installed.",
                    hint=(
                        f'Install it with the extra: pip install "django-domain-outbox[{extra}]", '
                        f"or set DOMAIN_EVENTS[{key!r}] to False."
                    ),
                    id=f"{PREFIX}.E002",
                )
            )
    return errors


def _tasks_setting_errors(configured: dict[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    backend = configured.get("TASKS_BACKEND", "default")
    if not isinstance(backend, str) or not backend:
        errors.append(
            Error(
                f"DOMAIN_EVENTS['TASKS_BACKEND'] is {backend!r}; it must be the alias of a "
                f"backend in settings.TASKS.",
                hint="The default is 'default'; see the django.tasks page of the docs.",
                id=f"{PREFIX}.E002",
            )
        )
    elif "TASKS_BACKEND" in configured and _django_tasks_available():
        aliases = getattr(django_settings, "TASKS", None) or {"default": {}}
        if backend not in aliases:
            errors.append(
                Error(
                    f"DOMAIN_EVENTS['TASKS_BACKEND'] is {backend!r}, which settings.TASKS does "
                    f"not configure.",
                    hint=f"Name one of {', '.join(sorted(aliases))}, or add {backend!r} to TASKS.",
                    id=f"{PREFIX}.E002",
                )
            )
    queue = configured.get("TASKS_QUEUE")
    if queue is not None and (not isinstance(queue, str) or not queue):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['TASKS_QUEUE'] is {queue!r}; it must be None or a non-empty "
                f"string.",
                hint="The default is None: the backend's default queue.",
                id=f"{PREFIX}.E002",
            )
        )
    priorities = configured.get("TASKS_PRIORITIES", {})
    if not isinstance(priorities, dict):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['TASKS_PRIORITIES'] is {priorities!r}; it must be a dict of "
                f"receiver names to priorities.",
                hint="The default is {}: every task has TASKS_PRIORITY.",
                id=f"{PREFIX}.E002",
            )
        )
        priorities = {}
    for where, value in [
        ("TASKS_PRIORITY", configured.get("TASKS_PRIORITY", 0)),
        *((f"TASKS_PRIORITIES[{name!r}]", value) for name, value in priorities.items()),
    ]:
        if isinstance(value, bool) or not isinstance(value, int) or not -100 <= value <= 100:
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{where!r}] is {value!r}; it must be an integer from -100 "
                    f"to 100, django.tasks' range of priorities.",
                    hint="The default is 0; higher runs first on backends that order by it.",
                    id=f"{PREFIX}.E002",
                )
            )
    return errors


def _django_tasks_available() -> bool:
    # Django 6 ships django.tasks; find_spec() looks without importing it.
    return importlib.util.find_spec("django.tasks") is not None


def _celery_installed() -> bool:
    # find_spec() looks without importing: checks must not load Celery for projects without it.
    return importlib.util.find_spec("celery") is not None


def dispatcher_errors(name: Any, where: str) -> list[CheckMessage]:
    if not isinstance(name, str):
        return [
            Error(
                f"{where} is {name!r}; it must be a string.",
                hint=f"Use one of {', '.join(sorted(BUILTIN_DISPATCHERS))} or a dotted path.",
                id=f"{PREFIX}.E003",
            )
        ]
    if name == "celery" and not _celery_installed():
        return [
            Error(
                f"{where} is 'celery', but Celery is not installed.",
                hint='Install it with the extra: pip install "django-domain-outbox[celery]".',
                id=f"{PREFIX}.E010",
            )
        ]
    if name == "tasks" and not _django_tasks_available():
        return [
            Error(
                f"{where} is 'tasks', but this Django ({django.get_version()}) has no "
                f"django.tasks: the django.tasks dispatcher needs Django 6.0 or later.",
                hint="Upgrade Django, or choose another dispatcher such as 'celery' or 'sync'.",
                id=f"{PREFIX}.E020",
            )
        ]
    try:
        dispatcher_class(name)
    except DispatcherError as exc:
        return [
            Error(
                f"{where}: {exc}",
                hint=(
                    f"Use one of {', '.join(sorted(BUILTIN_DISPATCHERS))} or the dotted path of a "
                    f"django_domain_events.dispatchers.Dispatcher subclass."
                ),
                id=f"{PREFIX}.E003",
            )
        ]
    return []
