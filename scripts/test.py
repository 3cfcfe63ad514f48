#!/usr/bin/env python3
"""Run every check the project has, on every supported Python and Django.

    python3 scripts/test.py                          # lint, docs, benchmarks, mypy, tests: all
    python3 scripts/test.py --fast                   # tests only
    python3 scripts/test.py --env py312-dj6 --db postgres -- -k publish -x

Each matrix entry gets a virtualenv in .venvs/<name>, made on first use and reinstalled when
pyproject.toml changes. The tests run on the databases of its entry in MATRIX (SQLite, and
PostgreSQL when 127.0.0.1:5432 answers), or on the one --db names. With CI=true a missing
Python or PostgreSQL fails the run instead of being skipped, and tests that need services
(Redis, RabbitMQ, ...) fail instead of skipping.

Steps run --jobs at a time, each as soon as its virtualenv is ready; the output of each is kept
in a log and printed whole when it ends (with --jobs 1, or a single step, it streams instead).

The last line printed is "N passed, N failed[, N skipped]"; a step that fails without failing a
test (lint, mypy, docs, an install, a test run that crashed or ran nothing) counts as one failure,
so the exit status is 0 exactly when that line says "0 failed". Stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import venvs

ROOT = venvs.ROOT
EXTRAS = "test,postgres,celery"
PACKAGE = "django_domain_events"
PG_ADDRESS = ("127.0.0.1", 5432)
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
MARIADB_ADDRESS = ("127.0.0.1", 3306)
MARIADB_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
MARIADB_CLIENT = "apt-get install -y libmariadb-dev pkg-config"
"""What builds mysqlclient, the driver of the MariaDB pass (.ci/run installs it)."""
PYTEST_WORKERS = "2"
# Measured on 2 CPUs: the PostgreSQL pass with real processes takes about as long as the other
# passes one after the other, so it starts first, on a lane of its own, and the other lanes take
# the rest. A third xdist worker for it only added CPU-starved Celery workers.
JOBS = 3
"""Steps run at once by default."""
SAME_ON_EVERY_DATABASE = ("tests/e2e/test_demo.py", "tests/e2e/test_demo_processes.py")
"""Tests that never use the test database (the demo project has its own SQLite file): run in
the SQLite pass of each entry only, when no pytest arguments narrow the run."""
BENCHMARK_BUDGET = 300
"""Seconds the benchmark smoke run may take before it is stopped and fails (see its --budget)."""
CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
# Another checkout on the same PostgreSQL server (a second worktree, a colleague's run) must not
# create or drop this one's test databases.
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Env:
    """One matrix entry: a Python version, the Django series tested on it, and the databases
    its tests run on."""

    name: str
    python: str
    django: str
    stubs: str
    databases: tuple[str, ...]
    mypy: bool
    """Whether to type-check the package here: once per Django series and its stubs."""
    lint: bool = False
    """Whether ruff, the docs build and the benchmark smoke run use this entry's venv; they run
    when this entry does."""
    processes: bool = False
    """Whether its PostgreSQL pass runs the tests of real processes (markers ``services`` and
    ``e2e``: Celery workers on real brokers, relays killed by signals). They prove what brokers,
    signals and process deaths do, which no Django or Python version changes, and they are most
    of a run's time: one entry runs them, every other PostgreSQL pass runs the rest."""

    @property
    def venv(self) -> Path:
        return venvs.VENVS / self.name

    @property
    def pip_args(self) -> list[str]:
        # Only what the entry's steps use: each tool more is minutes of install on a fresh clone.
        extras = EXTRAS + (",lint" if self.mypy or self.lint else "")
        extras += ",docs" if self.lint else ""
        extras += ",mysql" if "mariadb" in self.databases else ""
        return ["-e", f".[{extras}]", self.django, *([self.stubs] if self.mypy else [])]


