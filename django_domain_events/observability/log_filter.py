"""``CorrelationFilter``: put the current event's correlation and causation ids on log records.

Add it to a handler in ``LOGGING``; inside a receiver (or code it calls) every record gets the
ids of the event being handled, elsewhere the placeholder::

    LOGGING = {
        "version": 1,
        "filters": {"events": {"()": "django_domain_events.log_filter.CorrelationFilter"}},
        "formatters": {"ids": {"format": "%(levelname)s [%(correlation_id)s] %(message)s"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["events"],
                "formatter": "ids",
            }
        },
        "root": {"handlers": ["console"], "level": "INFO"},
    }
"""

from __future__ import annotations

import logging

from django_domain_events.declaration.envelope import current_envelope


class CorrelationFilter(logging.Filter):
    """Add ``correlation_id``, ``causation_id``, ``event_id`` and ``delivery_id`` to each
    record, from the envelope of the delivery being run; ``placeholder`` outside one."""

    def __init__(self, name: str = "", placeholder: str = "-") -> None:
        super().__init__(name)
        self.placeholder = placeholder

    def filter(self, record: logging.LogRecord) -> bool:
        envelope = current_envelope()
        missing = self.placeholder
        if envelope is None:
            record.correlation_id = missing
            record.causation_id = missing
            record.event_id = missing
            record.delivery_id = missing
            return True
        record.correlation_id = envelope.correlation_id
        record.causation_id = str(envelope.causation_id) if envelope.causation_id else missing
        record.event_id = str(envelope.event_id)
        record.delivery_id = str(envelope.delivery_id) if envelope.delivery_id else missing
        return True
