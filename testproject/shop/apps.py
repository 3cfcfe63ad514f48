"""App configuration of the demo shop."""

from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """The shop. Its receivers live in ``handlers.py``, which django_domain_events discovers."""

    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"