# Each Django series on its oldest and newest Python, on SQLite and PostgreSQL; Python 3.12 in
# between on MariaDB, where an interpreter difference would show too (its pass is the whole
# suite but for the Celery workers and the browser).
MATRIX = (
    Env(
        "py311-dj52",
        "3.11",
        "Django>=5.2,<5.3",
        "django-stubs>=5.2,<5.3",
        databases=("sqlite", "postgres"),
        mypy=True,
        lint=True,
    ),
    Env(
        "py312-dj6",
        "3.12",
        "Django>=6.0,<7",
        "django-stubs>=6.0,<7",
        databases=("mariadb",),
        mypy=False,
    ),
    Env(
        "py313-dj6",
        "3.13",
        "Django>=6.0,<7",
        "django-stubs>=6.0,<7",
        databases=("sqlite", "postgres"),
        mypy=True,
        processes=True,
    ),
)
DATABASES = ("sqlite", "postgres", "mariadb")
OTHER_POSTGRES_MARKERS = "not services and not e2e and not server_db"
"""What a PostgreSQL pass without real processes runs: the tests of the SQL (unit tests and
the PostgreSQL-only ones) on its Django. Races between connections and processes (server_db)
run in the pass with processes and in the MariaDB pass."""
MARIADB_MARKERS = "not services and not browser"
"""What the MariaDB pass leaves out: the Celery workers on real brokers, which prove what brokers
and workers do (the PostgreSQL pass runs them), and the browser, which the database does not
change. Its relays killed by signals, ordering lines and row-lock races all run."""


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


# Steps running at once print through this lock, a whole block at a time.
OUTPUT = threading.RLock()


def say(message: str = "") -> None:
    with OUTPUT:
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
STOP_GRACE = 30
"""Seconds a step stopped by its timeout has to exit after SIGINT, before SIGKILL."""


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


@dataclass(frozen=True)
class Outcome:
    """How a command ended, and the last lines it printed."""

    code: int
    tail: list[str]
    expired: bool


def execute(
    cmd: Sequence[str | Path],
    env: dict[str, str],
    *,
    log: Path | None = None,
    timeout: float | None = None,
) -> Outcome:
    """Run ``cmd`` in the repository, its output echoed, or written to ``log`` when given.

    After ``timeout`` seconds it gets SIGINT (the benchmarks stop their Celery worker on it),
    then SIGKILL if it is still there ``STOP_GRACE`` seconds later.
    """
    tail: deque[str] = deque(maxlen=200)
    expired = threading.Event()
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(log.open("w")) if log is not None else subprocess.PIPE
        proc = stack.enter_context(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        )

        def stop() -> None:
            expired.set()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()

        if timeout is not None:
            timer = threading.Timer(timeout, stop)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
        if proc.stdout is not None:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                tail.append(ANSI.sub("", line.rstrip("\n")))
        proc.wait()
    if log is not None:
        lines = log.read_text(errors="replace").splitlines()
        tail.extend(ANSI.sub("", line) for line in lines[-200:])
    return Outcome(proc.returncode, list(tail), expired.is_set())


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


# Steps -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One command of the run, in the virtualenv of ``env``."""

    name: str
    env: Env
    cmd: tuple[str | Path, ...]
    extra: dict[str, str] = field(default_factory=dict)
    pytest: bool = False
    timeout: float | None = None
    check: Callable[[], str | None] | None = None
    """After the command succeeded: why the step failed all the same, or None."""
    lane: str = ""
    """Steps of one lane run one after another, in order; each other step is a lane of its own."""
    weight: float = 0
    """About how long the step takes, in seconds: the longest lanes start first."""


def judge(step: Step, outcome: Outcome, seconds: float) -> Result:
    counts = parse_pytest_summary(outcome.tail) if step.pytest else None
    if outcome.expired:
        note = f"stopped after {step.timeout:g} s"
        return Result(step.name, "failed", seconds, note, counts)
    if outcome.code != 0:
        if step.pytest and outcome.code == 5:
            note = "no tests ran (pytest exit status 5)"
        else:
            note = f"{'pytest ' if step.pytest else ''}exit status {outcome.code}"
        return Result(step.name, "failed", seconds, note, counts)
    note = (step.check() if step.check else None) or ""
    return Result(step.name, "failed" if note else "ok", seconds, note, counts)


def run_step(step: Step, logs: Path | None) -> Result:
    """Run ``step``: streaming its output, or, with ``logs``, keeping it in a file there and
    printing it whole when the step ends, so steps that run at once stay readable."""
    command = f"$ {shlex.join(str(c) for c in step.cmd)}"
    env = command_env(step.env, step.extra)
    started = time.monotonic()
    if logs is None:
        banner(step.name)
        say(command)
        outcome = execute(step.cmd, env, timeout=step.timeout)
        result = judge(step, outcome, time.monotonic() - started)
        say(f"--> {step.name}: {result.status} in {result.seconds:.0f}s")
        return result
    say(f"[{time.strftime('%H:%M:%S')}] started {step.name}")
    log = logs / (re.sub(r"\W+", "-", step.name).strip("-") + ".log")
    outcome = execute(step.cmd, env, log=log, timeout=step.timeout)
    result = judge(step, outcome, time.monotonic() - started)
    with OUTPUT:
        banner(f"{step.name} (output of the step, which ended at {time.strftime('%H:%M:%S')})")
        say(command)
        sys.stdout.write(log.read_text(errors="replace"))
        say(f"--> {step.name}: {result.status} in {result.seconds:.0f}s")
    return result


