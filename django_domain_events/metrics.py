"""``metrics_view``, at the path URLconfs name it by. Metrics live in
``django_domain_events.observability.metrics``."""

from __future__ import annotations

from django_domain_events.observability.metrics import metrics_view

__all__ = ["metrics_view"]
