"""The system checks of the databases the outbox is written to (MySQL and MariaDB)."""

from __future__ import annotations

from typing import Any

import django
import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.db import connection, connections

from django_domain_events.checks.databases import (
    check_isolation_levels,
    check_skip_locked,
    isolation_warnings,
)
from tests.stored_rows import ON_MARIADB

MYSQL = {"ENGINE": "django.db.backends.mysql", "NAME": "shop"}


def databases(**options: Any) -> dict[str, dict[str, Any]]:
    return {**settings.DATABASES, "shop": {**MYSQL, "OPTIONS": options}}


@pytest.mark.parametrize("level", ["repeatable read", "SERIALIZABLE"])
def test_a_mysql_database_at_a_locking_isolation_level_is_warned_of(level: str) -> None:
    [warning] = isolation_warnings(databases(isolation_level=level))

    assert warning.id == "django_domain_events.W091"
    assert f"DATABASES['shop'] runs MySQL/MariaDB transactions at {level.upper()}" in warning.msg
    assert "'read committed'" in str(warning.hint)


@pytest.mark.parametrize("options", [{}, {"isolation_level": "read committed"}])
def test_read_committed_or_django_s_default_passes(options: dict[str, Any]) -> None:
    assert isolation_warnings(databases(**options)) == []


def test_other_engines_are_not_looked_at() -> None:
    postgres = {"ENGINE": "django.db.backends.postgresql", "OPTIONS": {"isolation_level": 3}}
    assert isolation_warnings({**settings.DATABASES, "pg": postgres}) == []


def test_the_test_settings_pass() -> None:
    assert check_isolation_levels() == []


@pytest.mark.django_db
def test_the_skip_locked_check_is_a_database_check_that_passes_on_this_server() -> None:
    # Not among the checks every command runs: it asks the server its version.
    assert not [m for m in run_checks() if m.id == "django_domain_events.W090"]
    assert check_skip_locked(databases=["default"]) == []


@pytest.mark.skipif(not ON_MARIADB, reason="needs a MariaDB connection to age")
@pytest.mark.skipif(
    django.VERSION >= (6, 0), reason="Django 6 supports no MariaDB without SKIP LOCKED"
)
@pytest.mark.django_db
def test_a_mariadb_server_older_than_10_6_is_warned_of() -> None:
    # A second connection to the same server, whose version Django reads as 10.5: its
    # features (SKIP LOCKED from 10.6) are worked out from that, as for a real 10.5 server.
    aged = connection.copy("aged")
    aged.__dict__["mysql_version"] = (10, 5, 25)
    connections["aged"] = aged
    try:
        [warning] = check_skip_locked(databases=["aged"])
    finally:
        aged.close()
        del connections["aged"]

    assert warning.id == "django_domain_events.W090"
    assert "'aged' is MariaDB 10.5.25, which has no SELECT ... FOR UPDATE SKIP LOCKED" in (
        warning.msg
    )
    assert "MariaDB 10.6" in str(warning.hint)
