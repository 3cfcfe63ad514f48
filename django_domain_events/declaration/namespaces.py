"""Namespaces: sets of receivers of their own, with their own limit and debug switch.

A receiver declared with ``@receiver`` belongs to the ``"default"`` namespace, the one
``publish()`` delivers to. ``Namespace("users").receiver(...)`` declares one in ``"users"``,
which only an ``Emitter`` bound to that namespace delivers to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings as django_settings

from django_domain_events.declaration.identifiers import identifier_problem
from django_domain_events.declaration.registry import DEFAULT_NAMESPACE, Receiver, registry
from django_domain_events.exceptions import ReceiverLimitError

if TYPE_CHECKING:
    from django_domain_events.declaration.events import DomainEvent
    from django_domain_events.declaration.registry import OnDead

F = TypeVar("F", bound=Callable[..., Any])

LIMIT_SETTING = "DOMAIN_EVENTS['MAX_RECEIVERS_PER_EVENT']"


@dataclass(frozen=True)
class Namespace:
    """A namespace of receivers: ``users = Namespace("users", max_receivers_per_event=10)``.

    ``max_receivers_per_event`` (None: ``DOMAIN_EVENTS["MAX_RECEIVERS_PER_EVENT"]``) is checked
    each time a receiver is declared in it. ``debug`` switches the debug log of what is
    published to it on or off (None: ``DOMAIN_EVENTS["DEBUG"]``). Declaring a namespace again
    under the same name replaces the earlier declaration.
    """

    name: str
    max_receivers_per_event: int | None = None
    debug: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Namespace({self.name!r}): give a non-empty string.")
        problem = identifier_problem(self.name)
        if problem is not None:
            raise ValueError(f"Namespace({self.name!r}): the name {problem}.")
        if self.name == DEFAULT_NAMESPACE:
            raise ValueError(
                f"Namespace({DEFAULT_NAMESPACE!r}) is the namespace of @receiver; its limit is "
                f"{LIMIT_SETTING} and its debug switch DOMAIN_EVENTS['DEBUG']. Choose another name."
            )
        limit = self.max_receivers_per_event
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValueError(
                f"Namespace({self.name!r}, max_receivers_per_event={limit!r}): give None or an "
                f"integer >= 1."
            )
        if self.debug is not None and not isinstance(self.debug, bool):
            raise ValueError(
                f"Namespace({self.name!r}, debug={self.debug!r}): give True, False or None."
            )
        _namespaces[self.name] = self

    def receiver(
        self,
        event: type[DomainEvent] | str,
        *,
        dispatcher: str | None = None,
        queue: str | None = None,
        max_attempts: int | None = None,
        name: str | None = None,
        ordered: bool | None = None,
        on_dead: OnDead | None = None,
        timeout: float | None = None,
        once: bool = False,
        allow_sync: bool = False,
        dry_run: bool = False,
        delay: dt.timedelta | None = None,
        shares_commit: bool = False,
    ) -> Callable[[F], F]:
        """``@receiver`` for this namespace: same arguments, same checks."""
        # receivers imports this module for the limits; importing it here keeps that one way.
        from django_domain_events.declaration.receivers import make_receiver, register

        def decorate(func: F) -> F:
            register(
                make_receiver(
                    event,
                    func,
                    dispatcher=dispatcher,
                    queue=queue,
                    max_attempts=max_attempts,
                    name=name,
                    ordered=ordered,
                    on_dead=on_dead,
                    timeout=timeout,
                    once=once,
                    allow_sync=allow_sync,
                    dry_run=dry_run,
                    namespace=self.name,
                    delay=delay,
                    shares_commit=shares_commit,
                )
            )
            return func

        return decorate

    def receivers_for(self, event_type: str) -> tuple[Receiver, ...]:
        """The receivers of ``event_type`` in this namespace, wildcard receivers included."""
        return registry.receivers_for(event_type, self.name)


_namespaces: dict[str, Namespace] = {}


def receiver_limit(namespace: str) -> tuple[int | None, str]:
    """The most receivers one event type may have in ``namespace``, and where that is set."""
    declared = _namespaces.get(namespace)
    if declared is not None and declared.max_receivers_per_event is not None:
        return declared.max_receivers_per_event, f"Namespace({namespace!r}).max_receivers_per_event"
    return _configured_limit(), LIMIT_SETTING


def _configured_limit() -> int | None:
    # Receivers are declared while Django starts, maybe before settings are usable; a malformed
    # limit is check E002's to report.
    if not django_settings.configured:
        return None
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    if not isinstance(configured, dict):
        return None
    value = configured.get("MAX_RECEIVERS_PER_EVENT")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


def debug_switch(namespace: str) -> bool | None:
    """The debug switch of ``namespace`` (None: ``DOMAIN_EVENTS["DEBUG"]`` decides)."""
    declared = _namespaces.get(namespace)
    return None if declared is None else declared.debug


def check_room(receiver: Receiver) -> None:
    """Raise ``ReceiverLimitError`` if registering ``receiver`` would give an event type of its
    namespace more receivers than the namespace's limit."""
    limit, where = receiver_limit(receiver.namespace)
    if limit is None:
        return
    after = registry.with_receiver(receiver)
    # A pattern stands for the event types under it that no receiver names, and counts for
    # each one a receiver of its namespace names.
    named = [receiver.event_type]
    if receiver.is_wildcard:
        named.extend(
            sorted(
                {
                    other.event_type
                    for other in after.all()
                    if other.namespace == receiver.namespace
                    and not other.is_wildcard
                    and receiver.matches(other.event_type)
                }
            )
        )
    for event_type in named:
        found = after.receivers_for(event_type, receiver.namespace)
        if len(found) > limit:
            raise ReceiverLimitError(
                f"Receiver {receiver.name!r} would be receiver number {len(found)} of "
                f"{event_type!r} in namespace {receiver.namespace!r}, whose limit is {limit} "
                f"({where}); already registered: "
                f"{', '.join(other.name for other in found if other.name != receiver.name)}. "
                f"Merge receivers that belong together (a @receiver_class groups them), or "
                f"raise {where}."
            )
