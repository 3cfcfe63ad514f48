"""The harness: cases register themselves in ``CASES``; ``run_database`` runs them on one alias.

A case is a function decorated with ``@rate_case`` (a throughput, reported as a ratio to a raw
floor measured in the same run, on the same database, with the same N) or ``@memory_case``. To
add a case, add a decorated function to a module of ``benchmarks/cases/`` (and a new module's
name to ``benchmarks.cases.MODULES``); nothing here changes.

Repetitions are interleaved: each repetition runs every repeated case once, on freshly emptied
tables, so a slow minute on a shared machine lands on the floor and on our case alike.
"""

from __future__ import annotations

import abc
import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import connections

from . import databases

# Typographic marks of the table, named so no one mistakes them for "-" and "x".
DASH = "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"

WARMUP_N = 200
"""Work done by each case once, untimed, before the first repetition."""

Sample = dict[str, Any]
"""One measurement of one case, as stored in the JSON results."""


class BenchmarkError(Exception):
    """A case is broken: it did not time anything, or did not do the work it claims."""


class BudgetExceeded(BaseException):
    """The run's wall-clock budget (``run.py --budget``) ran out. A ``BaseException``, as
    ``KeyboardInterrupt`` is, so that no ``except Exception`` in a case swallows it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the run's budget of {seconds:g} s ran out")
        self.seconds = seconds
        self.during: str | None = None
        """The case that was running, and on which alias."""


@dataclass(frozen=True)
class Config:
    """How much work a run does."""

    n: int
    """Units of work (events, rows) per repetition of a rate case."""
    reps: int
    memory_events: int
    """Events published after warm-up by memory cases."""
    quick: bool = False
    latency_samples: int = 200
    """Samples taken by latency cases."""
    smoke: bool = False
    """Every case once, without the warm-up: proves each case runs and does the work it
    claims (``run.py --smoke``); its figures mean nothing."""


@dataclass(frozen=True)
class Target:
    """The least ratio to the floor (of medians) that meets the goal, per database vendor."""

    postgresql: float
    sqlite: float

    def for_vendor(self, vendor: str) -> float | None:
        """The target on ``vendor`` (Django's ``connection.vendor``), if there is one. MySQL
        and MariaDB (``mysql``) are held to PostgreSQL's: a server over TCP, like it."""
        return {"postgresql": self.postgresql, "mysql": self.postgresql, "sqlite": self.sqlite}.get(
            vendor
        )


class Bench:
    """What a case function gets: the alias to write to, ``n`` and the timer."""

    def __init__(self, alias: str, n: int) -> None:
        self.alias = alias
        self.vendor = connections[alias].vendor
        self.n = n
        self.seconds: float | None = None

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Time the block: the case's measured work and nothing else. Use it once per run."""
        gc.collect()
        started = time.perf_counter()
        yield
        self.seconds = time.perf_counter() - started

    def took(self, seconds: float) -> None:
        """Record the case's time when it is not a block this process times: the span of the
        timestamps its child processes report, say. Instead of ``timed()``, once per run."""
        self.seconds = seconds

    def expect(self, what: str, actual: int, expected: int) -> None:
        """Fail the case unless ``actual == expected``: a benchmark that did less work than it
        claims reports a rate that is simply wrong."""
        if actual != expected:
            raise BenchmarkError(f"{what}: expected {expected:,}, found {actual:,}.")


@dataclass(frozen=True)
class Cells:
    """One row of the results table, formatted."""

    ours: str
    floor: str = "—"
    ratio: str = "—"
    paired: str = "—"
    target: str = "—"
    met: str = "—"


class Case(abc.ABC):
    """A registered case: measures one thing and summarises its samples."""

    key: str
    title: str
    repeated: ClassVar[bool]
    """Whether the case runs once per repetition (interleaved) or once per database."""

    def requires(self) -> tuple[str, ...]:
        """Keys of the cases this one is compared with, which must run beside it."""
        return ()

    def unavailable(self) -> str | None:
        """Why the case cannot run on this machine now (a service it needs is down), or None."""
        return None

    def not_on(self, vendor: str) -> str | None:
        """Why the case does not run on a database of ``vendor`` (Django's
        ``connection.vendor``), or None when it does."""
        return None

    @abc.abstractmethod
    def measure(self, alias: str, config: Config) -> Sample:
        """Run the case once on ``alias`` and return its sample."""

    @abc.abstractmethod
    def describe(self, sample: Sample) -> str:
        """One line about ``sample``, for the progress output."""

    @abc.abstractmethod
    def summarise(self, samples: Mapping[str, Sequence[Sample]], vendor: str) -> dict[str, Any]:
        """Figures for the results file, from every case's samples on one database."""

    @abc.abstractmethod
    def cells(self, summary: Mapping[str, Any]) -> Cells:
        """The table row for ``summary`` (what ``summarise`` returned)."""


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}{DASH}{fmt(max(values))}]"