def wants_own_workers(pytest_args: Sequence[str]) -> bool:
    """Whether the pytest arguments set the xdist worker count themselves, or disable xdist."""
    for i, arg in enumerate(pytest_args):
        if arg.startswith(("-n", "--numprocesses")) or arg.replace(" ", "") == "-pno:xdist":
            return True
        if arg == "-p" and pytest_args[i + 1 : i + 2] == ["no:xdist"]:
            return True
    return False


def pytest_step(env: Env, db: str, pytest_args: Sequence[str]) -> Step:
    extra = {
        "DOMAIN_EVENTS_TEST_DB": db,
        # One database per matrix entry and checkout, so no two runs share one; pytest-django
        # prefixes it with test_ and suffixes each xdist worker's.
        "DOMAIN_EVENTS_TEST_DB_NAME": "_".join(["dde", re.sub(r"\W", "_", env.name), CHECKOUT]),
    }
    if CI:
        extra["DOMAIN_EVENTS_REQUIRE_SERVICES"] = "1"
    cmd: list[str | Path] = [venvs.python_of(env.venv), "-m", "pytest"]
    if not wants_own_workers(pytest_args):
        cmd += ["-n", PYTEST_WORKERS]
    if sys.stdout.isatty():
        cmd.append("--color=yes")
    if db != "sqlite" and not pytest_args:
        cmd += [f"--ignore={path}" for path in SAME_ON_EVERY_DATABASE if (ROOT / path).exists()]
        if db == "mariadb":
            cmd += ["-m", MARIADB_MARKERS]
        elif not env.processes:
            cmd += ["-m", OTHER_POSTGRES_MARKERS]
    cmd += pytest_args
    # The pass with real processes is the longest: it starts first. It is the only one that
    # starts Celery workers, so no two passes' workers share the cores (with two, the ordering
    # tests missed their deadlines).
    weight = 1500 if db == "postgres" and env.processes else 900 if db == "mariadb" else 700
    return Step(f"pytest {env.name} {db}", env, tuple(cmd), extra, pytest=True, weight=weight)


def benchmark_step(env: Env, db: str, out: Path) -> Step:
    """The benchmark suite's smoke run: every case once with a tiny N, within a budget, and a
    results table written. Never a timing: how fast this machine is today is no test result."""
    cmd = [venvs.python_of(env.venv), "benchmarks/run.py", "--smoke", "--db", db, "--out", out]
    cmd += ["--budget", str(BENCHMARK_BUDGET)]
    # Its own PostgreSQL database: a benchmark run elsewhere on this server uses dde_bench.
    extra = {"DDE_BENCH_POSTGRES_NAME": f"dde_bench_smoke_{CHECKOUT}"}
    if CI:
        extra["DOMAIN_EVENTS_REQUIRE_SERVICES"] = "1"  # a case or database that is down fails

    def wrote_table() -> str | None:
        if any("| case |" in path.read_text() for path in out.glob("*.md")):
            return None
        return "the run wrote no results table"

    return Step(
        "benchmarks (smoke)",
        env,
        tuple(cmd),
        extra,
        timeout=BENCHMARK_BUDGET + STOP_GRACE,
        check=wrote_table,
        lane="lint",
        weight=150,
    )


