#!/usr/bin/env python3
"""Run every check the project has, on every supported Python and Django.

    python3 scripts/test.py                          # lint, docs, benchmarks, mypy, tests: all
    python3 scripts/test.py --fast                   # tests only
    python3 scripts/test.py --env py312-dj6 --db postgres -- -k publish -x

Each matrix entry gets a virtualenv in .venvs/<name>, made on first use and reinstalled when
pyproject.toml changes. Tests run on SQLite, and on PostgreSQL when 127.0.0.1:5432 answers.
With CI=true a missing Python 3.11/3.12 or PostgreSQL fails the run instead of being skipped, and
tests that need services (Redis, RabbitMQ, ...) fail instead of skipping.

The last line printed is "N passed, N failed[, N skipped]"; a step that fails without failing a
test (lint, mypy, docs, an install, a test run that crashed or ran nothing) counts as one failure,
so the exit status is 0 exactly when that line says "0 failed". Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import venvs

ROOT = venvs.ROOT
EXTRAS = "test,lint,docs,postgres,celery"
PACKAGE = "django_domain_events"
PG_ADDRESS = ("127.0.0.1", 5432)
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
PYTEST_WORKERS = "2"
CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class Env:
    """One matrix entry: a Python version and the Django series tested on it."""

    name: str
    python: str
    django: str
    stubs: str
    required: bool

    @property
    def venv(self) -> Path:
        return venvs.VENVS / self.name

    @property
    def pip_args(self) -> list[str]:
        return ["-e", f".[{EXTRAS}]", self.django, self.stubs]


MATRIX = (
    Env("py311-dj52", "3.11", "Django>=5.2,<5.3", "django-stubs>=5.2,<5.3", required=True),
    Env("py312-dj6", "3.12", "Django>=6.0,<7", "django-stubs>=6.0,<7", required=True),
    Env("py313-dj6", "3.13", "Django>=6.0,<7", "django-stubs>=6.0,<7", required=False),
)
DATABASES = ("sqlite", "postgres")


@dataclass
class Result:
    """The outcome of one step, and the test counts when the step ran pytest."""

    step: str
    status: str  # "ok", "failed" or "skipped"
    seconds: float = 0.0
    note: str = ""
    counts: dict[str, int] | None = None

    @property
    def failures(self) -> int:
        """What this step adds to the final "N failed": its failed tests, or 1 if none say why."""
        if self.status != "failed":
            return 0
        counted = (self.counts or {}).get("failed", 0) + (self.counts or {}).get("errors", 0)
        return counted or 1


@dataclass
class Run:
    """Every step's result, in the order they are reported."""

    results: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> Result:
        self.results.append(result)
        return result


def say(message: str = "") -> None:
    print(message, flush=True)


def banner(title: str) -> None:
    say()
    say(f"==> {title}")


# Interpreters ------------------------------------------------------------------------------------


def pyenv_root() -> Path:
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _version_key(path: Path) -> tuple[bool, tuple[int, ...]]:
    # versions/3.12.1 beats versions/3.12-dev or a free-threaded 3.13.0t.
    name = path.parent.parent.name
    plain = re.fullmatch(r"\d+(\.\d+)*", name) is not None
    return plain, tuple(int(n) for n in re.findall(r"\d+", name))


def _is_python(candidate: str, version: str) -> bool:
    # A pyenv shim is on PATH even when its version is not selected, and a Debian Python may lack
    # venv/ensurepip: ask the candidate itself.
    probe = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"
    try:
        out = subprocess.run(
            [candidate, "-c", probe], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def find_interpreter(version: str) -> str | None:
    """A working ``python<version>``: from PATH, else the newest pyenv install of it."""
    candidates: list[str] = []
    if on_path := shutil.which(f"python{version}"):
        candidates.append(on_path)
    installed = (pyenv_root() / "versions").glob(f"{version}*/bin/python{version}")
    candidates += [str(p) for p in sorted(installed, key=_version_key, reverse=True)]
    return next((c for c in candidates if _is_python(c, version)), None)


# Running commands --------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PYTEST_SUMMARY = re.compile(r"^=*\s*(?P<body>.*?)\s+in\s+[\d.]+s(\s+\([\d:]+\))?\s*=*$")
PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)\b")


