"""``use_dispatcher()``: choose the dispatcher of every delivery published inside a block.

For tests and management scripts: ``with use_dispatcher("deferred"):`` leaves everything the
block publishes pending, whatever the settings and the receivers say. The override lives in a
``contextvars.ContextVar``, so it covers only the thread or asyncio task that entered the block
(and the ``sync_to_async`` calls it makes, which copy the context).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from django_domain_events.dispatchers import dispatcher_class

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "django_domain_events_dispatcher_override", default=None
)


def dispatcher_override() -> str | None:
    """The dispatcher name a ``use_dispatcher()`` block imposes here, or None."""
    return _override.get()


@contextmanager
def use_dispatcher(name: str) -> Iterator[None]:
    """Give every delivery published inside the block the dispatcher ``name``.

    It overrides ``DOMAIN_EVENTS["DISPATCHER"]`` and each receiver's own ``dispatcher=``, for
    every event, integration events included. The name is stored on the delivery rows, so a
    relay that runs them later uses it too. An unknown name raises ``DispatcherError`` on entry.
    Blocks nest; the innermost wins.
    """
    dispatcher_class(name)
    token = _override.set(name)
    try:
        yield
    finally:
        _override.reset(token)
