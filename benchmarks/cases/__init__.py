"""The benchmark cases, one module per subject; importing a module registers its cases."""

from __future__ import annotations

from importlib import import_module

MODULES = (
    "floors",
    "publishing",
    "dispatch",
    "observability",
    "celery",
    "tasks",
    "ordering",
    "relay",
    "listening",
    "brokers",
    "memory",
    "scaling",
    "growth",
)
"""Case modules, in the order of the results table. A new module of cases is added here."""


def load() -> None:
    """Import every case module (after ``django.setup()``: cases import models)."""
    for name in MODULES:
        import_module(f"{__name__}.{name}")