def _ratio(value: float) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class RateCase(Case):
    """A throughput: ``func`` does ``bench.n`` units of work inside ``bench.timed()``.

    ``func`` returns the number of units done when that is not ``bench.n``. With a ``floor``,
    the case is reported as a ratio to that case's rate, repetition by repetition too.
    """

    key: str
    title: str
    func: Callable[[Bench], int | None]
    floor: str | None = None
    target: Target | None = None
    unit: str = "events/s"
    needs: Callable[[], str | None] | None = None
    """Says why a service the case needs is unavailable, or None when it is there."""
    only_on: tuple[str, ...] = ()
    """The database vendors the case runs on; every one when empty."""
    repeated: ClassVar[bool] = True

    def requires(self) -> tuple[str, ...]:
        return (self.floor,) if self.floor else ()

    def unavailable(self) -> str | None:
        return self.needs() if self.needs else None

    def not_on(self, vendor: str) -> str | None:
        if not self.only_on or vendor in self.only_on:
            return None
        return f"runs on {', '.join(self.only_on)} only"

    def measure(self, alias: str, config: Config) -> Sample:
        bench = Bench(alias, config.n)
        done = self.func(bench)
        if bench.seconds is None:
            raise BenchmarkError(f"Case {self.key!r} never entered bench.timed().")
        count = bench.n if done is None else done
        return {"count": count, "seconds": bench.seconds, "rate": count / bench.seconds}

    def describe(self, sample: Sample) -> str:
        return f"{_rate(sample['rate'])} {self.unit} ({sample['seconds']:.2f} s)"

    def summarise(self, samples: Mapping[str, Sequence[Sample]], vendor: str) -> dict[str, Any]:
        rates = [sample["rate"] for sample in samples[self.key]]
        summary: dict[str, Any] = {
            "kind": "rate",
            "unit": self.unit,
            "n": samples[self.key][0]["count"],
            "samples": list(samples[self.key]),
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "floor": self.floor,
        }
        if self.floor is None:
            return summary
        floor_rates = [sample["rate"] for sample in samples[self.floor]]
        paired = [ours / floor for ours, floor in zip(rates, floor_rates, strict=True)]
        ratio = statistics.median(rates) / statistics.median(floor_rates)
        target = self.target.for_vendor(vendor) if self.target else None
        summary.update(
            floor_median=statistics.median(floor_rates),
            floor_min=min(floor_rates),
            floor_max=max(floor_rates),
            ratio=ratio,
            paired_ratios=paired,
            paired_median=statistics.median(paired),
            paired_min=min(paired),
            paired_max=max(paired),
            target=target,
            met=None if target is None else ratio >= target,
        )
        return summary

    def cells(self, summary: Mapping[str, Any]) -> Cells:
        ours = _spread([s["rate"] for s in summary["samples"]], _rate)
        if summary["floor"] is None:
            return Cells(ours=ours)
        target = summary["target"]
        return Cells(
            ours=ours,
            floor=(
                f"{_rate(summary['floor_median'])} "
                f"[{_rate(summary['floor_min'])}{DASH}{_rate(summary['floor_max'])}]"
            ),
            ratio=(
                f"{summary['floor']} {TIMES} {_ratio(summary['ratio'])} "
                f"[{_ratio(summary['paired_min'])}{DASH}{_ratio(summary['paired_max'])}]"
            ),
            paired=_ratio(summary["paired_median"]),
            target="—" if target is None else f"≥ {target:.2f}",
            met="—" if summary["met"] is None else ("yes" if summary["met"] else "**no**"),
        )


