"""System checks of the databases the outbox is written to: what MySQL and MariaDB need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import connections

PREFIX = "django_domain_events"

LOCKING_ISOLATION_LEVELS = ("repeatable read", "serializable")
"""Isolation levels under which MySQL and MariaDB take gap locks on the outbox's indexes."""


@register(Tags.compatibility)
def check_isolation_levels(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W091: a MySQL or MariaDB database configured for REPEATABLE READ or SERIALIZABLE."""
    return isolation_warnings(django_settings.DATABASES)


def isolation_warnings(databases: dict[str, dict[str, Any]]) -> list[CheckMessage]:
    """The W091 warnings for the ``DATABASES`` setting ``databases``."""
    warnings: list[CheckMessage] = []
    for alias, database in databases.items():
        if database.get("ENGINE") != "django.db.backends.mysql":
            continue
        level = str(database.get("OPTIONS", {}).get("isolation_level") or "").lower()
        if level in LOCKING_ISOLATION_LEVELS:
            warnings.append(
                Warning(
                    f"DATABASES[{alias!r}] runs MySQL/MariaDB transactions at {level.upper()}: "
                    f"the relay's locking reads then take gap locks that make publishing "
                    f"transactions wait for it, and deadlock with it.",
                    hint=f"Remove 'isolation_level' from DATABASES[{alias!r}]['OPTIONS'] or set "
                    f"it to 'read committed', Django's default on MySQL and MariaDB.",
                    id=f"{PREFIX}.W091",
                )
            )
    return warnings


@register(Tags.database)
def check_skip_locked(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """W090: a MySQL or MariaDB server too old for ``SELECT ... FOR UPDATE SKIP LOCKED``.

    A database check: ``migrate`` and ``check --database`` run it, as it asks the server its
    version."""
    warnings: list[CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "mysql" or connection.features.has_select_for_update_skip_locked:
            continue
        server = "MariaDB" if connection.mysql_is_mariadb else "MySQL"  # type: ignore[attr-defined]
        version = ".".join(str(part) for part in connection.mysql_version)  # type: ignore[attr-defined]
        warnings.append(
            Warning(
                f"The database {alias!r} is {server} {version}, which has no SELECT ... FOR "
                f"UPDATE SKIP LOCKED: relays on it cannot claim disjoint batches and contend "
                f"for the same rows (no delivery runs twice, but they take turns).",
                hint="Upgrade to MariaDB 10.6 or MySQL 8.0.1 or newer, or run a single relay.",
                id=f"{PREFIX}.W090",
            )
        )
    return warnings
