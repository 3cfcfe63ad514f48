"""System checks of what the project consumes: ``CONSUME``, the transport it names,
``CONSUMER_UNKNOWN_TYPES``, ``INBOX_RETENTION`` and the ``@consumer`` receivers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_domain_events.checks.configuration import PREFIX
from django_domain_events.integration.consumers import all_consumers
from django_domain_events.integration.inbox import InboxOutcome
from django_domain_events.integration.subscriptions import EXAMPLE, subscription_problem

UNKNOWN_TYPE_CHOICES = ("record", "dead_letter")


@register(Tags.compatibility)
def check_consuming(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E110 a malformed ``CONSUME``, E111 its transport missing from ``TRANSPORTS``, E112 a bad
    ``CONSUMER_UNKNOWN_TYPES``, E113 a bad ``INBOX_RETENTION``, W114 ``@consumer`` receivers
    with nothing to consume from."""
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    if configured is None:
        configured = {}
    if not isinstance(configured, dict):
        return []  # E002
    errors: list[CheckMessage] = []
    consume = configured.get("CONSUME")
    if consume is not None:
        problem = subscription_problem(consume)
        if problem is not None:
            errors.append(
                Error(f"{problem}.", hint=f"Write it like {EXAMPLE}.", id=f"{PREFIX}.E110")
            )
        else:
            transport = consume.get("TRANSPORT", "default")
            transports = configured.get("TRANSPORTS") or {}
            if not isinstance(transports, dict) or transport not in transports:
                errors.append(
                    Error(
                        f"DOMAIN_EVENTS['CONSUME'] consumes from transport {transport!r}, which "
                        f"DOMAIN_EVENTS['TRANSPORTS'] does not declare.",
                        hint=(
                            f"Add {transport!r} to DOMAIN_EVENTS['TRANSPORTS'] ({{'BACKEND': "
                            f"..., 'URL': ...}}), or name a declared one in CONSUME['TRANSPORT']."
                        ),
                        id=f"{PREFIX}.E111",
                    )
                )
    unknown = configured.get("CONSUMER_UNKNOWN_TYPES", "record")
    if unknown not in UNKNOWN_TYPE_CHOICES:
        errors.append(
            Error(
                f"DOMAIN_EVENTS['CONSUMER_UNKNOWN_TYPES'] is {unknown!r}; it must be 'record' "
                f"or 'dead_letter'.",
                hint=(
                    "'record' keeps a message no @consumer takes in the inbox and acknowledges "
                    "it; 'dead_letter' keeps it and rejects it to the broker's dead letters."
                ),
                id=f"{PREFIX}.E112",
            )
        )
    errors.extend(_retention_errors(configured.get("INBOX_RETENTION", {})))
    if consume is None:
        declared = all_consumers()
        if declared:
            names = ", ".join(sorted(found.name for found in declared)[:5])
            errors.append(
                Warning(
                    f"@consumer receivers are declared ({names}) but DOMAIN_EVENTS['CONSUME'] "
                    f"is not set, so consume_events has nothing to consume.",
                    hint=f"Set DOMAIN_EVENTS['CONSUME'], such as {EXAMPLE}.",
                    id=f"{PREFIX}.W114",
                )
            )
    return errors


def _retention_errors(value: Any) -> list[CheckMessage]:
    hint = (
        "Give a dict by outcome ("
        + ", ".join(str(outcome) for outcome in InboxOutcome)
        + ") of timedeltas, or None to keep rows of that outcome for ever, such as "
        "{'processed': timedelta(days=30)}."
    )
    if not isinstance(value, dict):
        return [
            Error(
                f"DOMAIN_EVENTS['INBOX_RETENTION'] is {value!r}, not a dict.",
                hint=hint,
                id=f"{PREFIX}.E113",
            )
        ]
    errors: list[CheckMessage] = []
    for outcome, kept in value.items():
        if outcome not in InboxOutcome.values:
            problem = f"names {outcome!r}, which is not an inbox outcome"
        elif kept is not None and (not isinstance(kept, dt.timedelta) or kept <= dt.timedelta(0)):
            problem = f"keeps {outcome!r} rows for {kept!r}, not a timedelta above 0 or None"
        else:
            continue
        errors.append(
            Error(f"DOMAIN_EVENTS['INBOX_RETENTION'] {problem}.", hint=hint, id=f"{PREFIX}.E113")
        )
    return errors