@dataclass(frozen=True)
class MemoryTrace:
    """Resident set size while a loop ran: after warm-up, then at regular points."""

    events: int
    warmup: int
    rss_bytes: tuple[int, ...]
    """RSS after warm-up first, then after each tenth of ``events``."""

    @property
    def growth_bytes(self) -> int:
        return self.rss_bytes[-1] - self.rss_bytes[0]


@dataclass(frozen=True)
class MemoryCase(Case):
    """Memory growth: ``func`` runs ``bench.n`` iterations after its own warm-up and traces RSS.

    Runs once per database, after the repetitions, and meets its goal when RSS grew by less
    than ``limit_mb`` between the end of warm-up and the end of the loop.
    """

    key: str
    title: str
    func: Callable[[Bench], MemoryTrace]
    limit_mb: float
    repeated: ClassVar[bool] = False

    def measure(self, alias: str, config: Config) -> Sample:
        bench = Bench(alias, config.memory_events)
        started = time.perf_counter()
        trace = self.func(bench)
        bench.expect(f"{self.key}: events published", trace.events, bench.n)
        return {
            "events": trace.events,
            "warmup": trace.warmup,
            "rss_mb": [round(value / 2**20, 2) for value in trace.rss_bytes],
            "growth_mb": round(trace.growth_bytes / 2**20, 2),
            "seconds": time.perf_counter() - started,
        }

    def describe(self, sample: Sample) -> str:
        return (
            f"RSS {sample['growth_mb']:+.1f} MB over {sample['events']:,} events "
            f"({sample['seconds']:.1f} s)"
        )

    def summarise(self, samples: Mapping[str, Sequence[Sample]], vendor: str) -> dict[str, Any]:
        [sample] = samples[self.key]
        return {
            "kind": "memory",
            **sample,
            "limit_mb": self.limit_mb,
            "met": sample["growth_mb"] < self.limit_mb,
        }

    def cells(self, summary: Mapping[str, Any]) -> Cells:
        return Cells(
            ours=f"{summary['growth_mb']:+.1f} MB RSS over {summary['events']:,} events",
            target=f"< {self.limit_mb:g} MB",
            met="yes" if summary["met"] else "**no**",
        )


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value of ``ordered`` (sorted) below which ``fraction`` of the values lie."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@dataclass(frozen=True)
class LatencyCase(Case):
    """Latencies in milliseconds: ``func`` returns one per sample. Runs once per database, after
    the repetitions, and meets its goal when the p50 and the p99 are within their limits.

    ``scale`` multiplies the run's latency samples (a p999 needs a thousand), except in a smoke
    run; ``beside`` names another latency case that runs with this one and whose figures its
    row shows (the same latency unloaded, beside this one under load)."""

    key: str
    title: str
    func: Callable[[Bench], list[float]]
    p50_ms: float
    p99_ms: float
    needs: Callable[[], str | None] | None = None
    scale: int = 1
    beside: str | None = None
    repeated: ClassVar[bool] = False

    def requires(self) -> tuple[str, ...]:
        return (self.beside,) if self.beside else ()

    def unavailable(self) -> str | None:
        return self.needs() if self.needs else None

    def measure(self, alias: str, config: Config) -> Sample:
        # A smoke run only proves the case runs: its few samples are not scaled.
        bench = Bench(alias, config.latency_samples * (1 if config.smoke else self.scale))
        found = sorted(self.func(bench))
        bench.expect(f"{self.key}: samples", len(found), bench.n)
        return {
            "samples": len(found),
            "p50_ms": _percentile(found, 0.5),
            "p99_ms": _percentile(found, 0.99),
            "p999_ms": _percentile(found, 0.999),
            "max_ms": found[-1],
        }

    def describe(self, sample: Sample) -> str:
        return (
            f"p50 {sample['p50_ms']:.1f} ms, p99 {sample['p99_ms']:.1f} ms, p999 "
            f"{sample['p999_ms']:.1f} ms over {sample['samples']:,} samples"
        )

    def summarise(self, samples: Mapping[str, Sequence[Sample]], vendor: str) -> dict[str, Any]:
        [sample] = samples[self.key]
        summary = {
            "kind": "latency",
            **sample,
            "p50_limit_ms": self.p50_ms,
            "p99_limit_ms": self.p99_ms,
            "met": sample["p50_ms"] <= self.p50_ms and sample["p99_ms"] <= self.p99_ms,
            "beside": self.beside,
        }
        if self.beside:
            [other] = samples[self.beside]
            summary.update({f"beside_{name}": other[name] for name in _LATENCY_FIGURES})
        return summary

    def cells(self, summary: Mapping[str, Any]) -> Cells:
        return Cells(
            ours=_latencies(summary),
            floor=(
                f"{summary['beside']}: {_latencies(summary, 'beside_')}"
                if summary.get("beside")
                else "—"
            ),
            target=f"p50 ≤ {summary['p50_limit_ms']:g}, p99 ≤ {summary['p99_limit_ms']:g} ms",
            met="yes" if summary["met"] else "**no**",
        )


