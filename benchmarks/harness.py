"""Timing and reporting helpers shared by the benchmark groups of ``benchmarks/run.py``.

:func:`compare` times contenders side by side: each repeat times every contender once (a batch of
calls sized to take about ``target`` seconds), rotating who goes first so that no contender always
pays for another's garbage; the result is the median seconds per call and the spread (min-max over
repeats). Groups describe their results as :class:`Table` s and :class:`Goal` s, which
:mod:`run` renders into ``RESULTS.md``.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per call: median and spread over repeats."""

    median: float
    low: float
    high: float
    number: int
    """Calls per repeat."""

    def text(self) -> str:
        return f"{fmt_time(self.median)} ({fmt_time(self.low)}-{fmt_time(self.high)})"


def compare(
    contenders: dict[str, Callable[[], Any]],
    repeats: int,
    *,
    target: float = 0.05,
    max_number: int = 20000,
    budget: float = 8.0,
) -> dict[str, Timing]:
    """Time every contender ``repeats`` times, interleaved; see the module docstring.

    A contender slower than ``budget / repeats`` a call is timed fewer times (at least 3), so
    that a baseline of seconds a call does not stretch the run.
    """
    numbers: dict[str, int] = {}
    caps: dict[str, int] = {}
    for name, fn in contenders.items():
        fn()  # warm: caches, lazy imports, parsers
        start = time.perf_counter()
        fn()
        one = max(time.perf_counter() - start, 1e-7)
        numbers[name] = max(1, min(max_number, int(target / one)))
        caps[name] = max(3, min(repeats, int(budget / (one * numbers[name]))))
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            if len(samples[name]) >= caps[name]:
                continue
            fn = contenders[name]
            number = numbers[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return {
        name: Timing(statistics.median(s), min(s), max(s), numbers[name])
        for name, s in samples.items()
    }


def fmt_time(seconds: float) -> str:
    if seconds != seconds:
        return "n/a"
    if seconds >= 0.1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


def fmt_ratio(value: float) -> str:
    if value != value:
        return "n/a"
    if value >= 100:
        return f"{value:.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x"


@dataclass(slots=True)
class Table:
    """A result table: a title, column names, rows of cell texts, and notes under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal of the issue: what it asks, what was measured, whether it was met, and why not."""

    goal: str
    measured: str
    met: bool | None
    """``None``: information only, not a goal (the note says what it shows)."""
    note: str = ""


@dataclass(slots=True)
class GroupResult:
    name: str
    tables: list[Table] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    """Equality checks that passed (a failed one raises)."""
    seconds: float = 0.0
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def calls_fast_path(run: Callable[[], Any]) -> bool:
    """Whether ``run()`` goes through the simdjson fast path (``_simd.decode_predict``) and the
    fast path answers: the JSON codec as served either wires it in or not."""
    from tfio_handlers.protocol.tfs_json import simd as _simd

    original = _simd.decode_predict
    answered: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        answered.append(result is not None)
        return result

    _simd.decode_predict = spy  # type: ignore[assignment]
    try:
        run()
    finally:
        _simd.decode_predict = original  # type: ignore[assignment]
    return any(answered)
