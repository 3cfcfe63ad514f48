"""Settings of the worker processes the wildcard tests start: the test settings and the
wildcard receivers."""

from __future__ import annotations

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.integration.wildcards.apps.WildcardTestsConfig"]  # noqa: F405