_LATENCY_FIGURES = ("samples", "p50_ms", "p99_ms", "p999_ms", "max_ms")


def _latencies(summary: Mapping[str, Any], prefix: str = "") -> str:
    text = f"p50 {summary[prefix + 'p50_ms']:.1f} ms, p99 {summary[prefix + 'p99_ms']:.1f} ms"
    # Under a thousand samples the p999 is the largest: say so.
    if summary[prefix + "samples"] >= 1000:
        return text + f", p999 {summary[prefix + 'p999_ms']:.1f} ms"
    return text + f", max {summary[prefix + 'max_ms']:.1f} ms"


CASES: list[Case] = []
"""Every registered case, in registration order (the order of the results table)."""


def register(case: Case) -> Case:
    """Add ``case`` to ``CASES``; keys are unique."""
    if any(other.key == case.key for other in CASES):
        raise ValueError(f"Two benchmark cases use the key {case.key!r}; give each its own.")
    CASES.append(case)
    return case


def rate_case(
    key: str,
    title: str,
    *,
    floor: str | None = None,
    target: Target | None = None,
    unit: str = "events/s",
    needs: Callable[[], str | None] | None = None,
    only_on: tuple[str, ...] = (),
) -> Callable[[Callable[[Bench], int | None]], Callable[[Bench], int | None]]:
    """Register the decorated function as a ``RateCase``; the function is returned unchanged."""

    def decorate(func: Callable[[Bench], int | None]) -> Callable[[Bench], int | None]:
        case = RateCase(
            key, title, func, floor=floor, target=target, unit=unit, needs=needs, only_on=only_on
        )
        register(case)
        return func

    return decorate


def latency_case(
    key: str,
    title: str,
    *,
    p50_ms: float,
    p99_ms: float,
    needs: Callable[[], str | None] | None = None,
    scale: int = 1,
    beside: str | None = None,
) -> Callable[[Callable[[Bench], list[float]]], Callable[[Bench], list[float]]]:
    """Register the decorated function as a ``LatencyCase``; the function is returned
    unchanged."""

    def decorate(func: Callable[[Bench], list[float]]) -> Callable[[Bench], list[float]]:
        register(
            LatencyCase(
                key,
                title,
                func,
                p50_ms=p50_ms,
                p99_ms=p99_ms,
                needs=needs,
                scale=scale,
                beside=beside,
            )
        )
        return func

    return decorate


