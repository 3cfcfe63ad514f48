"""Compatibility with earlier APIs: the in-house event backend, imported as
``django_domain_events.backend``."""
