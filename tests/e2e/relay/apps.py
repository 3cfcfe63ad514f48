"""The app the relay's process tests install in their subprocesses, to register their receivers."""

from __future__ import annotations

from django.apps import AppConfig


class RelayTestsConfig(AppConfig):
    name = "tests.e2e.relay"
    label = "relay_tests"

    def ready(self) -> None:
        from .receivers import register

        register()
