#!/usr/bin/env python3
"""Run the demo project: a Django admin with sample domain events in it.

    python3 scripts/demo.py              # set up, then serve http://127.0.0.1:8000/admin/
    python3 scripts/demo.py --port 8001
    python3 scripts/demo.py --no-serve   # set up only (checks that the demo works)

Makes or reuses the virtualenv .venvs/demo, installs this package into it, migrates
testproject/db.sqlite3, seeds an admin user and sample events (the credentials are printed), and
starts Django's development server. Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import venvs

ROOT = venvs.ROOT
PROJECT = ROOT / "testproject"
VENV = venvs.VENVS / "demo"


def manage_env() -> dict[str, str]:
    env = dict(os.environ)
    # The project's manage.py chooses its settings; one left over in the shell would override it.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = os.pathsep.join([str(VENV / "bin"), env.get("PATH", "")])
    return env


def manage(python: Path, *args: str) -> None:
    """Run ``manage.py`` in testproject/ with the demo venv; exit if it fails."""
    print(f"$ cd testproject && python manage.py {shlex.join(args)}", flush=True)
    result = subprocess.run([python, "manage.py", *args], cwd=PROJECT, env=manage_env())
    if result.returncode != 0:
        sys.exit(f"demo: `manage.py {shlex.join(args)}` failed (exit status {result.returncode})")


def serve(python: Path, port: int) -> None:
    """Replace this process with the development server, so Ctrl-C and signals reach it."""
    args = ["runserver", "--noreload", f"127.0.0.1:{port}"]
    print(f"$ cd testproject && python manage.py {shlex.join(args)}", flush=True)
    os.chdir(PROJECT)
    os.execve(python, [str(python), "manage.py", *args], manage_env())


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 scripts/demo.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000)")
    parser.add_argument(
        "--no-serve", action="store_true", help="set everything up, but do not start the server"
    )
    args = parser.parse_args(argv)

    if not (PROJECT / "manage.py").exists():
        sys.exit(f"demo: {PROJECT / 'manage.py'} is missing; the demo needs testproject/.")
    try:
        python = venvs.ensure(VENV, sys.executable, ["-e", "."], report=print)
    except venvs.VenvError as exc:
        sys.exit(f"demo: could not set up {VENV}: {exc}")

    manage(python, "migrate", "--noinput")
    manage(python, "seed_demo")
    if args.no_serve:
        print("Demo is set up; run without --no-serve to start the server.")
        return

    print(f"\nOpen http://127.0.0.1:{args.port}/admin/ and sign in with the credentials above.")
    print("Press Ctrl-C to stop.\n", flush=True)
    serve(python, args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
