"""Events with sensitive fields, shared by the unit and PostgreSQL tests of redaction and
erasure, and a fixture-ready declaration of a plain named one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

from django_domain_events import DomainEvent, Sensitive, declare_sensitive
from django_domain_events.declaration import sensitivity

EMAIL = "alice@example.com"
OTHER_EMAIL = "bob@example.com"
STREET = "12 Rue Secrète"
NEWSLETTER = "sensitive_tests.newsletter_signup"


@dataclass(frozen=True)
class Address:
    street: Annotated[str, Sensitive]
    city: str


@dataclass(frozen=True)
class CustomerRegistered(DomainEvent):
    event_type = "sensitive_tests.customer_registered"
    data_subject = "customer_id"

    customer_id: int
    email: Annotated[str, Sensitive]
    phone: str = field(default="", metadata={"sensitive": True})
    address: Address | None = None
    guests: list[Address] = field(default_factory=list)


@dataclass(frozen=True)
class Customer:
    id: str
    email: Annotated[str, Sensitive]


@dataclass(frozen=True)
class TicketOpened(DomainEvent):
    """Its data subject is nested: ``customer.id``, a string id."""

    event_type = "sensitive_tests.ticket_opened"
    data_subject = "customer.id"

    ticket: int
    customer: Customer


@contextmanager
def newsletter_declared() -> Iterator[None]:
    """``NEWSLETTER`` declared with ``email`` sensitive and ``user_id`` its subject, for the
    block; the declarations before it come back after."""
    before = dict(sensitivity._declared)
    declare_sensitive(NEWSLETTER, fields=("email",), data_subject="user_id")
    try:
        yield
    finally:
        sensitivity._declared.clear()
        sensitivity._declared.update(before)
