"""Publishing interleaved lines of events, and checking what the receivers made of them."""

from __future__ import annotations

import hashlib
from collections import Counter

from django.db import transaction

from django_domain_events import NamedEvent, publish, publish_many
from django_domain_events.models import Delivery, DeliveryState
from tests.testapp.models import Effect

from .receivers import ORDERED, STEPPED, UNORDERED


def fails_first(key: str, n: int) -> bool:
    """Whether the first attempt of event ``n`` of ``key`` fails: about one in five, the same
    ones on every run."""
    return hashlib.sha256(f"{key}:{n}".encode()).digest()[0] % 5 == 0


def stepped(key: str, n: int, **payload: object) -> NamedEvent:
    """Event ``n`` of ``key``'s line."""
    return NamedEvent(
        STEPPED,
        {"key": key, "n": n, "fail_first": fails_first(key, n), **payload},
        ordering_key=key,
    )


def publish_interleaved(keys: list[str], per_key: int, *, chunk: int = 25) -> Counter[str]:
    """Publish events ``0 .. per_key - 1`` of every key, two steps of ``chunk`` keys per
    transaction, so each transaction holds two events of each of its keys and the keys'
    events alternate; one transaction in two uses ``publish_many()``, the other ``publish()``
    per event. Return how many deliveries of each receiver were written ``waiting``."""
    transactions = 0
    waiting = Counter[str]()
    for first in range(0, per_key, 2):
        for start in range(0, len(keys), chunk):
            events = [
                stepped(key, n)
                for n in range(first, min(first + 2, per_key))
                for key in keys[start : start + chunk]
            ]
            with transaction.atomic():
                if transactions % 2 == 0:
                    publish_many(events)
                else:
                    for event in events:
                        publish(event)
                # Before the commit, so no worker can have settled what they wait for yet.
                written = Delivery.objects.filter(
                    event__ordering_key__in=keys[start : start + chunk],
                    event__payload__n__gte=first,
                    state=DeliveryState.WAITING,
                )
                waiting.update(written.values_list("receiver", flat=True))
            transactions += 1
    return waiting


def runs(name: str) -> dict[str, list[int]]:
    """The events of each key whose run by receiver ``name`` committed, in commit order."""
    found: dict[str, list[int]] = {}
    for effect in Effect.objects.filter(receiver__startswith=f"{name}:").order_by("pk"):
        _, key, n = effect.receiver.split(":")
        found.setdefault(key, []).append(int(n))
    return found


def assert_in_publish_order(keys: list[str], per_key: int) -> None:
    """The ordered receiver ran every event of every key once, in publish order, and each
    delivery's sequence number is its place in its line; the unordered one ran every event
    once, with no line, on its first attempt; every delivery is delivered."""
    assert runs(ORDERED) == {key: list(range(per_key)) for key in keys}
    unordered = runs(UNORDERED)
    assert sorted(unordered) == sorted(keys)
    assert {key: sorted(ns) for key, ns in unordered.items()} == {
        key: list(range(per_key)) for key in keys
    }
    assert Effect.objects.count() == 2 * len(keys) * per_key  # none duplicated
    assert not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists()

    ordered = Delivery.objects.filter(receiver=ORDERED).values_list(
        "ordering_key", "ordering_seq", "attempts", "event__payload"
    )
    places = Counter[bool]()
    for key, seq, attempts, payload in ordered:
        assert (payload["key"], seq) == (key, payload["n"] + 1)
        assert attempts == (2 if payload["fail_first"] else 1), (key, payload, attempts)
        places[payload["fail_first"]] += 1
    assert places[True] > 0  # some first attempts did fail and were retried
    assert sum(places.values()) == len(keys) * per_key
    plain = Delivery.objects.filter(receiver=UNORDERED)
    found = plain.values_list("ordering_key", "ordering_seq", "attempts", "last_error")
    assert list(found.order_by().distinct()) == [("", None, 1, "")]
