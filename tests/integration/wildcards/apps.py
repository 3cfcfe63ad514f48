"""The app the wildcard tests install in their worker processes, to register their receivers."""

from __future__ import annotations

from django.apps import AppConfig


class WildcardTestsConfig(AppConfig):
    name = "tests.integration.wildcards"
    label = "wildcard_tests"

    def ready(self) -> None:
        from .receivers import register

        register()
