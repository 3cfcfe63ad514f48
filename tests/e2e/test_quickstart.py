"""docs/quickstart.md, executed: its marked blocks, in order, make a project from nothing.

A block the quickstart wants run carries a comment just above it:

- ``<!-- quickstart: run -->``: a console block; each line is a command (``django-admin`` and
  ``python`` become this interpreter).
- ``<!-- quickstart: write PATH -->`` / ``<!-- quickstart: append PATH -->``: a file's content.
- ``<!-- quickstart: shell -->``: a ``pycon`` session, run as a doctest in ``manage.py shell``.

Then the test signs in to the admin the quickstart points at and finds the event there.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart.md"

pytestmark = pytest.mark.e2e

MARKED_BLOCK = re.compile(
    r"^<!-- quickstart: (?P<step>\w+)(?: (?P<path>\S+))? -->\n"
    r"```(?P<language>\w+)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)

RUN_DOCTEST = """
import doctest, os, sys
text = open(os.environ["QUICKSTART_SESSION"]).read()
test = doctest.DocTestParser().get_doctest(text, {}, "quickstart.md", None, 0)
runner = doctest.DocTestRunner()
runner.run(test)
sys.exit(1 if runner.failures else 0)
"""

OPEN_THE_ADMIN = """
from django.contrib.auth import get_user_model
from django.test import Client
user = get_user_model().objects.create_superuser("admin", "admin@example.com", "admin")
client = Client(HTTP_HOST="localhost")
client.force_login(user)
for path in ["/admin/django_domain_events/outboxevent/", "/admin/django_domain_events/delivery/"]:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    print(page.content.decode())
"""


@dataclass(frozen=True)
class Step:
    kind: str
    path: str | None
    language: str
    body: str


def quickstart_steps() -> list[Step]:
    text = QUICKSTART.read_text()
    return [
        Step(m["step"], m["path"], m["language"], m["body"]) for m in MARKED_BLOCK.finditer(text)
    ]


def command(line: str) -> list[str]:
    words = shlex.split(line)
    if words[0] == "django-admin":
        return [sys.executable, "-m", "django", *words[1:]]
    assert words[0] == "python", f"quickstart command not runnable here: {line}"
    return [sys.executable, *words[1:]]


def run(project: Path, args: list[str], **env: str) -> str:
    environment = dict(os.environ)
    # pytest-django exports the suite's settings module; the quickstart's project has its own.
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env)
    result = subprocess.run(
        args, cwd=project, env=environment, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(args)} exited {result.returncode}:\n{output}"
    return output


def test_the_quickstart_marks_every_step_it_needs() -> None:
    kinds = [(step.kind, step.path) for step in quickstart_steps()]

    assert kinds == [
        ("run", None),
        ("append", "mysite/settings.py"),
        ("write", "shop/models.py"),
        ("write", "shop/events.py"),
        ("write", "shop/handlers.py"),
        ("write", "shop/services.py"),
        ("run", None),
        ("shell", None),
    ]


def test_the_quickstart_builds_a_project_whose_receiver_runs_and_whose_admin_shows_it(
    tmp_path: Path,
) -> None:
    project = tmp_path / "quickstart"
    project.mkdir()

    for step in quickstart_steps():
        if step.kind == "run":
            for line in step.body.splitlines():
                run(project, command(line))
        elif step.kind in ("write", "append"):
            assert step.path is not None
            with (project / step.path).open("w" if step.kind == "write" else "a") as file:
                file.write(("\n" if step.kind == "append" else "") + step.body)
        else:
            assert step.kind == "shell", f"unknown quickstart step {step.kind!r}"
            session = tmp_path / "session.txt"
            session.write_text(step.body)
            run(
                project,
                [sys.executable, "manage.py", "shell", "-c", RUN_DOCTEST],
                QUICKSTART_SESSION=str(session),
            )

    pages = run(project, [sys.executable, "manage.py", "shell", "-c", OPEN_THE_ADMIN])
    assert "shop.OrderPlaced" in pages
    assert "shop.handlers.create_invoice" in pages
