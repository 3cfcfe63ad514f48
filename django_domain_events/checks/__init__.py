"""System checks: configuration and declaration mistakes reported at start-up.

Every check has a stable id (``django_domain_events.E001`` …) that a project can silence with
``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

from django_domain_events.checks.configuration import check_settings
from django_domain_events.checks.consuming import check_consuming
from django_domain_events.checks.databases import check_isolation_levels, check_skip_locked
from django_domain_events.checks.declarations import (
    check_backend_subscriptions,
    check_event_classes,
    check_integration_events,
    check_receiver_limit,
    check_receivers,
)
from django_domain_events.checks.retention import check_retention
from django_domain_events.checks.routes import check_routes, check_transport_brokers
from django_domain_events.checks.sensitivity import check_sensitive_fields
from django_domain_events.checks.wildcards import check_wildcard_receivers

__all__ = [
    "check_backend_subscriptions",
    "check_consuming",
    "check_event_classes",
    "check_integration_events",
    "check_isolation_levels",
    "check_receiver_limit",
    "check_receivers",
    "check_retention",
    "check_routes",
    "check_sensitive_fields",
    "check_settings",
    "check_skip_locked",
    "check_transport_brokers",
    "check_wildcard_receivers",
]
