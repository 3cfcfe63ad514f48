"""The ``DOMAIN_EVENTS`` settings: defaults, read from Django's settings on every access.

Nothing is read at import time, so ``override_settings(DOMAIN_EVENTS=...)`` works in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    # Dispatcher used by receivers that do not name one: "sync", "deferred", or the dotted
    # path of a Dispatcher subclass.
    "DISPATCHER": "sync",
    # Attempts before a failing delivery becomes a dead letter (per receiver: max_attempts=).
    "MAX_ATTEMPTS": 5,
    # Backoff between attempts: full jitter over min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2**n).
    "RETRY_BASE_DELAY": 2.0,
    "RETRY_MAX_DELAY": 3600.0,
    # Largest encoded payload publish() accepts, in bytes.
    "MAX_PAYLOAD_BYTES": 256 * 1024,
}


class Settings:
    """Typed view of ``settings.DOMAIN_EVENTS``; each attribute falls back to its default."""

    def _get(self, key: str) -> Any:
        configured: dict[str, Any] = getattr(django_settings, "DOMAIN_EVENTS", None) or {}
        return configured.get(key, DEFAULTS[key])

    @property
    def DISPATCHER(self) -> str:
        return str(self._get("DISPATCHER"))

    @property
    def MAX_ATTEMPTS(self) -> int:
        return int(self._get("MAX_ATTEMPTS"))

    @property
    def RETRY_BASE_DELAY(self) -> float:
        return float(self._get("RETRY_BASE_DELAY"))

    @property
    def RETRY_MAX_DELAY(self) -> float:
        return float(self._get("RETRY_MAX_DELAY"))

    @property
    def MAX_PAYLOAD_BYTES(self) -> int:
        return int(self._get("MAX_PAYLOAD_BYTES"))


settings = Settings()
