"""``CorrelationFilter``, at the path ``LOGGING`` settings name it by. It lives in
``django_domain_events.observability.log_filter``."""

from __future__ import annotations

from django_domain_events.observability.log_filter import CorrelationFilter

__all__ = ["CorrelationFilter"]
