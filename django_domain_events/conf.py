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
    # Most receivers one event type may have (None: no limit); checked at start-up.
    "MAX_RECEIVERS_PER_EVENT": None,
    # Log every publish, dispatch and delivery, with ids and timings, at DEBUG level.
    "DEBUG": False,
    # The Celery dispatcher: the dotted path of the Celery app (None: Celery's current app, the
    # project's own), the queue of receivers that name none (None: Celery's routing decides),
    # the seconds a publish may spend retrying an unreachable broker, and the longest retry
    # wait sent through Celery as a countdown (longer ones are left to the relay).
    "CELERY_APP": None,
    "CELERY_QUEUE": None,
    "CELERY_PUBLISH_TIMEOUT": 1.5,
    "CELERY_MAX_RETRY_DELAY": 60.0,
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

    @property
    def MAX_RECEIVERS_PER_EVENT(self) -> int | None:
        value = self._get("MAX_RECEIVERS_PER_EVENT")
        return None if value is None else int(value)

    @property
    def DEBUG(self) -> bool:
        return bool(self._get("DEBUG"))

    @property
    def CELERY_APP(self) -> str | None:
        value = self._get("CELERY_APP")
        return None if value is None else str(value)

    @property
    def CELERY_QUEUE(self) -> str | None:
        value = self._get("CELERY_QUEUE")
        return None if value is None else str(value)

    @property
    def CELERY_PUBLISH_TIMEOUT(self) -> float:
        return float(self._get("CELERY_PUBLISH_TIMEOUT"))

    @property
    def CELERY_MAX_RETRY_DELAY(self) -> float:
        return float(self._get("CELERY_MAX_RETRY_DELAY"))


settings = Settings()
