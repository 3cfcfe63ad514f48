"""The Redis Streams transport without a server: how a destination's routing key binds (AMQP
topic patterns), what its options accept, and the checks that need no broker."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_domain_events.checks.routes import check_routes, check_transport_brokers
from django_domain_events.exceptions import TransportError
from django_domain_events.transports import REDIS_STREAMS, transport_for
from django_domain_events.transports.redis_streams import (
    RedisStreamsTransport,
    _topic_matches,
)


@pytest.mark.parametrize(
    ("pattern", "routing_key", "matches"),
    [
        ("shop.PaymentSettled", "shop.PaymentSettled", True),
        ("shop.PaymentSettled", "shop.PaymentRefunded", False),
        ("shop.*", "shop.PaymentSettled", True),
        ("shop.*", "shop.refunds.created", False),
        ("shop.*", "shop", False),
        ("shop.#", "shop", True),
        ("shop.#", "shop.refunds.created", True),
        ("#", "anything.at.all", True),
        ("#.created", "shop.refunds.created", True),
        ("shop.#.created", "shop.created", True),
        ("shop.*.created", "shop.refunds.created", True),
        ("*.PaymentSettled", "crm.PaymentSettled", True),
        ("shop.Payment*", "shop.PaymentSettled", False),  # * is a whole word, not a glob
    ],
)
def test_a_binding_matches_routing_keys_as_a_rabbitmq_topic_exchange_does(
    pattern: str, routing_key: str, matches: bool
) -> None:
    assert _topic_matches(pattern, routing_key) is matches


def test_unknown_options_are_an_error_naming_the_known_ones() -> None:
    with pytest.raises(TransportError, match="unknown OPTIONS maxlength; known: check_pers"):
        RedisStreamsTransport("default", "", {"maxlength": 10})


def test_a_socket_timeout_shorter_than_the_poll_is_an_error() -> None:
    with pytest.raises(TransportError, match=r"socket_timeout.*must exceed.*poll_interval"):
        RedisStreamsTransport("default", "", {"socket_timeout": 1, "poll_interval": 2})


def test_destinations_are_streams_under_the_prefix() -> None:
    transport = RedisStreamsTransport("default", "", {"stream_prefix": "events:"})

    assert transport.stream_for("payments") == "events:payments"
    assert transport.dead_letter_stream_for("billing") == "events:dead-letter:billing"
    assert transport.name == "redis"


def test_the_redis_transport_passes_the_route_checks_and_its_import_hint_names_the_extra() -> None:
    with override_settings(DOMAIN_EVENTS={"TRANSPORTS": {"default": {"BACKEND": REDIS_STREAMS}}}):
        assert list(check_routes()) == []
    with override_settings(
        DOMAIN_EVENTS={"TRANSPORTS": {"default": {"BACKEND": "redis_missing.Transport"}}}
    ):
        [found] = check_routes()
    assert found.id == "django_domain_events.E103"
    assert "[redis]" in found.hint


def test_a_transport_without_broker_checks_adds_nothing_to_check_deploy() -> None:
    memory = {"BACKEND": "django_domain_events.transports.memory.InMemoryTransport"}
    with override_settings(DOMAIN_EVENTS={"TRANSPORTS": {"default": memory}}):
        try:
            assert check_transport_brokers() == []
        finally:
            transport_for("default").close()


def test_w105_is_not_asked_for_when_persistence_checks_are_off() -> None:
    # No server at this address: the check would have to connect to say anything.
    transport = RedisStreamsTransport(
        "default", "redis://127.0.0.1:1/0", {"check_persistence": False}
    )

    assert transport.check() == []
