"""Plain-object aggregates published by a ``UnitOfWork`` on PostgreSQL, in nested ``atomic()``
blocks (real savepoints): the scenarios of tests/aggregate_scenarios.py."""

from __future__ import annotations

import pytest

from django_domain_events.declaration.registry import Registry
from tests import aggregate_scenarios as scenarios

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]


def test_the_seed_aspect_publishes_after_returning_and_clears_after(
    receiver_registry: Registry,
) -> None:
    scenarios.the_seed_aspect_publishes_after_returning_and_clears_after()


def test_inside_a_transaction_events_stay_recorded_until_the_outer_commit() -> None:
    scenarios.inside_a_transaction_events_stay_recorded_until_the_outer_commit()


def test_an_outer_rollback_keeps_the_events_so_a_retry_publishes_them() -> None:
    scenarios.an_outer_rollback_keeps_the_events_so_a_retry_publishes_them()


def test_a_failed_unit_of_work_in_a_savepoint_publishes_nothing_and_keeps_its_events() -> None:
    scenarios.a_failed_unit_of_work_in_a_savepoint_publishes_nothing_and_keeps_its_events()


def test_a_savepoint_rolled_back_after_the_unit_of_work_lets_a_later_one_publish() -> None:
    scenarios.a_savepoint_rolled_back_after_the_unit_of_work_lets_a_later_one_publish_again()


def test_two_units_of_work_in_one_transaction_publish_an_event_once() -> None:
    scenarios.two_units_of_work_in_one_transaction_publish_an_event_once()