def plan(
    envs: Sequence[Env], dbs: dict[str, list[str]], args: argparse.Namespace, out: Path
) -> list[Step]:
    """Every step of the run, in the order of the summary."""
    steps: list[Step] = []
    first = next((env for env in envs if env.lint), None)
    if first is not None and not args.fast:
        python = venvs.python_of(first.venv)
        for name, cmd in (
            ("ruff check", (python, "-m", "ruff", "check", ".")),
            ("ruff format --check", (python, "-m", "ruff", "format", "--check", ".")),
        ):
            steps.append(Step(name, first, cmd, lane="lint", weight=10))
        if (ROOT / "docs" / "conf.py").exists():
            # -E: Sphinx does not notice docstring changes, and an incremental build would not
            # repeat the warnings of pages it skips.
            sphinx = (python, "-m", "sphinx", "-W", "--keep-going", "-E", "-b", "html")
            cmd = (*sphinx, "docs", "docs/_build/html")
            steps.append(Step("sphinx-build", first, cmd, lane="lint", weight=60))
        if (ROOT / "benchmarks" / "run.py").exists():
            # PostgreSQL too unless it is down, which is then already this run's skip or failure.
            # On the newest Django of the run: the django.tasks cases need Django 6.
            newest = envs[-1]
            benchmark_db = args.db or ("all" if "postgres" in dbs[newest.name] else "sqlite")
            steps.append(benchmark_step(newest, benchmark_db, out))
    for env in envs:
        if not args.fast and env.mypy and (ROOT / PACKAGE).is_dir():
            cmd = (venvs.python_of(env.venv), "-m", "mypy", PACKAGE)
            steps.append(Step(f"mypy {env.name}", env, cmd, weight=180))
        for db in dbs[env.name]:
            steps.append(pytest_step(env, db, args.pytest_args))
    return steps


def lanes(steps: Sequence[Step]) -> list[list[Step]]:
    """``steps`` grouped into lanes, the longest first."""
    grouped: dict[str, list[Step]] = {}
    for step in steps:
        grouped.setdefault(step.lane or step.name, []).append(step)
    return sorted(grouped.values(), key=lambda lane: -sum(step.weight for step in lane))


