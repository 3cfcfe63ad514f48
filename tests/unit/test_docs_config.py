"""docs/conf.py configures Django with the package alone, so the ``docs`` extra builds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

READ_CONF = """
import json, runpy
from django.conf import settings
runpy.run_path("docs/conf.py")
print(json.dumps(settings.INSTALLED_APPS))
"""


def test_the_docs_configuration_installs_no_test_app() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", READ_CONF],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    installed = json.loads(result.stdout.splitlines()[-1])
    assert installed == ["django.contrib.contenttypes", "django_domain_events"]
