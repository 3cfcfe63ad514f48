"""``EventRecordingMixin``, at the path migrations of models that use it name as a base class.
It lives in ``django_domain_events.publishing.aggregates``."""

from __future__ import annotations

from django_domain_events.publishing.aggregates import EventRecordingMixin

__all__ = ["EventRecordingMixin"]