def available(cases: Sequence[Case]) -> tuple[list[Case], dict[str, str]]:
    """The cases that can run now, and why each other one cannot (its own reason, or that of
    a case it is compared with)."""
    reasons = {case.key: reason for case in cases if (reason := case.unavailable())}
    changed = True
    while changed:
        changed = False
        for case in cases:
            if case.key in reasons:
                continue
            blocked = [key for key in case.requires() if key in reasons]
            if blocked:
                reasons[case.key] = reasons[blocked[0]]
                changed = True
    return [case for case in cases if case.key not in reasons], reasons


def memory_case(
    key: str, title: str, *, limit_mb: float
) -> Callable[[Callable[[Bench], MemoryTrace]], Callable[[Bench], MemoryTrace]]:
    """Register the decorated function as a ``MemoryCase``; the function is returned unchanged."""

    def decorate(func: Callable[[Bench], MemoryTrace]) -> Callable[[Bench], MemoryTrace]:
        register(MemoryCase(key, title, func, limit_mb=limit_mb))
        return func

    return decorate


def select(keys: Sequence[str] | None) -> list[Case]:
    """The cases named by ``keys`` and those they are compared with; all cases for None."""
    if not keys:
        return list(CASES)
    by_key = {case.key: case for case in CASES}
    unknown = [key for key in keys if key not in by_key]
    if unknown:
        raise BenchmarkError(
            f"Unknown case {', '.join(map(repr, unknown))}; the cases are: {', '.join(by_key)}."
        )
    wanted: set[str] = set()
    pending = list(keys)
    while pending:
        key = pending.pop()
        if key not in wanted:
            wanted.add(key)
            pending.extend(by_key[key].requires())
    return [case for case in CASES if case.key in wanted]


@dataclass(frozen=True)
class Result:
    """One case's figures on one database."""

    case: Case
    alias: str
    summary: dict[str, Any]


Progress = Callable[[str], None]


def _measure(case: Case, alias: str, config: Config) -> Sample:
    try:
        return case.measure(alias, config)
    except BudgetExceeded as exc:
        exc.during = exc.during or f"{case.key} on {alias}"
        raise


def run_database(
    alias: str, cases: Sequence[Case], config: Config, progress: Progress
) -> list[Result]:
    """Run ``cases`` on ``alias``: a warm-up, ``config.reps`` interleaved repetitions of the
    repeated cases, then the cases that run once. Cases that do not run on its database are
    left out, with a line of progress saying why."""
    vendor = connections[alias].vendor
    for case in cases:
        reason = case.not_on(vendor)
        if reason is not None:
            progress(f"[{alias}] skipping {case.key}: {reason}")
    cases = [case for case in cases if case.not_on(vendor) is None]
    repeated = [case for case in cases if case.repeated]
    once = [case for case in cases if not case.repeated]
    if not config.smoke:
        # Imports, cached SQL and connection set-up are paid here, before anything is timed.
        warmup = dataclasses.replace(config, n=min(config.n, WARMUP_N))
        for case in repeated:
            databases.reset(alias)
            _measure(case, alias, warmup)
    samples: dict[str, list[Sample]] = {case.key: [] for case in cases}
    for rep in range(config.reps):
        # Every other repetition runs backwards, so a steady drift in the machine's speed does
        # not always favour the cases that run first.
        for case in repeated if rep % 2 == 0 else repeated[::-1]:
            databases.reset(alias, checkpoint=not config.smoke)
            sample = _measure(case, alias, config)
            samples[case.key].append(sample)
            progress(f"[{alias}] rep {rep + 1}/{config.reps} {case.key}: {case.describe(sample)}")
    for case in once:
        databases.reset(alias, checkpoint=not config.smoke)
        sample = _measure(case, alias, config)
        samples[case.key].append(sample)
        progress(f"[{alias}] {case.key}: {case.describe(sample)}")
    databases.reset(alias, checkpoint=not config.smoke)
    return [Result(case, alias, case.summarise(samples, vendor)) for case in cases]
