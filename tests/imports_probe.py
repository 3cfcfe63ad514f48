"""What a project that uses none of the optional extras imports: a plain publish, in a fresh
process, with warnings as errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import sys

    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django_domain_events"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("check")
    from django_domain_events import publish, receiver

    seen = []

    @receiver("probe.pinged", name="probe.record")
    def record(event):
        seen.append(event)

    publish("probe.pinged", {"n": 1})
    assert len(seen) == 1, seen
    roots = set(sys.argv[1:])
    print(sorted(name for name in sys.modules if name.split(".")[0] in roots))
    """
)


def imported_by_a_plain_publish(roots: Iterable[str]) -> str:
    """The modules of the packages ``roots`` that a sync publish imports, as the printed
    sorted list (``"[]"`` when none); fails if the process does."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _SCRIPT, *roots],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]
