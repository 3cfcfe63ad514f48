"""The app the ordering tests install in their worker and command processes, to register their
receivers."""

from __future__ import annotations

from django.apps import AppConfig


class OrderingTestsConfig(AppConfig):
    name = "tests.integration.ordering"
    label = "ordering_tests"

    def ready(self) -> None:
        from .receivers import register

        register()
