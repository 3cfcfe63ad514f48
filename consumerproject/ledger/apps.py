"""App configuration of the accounting service's ledger."""

from __future__ import annotations

from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """The ledger. Its consumers live in ``receivers.py``, which django_domain_events
    discovers."""

    name = "ledger"
    default_auto_field = "django.db.models.BigAutoField"
