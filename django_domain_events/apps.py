"""App configuration: discovers receivers and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _

RECEIVER_MODULES = ("handlers", "receivers", "event_handlers")
"""Submodules of every installed app imported at start-up to register their receivers
(``event_handlers`` is the name projects of the in-house event backend use)."""


class DomainEventsConfig(AppConfig):
    """Imports each installed app's ``handlers``, ``receivers`` and ``event_handlers`` modules
    when Django starts, then attaches the event backend API's pending subscriptions
    (``init_domain_events()``)."""

    name = "django_domain_events"
    verbose_name = _("Domain events")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_domain_events import checks  # noqa: F401 - registers the system checks
        from django_domain_events.compat.backend import init_domain_events
        from django_domain_events.declaration.registry import registry

        # Django's own helper: a module that fails to import raises its real error, and the
        # registry is restored to its state before that import.
        autodiscover_modules(*RECEIVER_MODULES, register_to=registry)
        # Integration events routed to a broker get their route receivers.
        from django_domain_events.integration.routes import install_routes

        install_routes()
        # Subscriptions made with the event backend API attach to its backend, if initialised.
        init_domain_events()