def command_env(env: Env, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment, with ``env``'s venv activated."""
    result = dict(os.environ)
    # pytest-django prefers this variable over pyproject.toml; a stray one would test the wrong
    # settings.
    result.pop("DJANGO_SETTINGS_MODULE", None)
    result.pop("PYTHONHOME", None)
    if not sys.stdout.isatty():
        # Some tools colour their output whenever CI is set, even into a log file.
        result.setdefault("NO_COLOR", "1")
    result["VIRTUAL_ENV"] = str(env.venv)
    result["PATH"] = os.pathsep.join([str(env.venv / "bin"), result.get("PATH", "")])
    result.update(extra or {})
    return result


def stream(cmd: Sequence[str | Path], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run ``cmd`` in the repository, echoing its output; return its status and last lines."""
    say(f"$ {shlex.join(str(c) for c in cmd)}")
    tail: deque[str] = deque(maxlen=200)
    with subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(ANSI.sub("", line.rstrip("\n")))
    return proc.returncode, list(tail)


def parse_pytest_summary(lines: Sequence[str]) -> dict[str, int] | None:
    """Counts from pytest's closing line ("== 3 passed, 1 skipped in 2.01s =="), if there is one."""
    for line in reversed(lines):
        match = PYTEST_SUMMARY.match(line.strip())
        if not match:
            continue
        body = match["body"]
        found = PYTEST_COUNT.findall(body)
        if not found and "no tests ran" not in body:
            continue
        counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
        for number, word in found:
            key = {"xfailed": "skipped", "xpassed": "passed", "error": "errors"}.get(word, word)
            counts[key] += int(number)
        return counts
    return None


def run_step(run: Run, step: str, env: Env, cmd: Sequence[str | Path]) -> Result:
    banner(step)
    started = time.monotonic()
    code, _ = stream(cmd, command_env(env))
    status = "ok" if code == 0 else "failed"
    note = "" if code == 0 else f"exit status {code}"
    return run.add(Result(step, status, time.monotonic() - started, note))


def wants_own_workers(pytest_args: Sequence[str]) -> bool:
    """Whether the pytest arguments set the xdist worker count themselves, or disable xdist."""
    for i, arg in enumerate(pytest_args):
        if arg.startswith(("-n", "--numprocesses")) or arg.replace(" ", "") == "-pno:xdist":
            return True
        if arg == "-p" and pytest_args[i + 1 : i + 2] == ["no:xdist"]:
            return True
    return False


def run_pytest(run: Run, env: Env, db: str, pytest_args: Sequence[str]) -> Result:
    step = f"pytest {env.name} {db}"
    banner(step)
    extra = {
        "DOMAIN_EVENTS_TEST_DB": db,
        # One database per matrix entry, so runs never share one.
        "DOMAIN_EVENTS_TEST_DB_NAME": "dde_" + re.sub(r"\W", "_", env.name),
    }
    if CI:
        extra["DOMAIN_EVENTS_REQUIRE_SERVICES"] = "1"
    cmd: list[str | Path] = [venvs.python_of(env.venv), "-m", "pytest"]
    if not wants_own_workers(pytest_args):
        cmd += ["-n", PYTEST_WORKERS]
    if sys.stdout.isatty():
        cmd.append("--color=yes")
    cmd += pytest_args
    started = time.monotonic()
    code, tail = stream(cmd, command_env(env, extra))
    counts = parse_pytest_summary(tail)
    seconds = time.monotonic() - started
    if code == 0:
        return run.add(Result(step, "ok", seconds, counts=counts))
    note = "no tests ran (pytest exit status 5)" if code == 5 else f"pytest exit status {code}"
    return run.add(Result(step, "failed", seconds, note, counts))


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(PG_ADDRESS, timeout=2):
            return True
    except OSError:
        return False


# The run -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    own, pytest_args = list(argv), []
    if "--" in own:
        at = own.index("--")
        own, pytest_args = own[:at], own[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="python3 scripts/test.py",
        description="Lint, type-check, build the docs and run the tests on every supported "
        "Python/Django pair. Arguments after -- go to pytest.",
    )
    parser.add_argument(
        "--env",
        action="append",
        choices=[e.name for e in MATRIX],
        help="run only this matrix entry (repeatable)",
    )
    parser.add_argument("--db", choices=DATABASES, help="run the tests on this database only")
    parser.add_argument(
        "--fast", action="store_true", help="skip ruff, docs, the quick benchmarks and mypy"
    )
    return parser.parse_args(own), pytest_args


def select_envs(run: Run, wanted: Sequence[str] | None) -> list[tuple[Env, str]]:
    """The matrix entries to run, with their interpreters; the others become results."""
    banner("Finding interpreters")
    chosen = []
    for env in MATRIX:
        if wanted and env.name not in wanted:
            continue
        interpreter = find_interpreter(env.python)
        if interpreter:
            say(f"{env.name}: {interpreter}")
            chosen.append((env, interpreter))
            continue
        where = f"python{env.python} on PATH or {pyenv_root()}/versions/{env.python}*"
        message = (
            f"no working Python {env.python} with venv found ({where}); "
            f"install it with: pyenv install {env.python}"
        )
        # Asked for by name, or required in CI: its absence is a failure. A required one is only
        # skipped on a developer's machine; an optional one is only ever noted.
        fails = bool(wanted) or (CI and env.required)
        if env.required or wanted:
            say(f"{env.name}: {'ERROR' if fails else 'SKIPPED'}: {message}")
        else:
            say(f"{env.name}: note: {message}; its entry is optional")
        run.add(
            Result(
                f"python {env.python} ({env.name})", "failed" if fails else "skipped", note=message
            )
        )
    return chosen


def install(run: Run, chosen: Sequence[tuple[Env, str]]) -> list[Env]:
    """Make every chosen venv, in parallel; return the envs that are ready."""
    banner("Virtualenvs")
    if not chosen:
        return []

    def make(env: Env, interpreter: str) -> Result:
        started = time.monotonic()
        log = venvs.VENVS / f"{env.name}-install.log"
        try:
            venvs.ensure(
                env.venv,
                interpreter,
                env.pip_args,
                report=lambda message: say(f"[{env.name}] {message}"),
                log_path=log,
            )
        except (OSError, subprocess.SubprocessError, venvs.VenvError) as exc:
            say(f"[{env.name}] FAILED: {exc}")
            if log.exists():
                lines = log.read_text(errors="replace").splitlines()[-40:]
                say("\n".join(f"[{env.name}]   {line}" for line in lines))
            return Result(f"install {env.name}", "failed", time.monotonic() - started, str(exc))
        seconds = time.monotonic() - started
        say(f"[{env.name}] ready ({seconds:.0f}s)")
        return Result(f"install {env.name}", "ok", seconds)

    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        results = list(pool.map(lambda pair: make(*pair), chosen))
    for result in results:
        run.add(result)
    return [env for (env, _), result in zip(chosen, results, strict=True) if result.status == "ok"]


def lint(run: Run, env: Env) -> None:
    python = venvs.python_of(env.venv)
    run_step(run, "ruff check", env, [python, "-m", "ruff", "check", "."])
    run_step(run, "ruff format --check", env, [python, "-m", "ruff", "format", "--check", "."])
    if (ROOT / "docs" / "conf.py").exists():
        # -E: Sphinx does not notice docstring changes, and an incremental build would not repeat
        # the warnings of pages it skips.
        sphinx = [python, "-m", "sphinx", "-W", "--keep-going", "-E", "-b", "html"]
        run_step(run, "sphinx-build", env, [*sphinx, "docs", "docs/_build/html"])
    if (ROOT / "benchmarks" / "run.py").exists():
        benchmarks_quick(run, env)


def benchmarks_quick(run: Run, env: Env) -> None:
    """Run the benchmark suite with QUICK=1 and check it wrote its table. Never a timing: how
    fast this machine is today is no test result."""
    step = "benchmarks (quick)"
    banner(step)
    started = time.monotonic()
    db = "all" if postgres_reachable() else "sqlite"
    with tempfile.TemporaryDirectory(prefix="dde-bench-") as out:
        cmd = [venvs.python_of(env.venv), "benchmarks/run.py", "--db", db, "--out", out]
        extra = {"QUICK": "1"}
        if CI:
            extra["DOMAIN_EVENTS_REQUIRE_SERVICES"] = "1"  # a case whose service is down fails
        code, _ = stream(cmd, command_env(env, extra))
        tables = [path for path in Path(out).glob("*.md") if "| case |" in path.read_text()]
    if code != 0:
        status, note = "failed", f"exit status {code}"
    elif not tables:
        status, note = "failed", "the run wrote no results table"
    else:
        status, note = "ok", ""
    run.add(Result(step, status, time.monotonic() - started, note))


def databases(run: Run, wanted: str | None) -> list[str]:
    banner("Databases")
    chosen = [wanted] if wanted else list(DATABASES)
    if "postgres" in chosen and not postgres_reachable():
        host, port = PG_ADDRESS
        message = f"PostgreSQL not reachable at {host}:{port} — start it with: {PG_START}"
        fails = CI or wanted == "postgres"
        say(f"{'ERROR' if fails else 'SKIPPED'}: {message}")
        run.add(Result("postgres", "failed" if fails else "skipped", note=message))
        chosen.remove("postgres")
    say(f"testing on: {', '.join(chosen) or 'nothing'}")
    return chosen


def report(run: Run) -> int:
    banner("Summary")
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    width = max(len(r.step) for r in run.results)
    say(
        f"{'step':<{width}}  {'result':<7} {'passed':>6} {'failed':>6} {'skipped':>7} "
        f"{'errors':>6} {'time':>7}"
    )
    for r in run.results:
        counts = r.counts or {}
        numbers = " ".join(
            f"{counts[key]:>{len(key)}}" if r.counts is not None else " " * len(key)
            for key in ("passed", "failed", "skipped", "errors")
        )
        took = f"{r.seconds:6.1f}s" if r.seconds else ""
        say(f"{r.step:<{width}}  {r.status:<7} {numbers} {took:>7}")
        totals["passed"] += counts.get("passed", 0)
        totals["skipped"] += counts.get("skipped", 0)
        totals["failed"] += r.failures
    notes = [r for r in run.results if r.note]
    if notes:
        say()
        for r in notes:
            say(f"{r.step}: {r.status}: {r.note}")
    say()
    line = f"{totals['passed']} passed, {totals['failed']} failed"
    if totals["skipped"]:
        line += f", {totals['skipped']} skipped"
    say(line)
    return 1 if totals["failed"] else 0


def main(argv: Sequence[str]) -> int:
    args, pytest_args = parse_args(argv)
    run = Run()
    say(f"scripts/test.py in {ROOT}" + (" (CI: skips are failures)" if CI else ""))

    ready = install(run, select_envs(run, args.env))
    if not ready:
        run.add(Result("matrix", "failed", note="no matrix entry could be set up"))
        return report(run)

    if not args.fast:
        lint(run, ready[0])
    dbs = databases(run, args.db)
    for env in ready:
        if not args.fast and (ROOT / PACKAGE).is_dir():
            run_step(
                run, f"mypy {env.name}", env, [venvs.python_of(env.venv), "-m", "mypy", PACKAGE]
            )
        for db in dbs:
            run_pytest(run, env, db, pytest_args)
    return report(run)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
