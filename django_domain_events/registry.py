"""The receiver registry, at the path tests and scripts import it from. It lives in
``django_domain_events.declaration.registry``."""

from __future__ import annotations

from django_domain_events.declaration.registry import Registry, registry

__all__ = ["Registry", "registry"]
