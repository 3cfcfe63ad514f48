#!/usr/bin/env python3
"""Run the benchmark suite: every case, on SQLite and PostgreSQL, in one process.

    python benchmarks/run.py                         # N = 10,000, 5 repetitions, both databases
    QUICK=1 python benchmarks/run.py                 # N = 1,000, 3 repetitions: rough figures
    python benchmarks/run.py --smoke                 # every case once, N = 20: does it run? (CI)
    python benchmarks/run.py --db sqlite --case publish-1 --profile

Writes ``benchmarks/results/<YYYY-MM-DD>.json`` (every raw number, the machine, the database
servers) and ``<YYYY-MM-DD>.md`` (the table), and prints the table. QUICK, smoke and runs of
chosen cases add ``-quick`` / ``-smoke`` / ``-partial`` to the name, so they never replace a
full run's results. PostgreSQL (127.0.0.1:5432) is skipped when it does not answer, unless asked
for by ``--db postgres`` or required by ``DOMAIN_EVENTS_REQUIRE_SERVICES``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FULL = {"n": 10_000, "reps": 5, "memory_events": 100_000, "latency_samples": 200}
QUICK = {"n": 1_000, "reps": 3, "memory_events": 5_000, "latency_samples": 50}
# Twenty: the ordering cases' many keys are then two keys of ten events each. Two events for
# the RSS case: each of its readings is a full gc.collect(), seconds on a loaded machine.
SMOKE = {"n": 20, "reps": 1, "memory_events": 2, "latency_samples": 5}
SMOKE_BUDGET = 300
"""Seconds a smoke run may take, from its start to its last case, before it fails: a hung case
must not hold the test command for long. A smoke run of both databases took 133 s under a load
average of 13 to 16 on 2 CPUs."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Measure django_domain_events against raw ORM floors, on SQLite and "
        "PostgreSQL. QUICK=1 in the environment runs a small N.",
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres", "mariadb", "all"),
        default="all",
        help="database to measure (default: all, SQLite and PostgreSQL, PostgreSQL skipped if "
        "not reachable; MariaDB only when named)",
    )
    parser.add_argument("--n", type=int, help="work per repetition (default 10,000; QUICK 1,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5; QUICK 3)")
    parser.add_argument(
        "--memory-events",
        type=int,
        help="events of the RSS case after warm-up (default 100,000; QUICK 5,000)",
    )
    parser.add_argument(
        "--case",
        action="append",
        metavar="KEY",
        help="run only this case and its floor (repeatable; default: every case)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="directory for the results files (default: benchmarks/results)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run every case once with N = 20 and no warm-up, within a budget: checks that "
        "each case runs and does its work; the figures mean nothing",
    )
    parser.add_argument(
        "--budget",
        type=float,
        metavar="SECONDS",
        help=f"fail the run if it takes longer than this (default with --smoke: {SMOKE_BUDGET})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each chosen case once under cProfile and print where the time goes; "
        "writes no results",
    )
    args = parser.parse_args(argv)
    for name in ("n", "reps", "memory_events", "budget"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.smoke and args.budget is None:
        args.budget = SMOKE_BUDGET
    return args


def start_budget(seconds: float | None) -> None:
    """Raise ``BudgetExceeded`` in the main thread once ``seconds`` have passed."""
    if seconds is None:
        return

    from benchmarks.harness import BudgetExceeded

    def expired(signum: int, frame: object) -> None:
        raise BudgetExceeded(seconds)

    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def profile(aliases: Sequence[str], keys: Sequence[str] | None, n: int) -> None:
    """Run each chosen case once per alias under cProfile, after a warm-up, and print the
    functions that take the most time."""
    from django.db import connections

    from benchmarks import databases, harness

    for alias in aliases:
        for case in harness.select(keys):
            if keys and case.key not in keys:
                continue  # a floor pulled in by select(): not what was asked about
            if case.not_on(connections[alias].vendor) is not None:
                continue
            config = harness.Config(n=n, reps=1, memory_events=n)
            databases.reset(alias)
            case.measure(alias, harness.Config(n=harness.WARMUP_N, reps=1, memory_events=100))
            databases.reset(alias)
            profiler = cProfile.Profile()
            profiler.enable()
            sample = case.measure(alias, config)
            profiler.disable()
            print(f"\n==> {case.key} on {alias}: {case.describe(sample)} under cProfile")
            stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
            if os.environ.get("PROFILE_CALLEES"):
                stats.print_callees(os.environ["PROFILE_CALLEES"])
            databases.reset(alias)


def run(args: argparse.Namespace, quick: bool) -> int:
    from django.db import connections

    from benchmarks import cases, databases, harness, report

    cases.load()
    quick = quick and not args.smoke
    defaults = SMOKE if args.smoke else QUICK if quick else FULL
    config = harness.Config(
        n=args.n or defaults["n"],
        reps=args.reps or defaults["reps"],
        memory_events=args.memory_events or defaults["memory_events"],
        quick=quick,
        latency_samples=defaults["latency_samples"],
        smoke=args.smoke,
    )
    try:
        chosen = harness.select(args.case)
    except harness.BenchmarkError as exc:
        say(f"error: {exc}")
        return 2
    chosen, unavailable = harness.available(chosen)
    for key, reason in unavailable.items():
        say(f"skipping case {key}: {reason}")
    required = bool(os.environ.get("DOMAIN_EVENTS_REQUIRE_SERVICES"))
    if unavailable and required:
        say("error: DOMAIN_EVENTS_REQUIRE_SERVICES is set, so every case must run")
        return 2

    aliases = list(databases.ALIASES) if args.db == "all" else [args.db]
    skipped: dict[str, str] = {}
    for alias in list(aliases):
        reason = databases.unavailable(alias)
        if reason is None:
            continue
        if args.db != "all" or required:
            say(f"error: {reason}")
            return 2
        say(f"skipping {alias}: {reason}")
        skipped[alias] = reason
        aliases.remove(alias)
    for alias in aliases:
        databases.prepare(alias)

    if args.profile:
        profile(aliases, args.case, config.n)
        return 0

    started = dt.datetime.now().astimezone()
    clock = time.monotonic()
    load_start = os.getloadavg()
    say(
        f"benchmarks: N={config.n:,}, {config.reps} repetitions, RSS case "
        f"{config.memory_events:,} events; {', '.join(aliases)}"
    )
    results: list[harness.Result] = []
    about: dict[str, dict[str, object]] = {}
    for alias in aliases:
        about[alias] = databases.describe(alias)
        results += harness.run_database(alias, chosen, config, say)
        connections[alias].close()

    doc = report.document(
        started=started.isoformat(timespec="seconds"),
        config=config,
        info=report.machine(),
        databases=about,
        skipped={**skipped, **unavailable},
        results=results,
        seconds=time.monotonic() - clock,
        load={"start": load_start, "end": os.getloadavg()},
    )
    page = report.markdown(doc, results)
    stem = started.date().isoformat()
    if args.smoke:
        stem += "-smoke"
    elif quick or args.case:
        stem += "-quick" if quick else "-partial"
    json_path, md_path = report.write(args.out, stem, doc, page)
    print(page)
    say(f"wrote {json_path} and {md_path}")
    return 0


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    # Importable before django.setup(): the harness touches the settings only when it runs.
    from benchmarks import children
    from benchmarks.harness import BudgetExceeded

    children.stop_with_the_run()

    start_budget(args.budget)
    try:
        return setup_and_run(args)
    except BudgetExceeded as exc:
        say(f"error: {exc}" + (f", during {exc.during}" if exc.during else ""))
        return 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def setup_and_run(args: argparse.Namespace) -> int:
    quick = os.environ.get("QUICK", "").strip().lower() in {"1", "true", "yes"}
    with tempfile.TemporaryDirectory(prefix="dde-bench-") as tmp:
        # Set before Django reads its settings; a project's own DJANGO_SETTINGS_MODULE in the
        # caller's environment must not leak in.
        os.environ["DDE_BENCH_SQLITE_PATH"] = str(Path(tmp) / "bench.sqlite3")
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
        import django

        django.setup()
        from django.db import connections

        try:
            return run(args, quick)
        finally:
            connections.close_all()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
