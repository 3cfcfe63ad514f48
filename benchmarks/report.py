"""The results of a run: a JSON file with every raw number and the machine, and a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .harness import DASH, Config, Result

ROOT = Path(__file__).resolve().parent.parent

DATABASE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

HEADER = (
    "case",
    "database",
    "ours/s",
    "floor/s",
    f"ratio median [min{DASH}max]",
    "paired median",
    "target",
    "met?",
)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    """What the figures were measured on and with."""
    changes = _git("status", "--porcelain", "--", "django_domain_events")
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": _version("django"),
        "django_domain_outbox": _version("django-domain-outbox"),
        "msgspec": _version("msgspec"),
        "psycopg": _version("psycopg"),
        "kombu": _version("kombu"),
        "celery": _version("celery"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "package_has_uncommitted_changes": None if changes is None else bool(changes),
    }


def document(
    *,
    started: str,
    config: Config,
    info: Mapping[str, Any],
    databases: Mapping[str, Mapping[str, Any]],
    skipped: Mapping[str, str],
    results: Sequence[Result],
    seconds: float,
    load: Mapping[str, Sequence[float]],
) -> dict[str, Any]:
    """The JSON results: settings, machine, databases and every case's raw samples."""
    return {
        "started": started,
        "seconds": round(seconds, 1),
        "config": {
            "n": config.n,
            "reps": config.reps,
            "memory_events": config.memory_events,
            "quick": config.quick,
            "smoke": config.smoke,
        },
        "machine": dict(info),
        "load_average": dict(load),
        "databases": {alias: dict(about) for alias, about in databases.items()},
        "skipped": dict(skipped),
        "results": [
            {
                "case": result.case.key,
                "title": result.case.title,
                "database": result.alias,
                **result.summary,
            }
            for result in results
        ],
    }


def _database_line(alias: str, about: Mapping[str, Any]) -> str:
    if about["vendor"] == "postgresql":
        return (
            f"PostgreSQL {about['server_version']} over TCP (fsync {about['fsync']}, "
            f"synchronous_commit {about['synchronous_commit']}, shared_buffers "
            f"{about['shared_buffers']})"
        )
    if about["vendor"] == "mysql":
        return (
            f"MariaDB/MySQL {about['server_version']} over TCP ({about['isolation']}, "
            f"innodb_flush_log_at_trx_commit {about.get('innodb_flush_log_at_trx_commit')}, "
            f"sync_binlog {about.get('sync_binlog')}, innodb_buffer_pool_size "
            f"{about.get('innodb_buffer_pool_size')})"
        )
    return (
        f"SQLite {about['server_version']} file (journal_mode {about['journal_mode']}, "
        f"synchronous {about['synchronous']})"
    )


def table(results: Sequence[Result], databases: Mapping[str, Mapping[str, Any]]) -> str:
    """The Markdown table of ``results``."""
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---", "---"] + ["--:"] * (len(HEADER) - 2)) + "|",
    ]
    for result in results:
        cells = result.case.cells(result.summary)
        vendor = databases[result.alias]["vendor"]
        row = (
            f"{result.case.key}: {result.case.title}",
            DATABASE_NAMES.get(vendor, vendor),
            cells.ours,
            cells.floor,
            cells.ratio,
            cells.paired,
            cells.target,
            cells.met,
        )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _mode(config: Mapping[str, Any]) -> str:
    if config.get("smoke"):
        return " (smoke run: each case once, the figures mean nothing)"
    return " (QUICK)" if config["quick"] else ""


def markdown(doc: Mapping[str, Any], results: Sequence[Result]) -> str:
    """The Markdown results page: what was measured, on what, and the table."""
    config, info = doc["config"], doc["machine"]
    commit = info["commit"] or "unknown commit"
    if info["package_has_uncommitted_changes"]:
        commit += " + uncommitted changes to django_domain_events"
    lines = [
        f"# Benchmark results {doc['started'][:10]}" + _mode(config),
        "",
        f"- N = {config['n']:,} per repetition, {config['reps']} repetitions interleaved; "
        f"RSS case: {config['memory_events']:,} events after a warm-up of a tenth of that.",
        f"- {info['cpu_count']} CPUs ({info['cpu_model']}), {info['platform']}; Python "
        f"{info['python']}, Django {info['django']}, psycopg {info['psycopg']}, msgspec "
        f"{info['msgspec']}; {commit}.",
    ]
    lines += [f"- {_database_line(alias, about)}." for alias, about in doc["databases"].items()]
    lines += [f"- {alias}: skipped: {reason}." for alias, reason in doc["skipped"].items()]
    lines += [
        f"- Took {doc['seconds']:,.0f} s; load average (1 min) "
        f"{doc['load_average']['start'][0]:.2f} at the start, "
        f"{doc['load_average']['end'][0]:.2f} at the end.",
        "",
        table(results, doc["databases"]),
        "",
        f"Rates are median [min{DASH}max] over the repetitions. The ratio divides our median "
        f"rate by the floor's; its [min{DASH}max] and the paired median come from the "
        "per-repetition ratios (each repetition runs the floor and our case back to back). "
        "Targets apply to the ratio of medians.",
        "",
    ]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    # Written beside, then renamed: an interrupted run never leaves half a results file.
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def write(out: Path, stem: str, doc: Mapping[str, Any], page: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    _write_text(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    _write_text(md_path, page)
    return json_path, md_path
