"""System checks of retention: ``DOMAIN_EVENTS["RETENTION"]``, the event classes'
``retention`` attributes, and ``RELAY_PRUNE_EVERY``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, register

from django_domain_events.declaration.events import event_classes
from django_domain_events.operations.retention import DEFAULT_KEY, retention_problems

PREFIX = "django_domain_events"

RETENTION_HINT = (
    'Write, for example, "RETENTION": {"default": {"delivered": timedelta(days=7), '
    '"dead": None}, "billing.invoice_issued": {"delivered": timedelta(days=365)}}.'
)


@register(Tags.compatibility)
def check_retention(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E040 a bad ``RETENTION`` setting, E041 a bad ``retention`` on an event class, E002 a bad
    ``RELAY_PRUNE_EVERY``."""
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    configured = configured if isinstance(configured, dict) else {}
    errors: list[CheckMessage] = []
    setting = configured.get("RETENTION", {})
    if not isinstance(setting, dict):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['RETENTION'] is {setting!r}; it must be a dict of event types "
                f"(or {DEFAULT_KEY!r}) to retentions.",
                hint=RETENTION_HINT,
                id=f"{PREFIX}.E040",
            )
        )
        setting = {}
    for key, value in setting.items():
        where = f"DOMAIN_EVENTS['RETENTION'][{key!r}]"
        if not isinstance(key, str) or not key:
            problems = [f"{where}: the key must be an event type or {DEFAULT_KEY!r}."]
        else:
            problems = list(retention_problems(value, where))
        errors.extend(
            Error(problem, hint=RETENTION_HINT, id=f"{PREFIX}.E040") for problem in problems
        )
    for cls in sorted(event_classes(), key=lambda cls: cls.event_type):
        declared = cls.__dict__.get("retention")
        if declared is None:
            continue
        where = f"{cls.__module__}.{cls.__qualname__}.retention"
        errors.extend(
            Error(
                problem,
                hint='Write, for example, retention = {"delivered": timedelta(days=7)}.',
                obj=cls,
                id=f"{PREFIX}.E041",
            )
            for problem in retention_problems(declared, where)
        )
    every = configured.get("RELAY_PRUNE_EVERY")
    if every is not None and (
        isinstance(every, bool)
        or not isinstance(every, int | float)
        or not math.isfinite(every)
        or every <= 0
    ):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['RELAY_PRUNE_EVERY'] is {every!r}; it must be None or a number "
                f"of seconds above 0.",
                hint="The default is None: the relay does not prune. 3600 prunes hourly.",
                id=f"{PREFIX}.E002",
            )
        )
    return errors
