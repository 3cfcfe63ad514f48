"""Create or reuse a virtualenv under .venvs/ for scripts/test.py and scripts/demo.py.

A venv remembers what it was built from in a stamp file: the interpreter, and a hash of
pyproject.toml with the pip arguments. It is rebuilt from scratch when the interpreter changes,
reinstalled when the hash changes, and otherwise left alone. Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venvs"
STAMP = ".installed.json"

Report = Callable[[str], None]


class VenvError(Exception):
    """A virtualenv could not be created or its packages installed."""


def python_of(venv: Path) -> Path:
    """The interpreter inside ``venv``."""
    return venv / "bin" / "python"


def interpreter_id(interpreter: str) -> str:
    """Full version and real path of ``interpreter``, so a replaced Python is noticed."""
    out = subprocess.run(
        [interpreter, "-c", "import sys; print(sys.version.split()[0], sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def requirements_hash(pip_args: Sequence[str]) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update("\0".join(pip_args).encode())
    return digest.hexdigest()


def _read_stamp(venv: Path) -> dict[str, str]:
    try:
        data = json.loads((venv / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _usable(venv: Path) -> bool:
    python = python_of(venv)
    if not python.exists():
        return False
    try:
        subprocess.run([python, "-c", "pass"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _run(cmd: Sequence[str | Path], log: IO[str] | None) -> None:
    if log is not None:
        log.write(f"$ {shlex.join(map(str, cmd))}\n")
        log.flush()
    result = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT if log else None)
    if result.returncode != 0:
        raise VenvError(f"`{shlex.join(map(str, cmd))}` exited with {result.returncode}")


def ensure(
    venv: Path,
    interpreter: str,
    pip_args: Sequence[str],
    *,
    report: Report = print,
    log_path: Path | None = None,
) -> Path:
    """Make ``venv`` hold ``pip install <pip_args>`` for ``interpreter``; return its Python.

    With ``log_path`` pip's output goes to that file instead of the terminal. Raises
    ``VenvError`` when a step fails.
    """
    rel = venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv
    wanted_python = interpreter_id(interpreter)
    wanted_hash = requirements_hash(pip_args)
    stamp = _read_stamp(venv)
    usable = _usable(venv)
    if usable and stamp.get("python") == wanted_python and stamp.get("hash") == wanted_hash:
        report(f"{rel} is up to date")
        return python_of(venv)

    venv.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w") if log_path is not None else None
    try:
        fresh = not usable or stamp.get("python") != wanted_python
        if fresh:
            report(f"creating {rel} with {interpreter} (Python {wanted_python.split()[0]})")
            if venv.exists():
                shutil.rmtree(venv)
            _run([interpreter, "-m", "venv", venv], log)
            _run([python_of(venv), "-m", "pip", "install", "--upgrade", "pip"], log)
        else:
            report(f"{rel}: pyproject.toml or requirements changed, reinstalling")
        (venv / STAMP).unlink(missing_ok=True)
        where = f" (log: {log_path.relative_to(ROOT)})" if log_path is not None else ""
        report(f"pip install {shlex.join(pip_args)}{where}")
        # --no-compile: byte-compiling every module of every package (Django, mypy, Sphinx...)
        # costs minutes of CPU on a loaded machine; Python compiles what is imported, on import.
        pip = [python_of(venv), "-m", "pip", "install", "--disable-pip-version-check"]
        _run([*pip, "--no-compile", *pip_args], log)
    finally:
        if log is not None:
            log.close()
    (venv / STAMP).write_text(json.dumps({"python": wanted_python, "hash": wanted_hash}) + "\n")
    return python_of(venv)