def run_steps(
    steps: Sequence[Step], installed: dict[str, Future[Result]], jobs: int
) -> list[Result]:
    """Run ``steps``, ``jobs`` lanes at once, each lane once its virtualenv is ready; return
    their results in the order of ``steps``. The steps of a venv that failed to install do not
    run (that failure is its own result)."""
    pending = lanes(steps)
    results: dict[str, Result] = {}
    ready = threading.Condition()
    stopping = threading.Event()
    idle = 0
    for future in installed.values():
        future.add_done_callback(lambda _: _notify(ready))
    live = jobs == 1 or len(steps) == 1

    def startable() -> list[Step] | None:
        # The heaviest lane whose venv is ready, unless the idle workers are all owed to
        # heavier lanes still waiting for theirs: a short lane taken first would hold up the
        # longest one for its whole length.
        owed = 0
        for lane in pending:
            if not installed[lane[0].env.name].done():
                owed += 1
            elif idle > owed:
                return lane
        return None

    def next_lane() -> list[Step] | None:
        nonlocal idle
        with ready:
            idle += 1
            try:
                while pending and not stopping.is_set():
                    lane = startable()
                    if lane is not None:
                        pending.remove(lane)
                        return lane
                    ready.wait()
                return None
            finally:
                idle -= 1
                # A worker leaving the idle ones changes what the others may start.
                ready.notify_all()

    def work(logs: Path | None) -> None:
        while (lane := next_lane()) is not None:
            if installed[lane[0].env.name].result().status != "ok":
                continue
            for step in lane:
                if stopping.is_set():
                    return
                # A lane's later steps may use another venv: wait for it, skip it if it failed.
                if installed[step.env.name].result().status != "ok":
                    continue
                results[step.name] = run_step(step, logs)

    with (
        tempfile.TemporaryDirectory(prefix="dde-test-logs-") as logs,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        workers = [pool.submit(work, None if live else Path(logs)) for _ in range(jobs)]
        try:
            for done in workers:
                done.result()
        except BaseException:
            # Ctrl-C reached the running steps too; start no more.
            stopping.set()
            _notify(ready)
            raise
    return [results[step.name] for step in steps if step.name in results]


def _notify(condition: threading.Condition) -> None:
    with condition:
        condition.notify_all()


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def mariadb_client_missing() -> bool:
    """Whether mysqlclient cannot be built here: no MariaDB/MySQL client library to build on."""
    for probe in (["pkg-config", "--exists", "mariadb"], ["pkg-config", "--exists", "mysqlclient"]):
        with contextlib.suppress(OSError):
            if subprocess.run(probe, check=False).returncode == 0:
                return False
    return shutil.which("mysql_config") is None and shutil.which("mariadb_config") is None


# The run -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
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
    parser.add_argument(
        "--db",
        choices=DATABASES,
        help="run the tests on this database only (default: each entry's own databases)",
    )
    parser.add_argument(
        "--fast", action="store_true", help="skip ruff, docs, the benchmark smoke run and mypy"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=JOBS,
        help=f"steps to run at once (default {JOBS}); with 1 each step's output streams",
    )
    args = parser.parse_args(own)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    args.pytest_args = pytest_args
    return args


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
        # Asked for by name, or in CI: its absence is a failure. Only on a developer's machine,
        # running everything, is it skipped.
        fails = bool(wanted) or CI
        say(f"{env.name}: {'ERROR' if fails else 'SKIPPED'}: {message}")
        status = "failed" if fails else "skipped"
        run.add(Result(f"python {env.python} ({env.name})", status, note=message))
    return chosen


def install(
    chosen: Sequence[tuple[Env, str]], pool: ThreadPoolExecutor
) -> dict[str, Future[Result]]:
    """Start making every chosen venv, in parallel; each future's result says whether its venv
    is ready."""
    banner("Virtualenvs")

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
            with OUTPUT:
                say(f"[{env.name}] FAILED: {exc}")
                if log.exists():
                    lines = log.read_text(errors="replace").splitlines()[-40:]
                    say("\n".join(f"[{env.name}]   {line}" for line in lines))
            return Result(f"install {env.name}", "failed", time.monotonic() - started, str(exc))
        seconds = time.monotonic() - started
        say(f"[{env.name}] ready ({seconds:.0f}s)")
        return Result(f"install {env.name}", "ok", seconds)

    return {env.name: pool.submit(make, env, interpreter) for env, interpreter in chosen}


def databases(run: Run, envs: Sequence[Env], wanted: str | None) -> dict[str, list[str]]:
    """The databases each of ``envs`` is tested on: its own, or ``wanted``; a server only when
    it answers, and MariaDB only where its driver can be built."""
    banner("Databases")
    chosen = {env.name: [wanted] if wanted else list(env.databases) for env in envs}
    host, port = PG_ADDRESS
    problems = {
        "postgres": None
        if reachable(PG_ADDRESS)
        else f"PostgreSQL not reachable at {host}:{port} — start it with: {PG_START}",
        "mariadb": _mariadb_problem(),
    }
    for db, message in problems.items():
        if message is None or not any(db in dbs for dbs in chosen.values()):
            continue
        fails = CI or wanted == db
        say(f"{'ERROR' if fails else 'SKIPPED'}: {message}")
        run.add(Result(db, "failed" if fails else "skipped", note=message))
        for dbs in chosen.values():
            if db in dbs:
                dbs.remove(db)
    for env in envs:
        say(f"{env.name}: {', '.join(chosen[env.name]) or 'nothing'}")
    return chosen


def _mariadb_problem() -> str | None:
    host, port = MARIADB_ADDRESS
    if not reachable(MARIADB_ADDRESS):
        return f"MariaDB not reachable at {host}:{port} — start it with: {MARIADB_START}"
    if mariadb_client_missing():
        return f"no MariaDB client library to build mysqlclient — install it with: {MARIADB_CLIENT}"
    return None


def report(run: Run, started: float, load: tuple[float, ...]) -> int:
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
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    say(
        f"wall time {minutes}m {seconds:02d}s; load average {load[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs"
    )
    line = f"{totals['passed']} passed, {totals['failed']} failed"
    if totals["skipped"]:
        line += f", {totals['skipped']} skipped"
    say(line)
    return 1 if totals["failed"] else 0


def main(argv: Sequence[str]) -> int:
    started, load = time.monotonic(), os.getloadavg()
    args = parse_args(argv)
    run = Run()
    say(f"scripts/test.py in {ROOT}" + (" (CI: skips are failures)" if CI else ""))

    chosen = select_envs(run, args.env)
    if not chosen:
        run.add(Result("matrix", "failed", note="no matrix entry could be set up"))
        return report(run, started, load)
    dbs = databases(run, [env for env, _ in chosen], args.db)
    # Each venv holds the drivers of the databases it is tested on (mysqlclient builds only
    # where the MariaDB client library is).
    chosen = [(replace(env, databases=tuple(dbs[env.name])), python) for env, python in chosen]
    envs = [env for env, _ in chosen]
    with (
        ThreadPoolExecutor(max_workers=len(chosen)) as pool,
        tempfile.TemporaryDirectory(prefix="dde-bench-") as out,
    ):
        installed = install(chosen, pool)
        say(f"steps start as their virtualenv is ready, {args.jobs} at a time")
        results = run_steps(plan(envs, dbs, args, Path(out)), installed, args.jobs)
    for future in installed.values():
        run.add(future.result())
    run.results += results
    return report(run, started, load)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
