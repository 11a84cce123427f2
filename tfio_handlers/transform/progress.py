"""How far a transform job is: a tqdm bar on a terminal, a log line now and then otherwise.

The bar counts bytes of input (so its ETA is right for records of any size) and shows records, records
per second and errors beside it. tqdm is optional (the ``progress`` extra) and imported only here, only
when a bar is shown; without it, or when stderr is not a terminal, the job logs a line every
``interval`` seconds on the ``tfio_handlers.transform`` logger.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import time
from typing import Any, Literal, Protocol, TextIO

__all__ = ["LogProgress", "NoProgress", "Progress", "ProgressMode", "TqdmProgress", "make_progress"]

log = logging.getLogger("tfio_handlers.transform")

ProgressMode = Literal["auto", "bar", "log", "off"]


class Progress(Protocol):
    """What the job reports; called from the job's main thread only."""

    def start(self, total_bytes: int) -> None: ...

    def advance(self, records: int, nbytes: int, errors: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """Reports nothing."""

    def start(self, total_bytes: int) -> None:
        pass

    def advance(self, records: int, nbytes: int, errors: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Counts:
    def __init__(self) -> None:
        self.total_bytes = 0
        self.records = 0
        self.nbytes = 0
        self.errors = 0
        self.started = time.monotonic()

    def add(self, records: int, nbytes: int, errors: int) -> None:
        self.records += records
        self.nbytes += nbytes
        self.errors += errors

    def rate(self) -> float:
        return self.records / max(time.monotonic() - self.started, 1e-9)


class LogProgress(_Counts):
    """A log line every ``interval`` seconds: records, share of bytes, records/s, errors, ETA."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self.last = time.monotonic()

    def start(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.started = self.last = time.monotonic()

    def advance(self, records: int, nbytes: int, errors: int) -> None:
        self.add(records, nbytes, errors)
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            log.info("transform: %s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = self.nbytes / self.total_bytes if self.total_bytes else 1.0
        eta = elapsed * (1 - done) / done if done > 0 else float("nan")
        return (
            f"{self.records} records ({done:.0%} of {_size(self.total_bytes)}), "
            f"{self.rate():.0f} records/s, {_size(self.nbytes / elapsed)}/s, "
            f"{self.errors} errors, ETA {eta:.0f} s"
        )

    def close(self) -> None:
        pass


class TqdmProgress(_Counts):
    """A tqdm bar of input bytes, with records, records/s and errors beside it."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.bar: Any = None
        self.shown = 0.0

    def start(self, total_bytes: int) -> None:
        tqdm = importlib.import_module("tqdm").tqdm  # lazily: an optional dependency

        self.total_bytes = total_bytes
        self.started = time.monotonic()
        self.bar = tqdm(
            total=total_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="transform",
            file=self.stream,
            dynamic_ncols=True,
        )

    def advance(self, records: int, nbytes: int, errors: int) -> None:
        self.add(records, nbytes, errors)
        if self.bar is None:
            return
        now = time.monotonic()
        if now - self.shown >= 0.5:
            self.shown = now
            postfix = f"{self.records} records, {self.rate():.0f} rec/s, {self.errors} errors"
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(nbytes)

    def close(self) -> None:
        if self.bar is not None:
            postfix = f"{self.records} records, {self.rate():.0f} rec/s, {self.errors} errors"
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.close()
            self.bar = None


def make_progress(
    mode: ProgressMode = "auto", *, stream: TextIO | None = None, interval: float = 10.0
) -> Progress:
    """``auto``: a bar when ``stream`` (stderr) is a terminal and tqdm is installed, else log lines."""
    stream = sys.stderr if stream is None else stream
    if mode == "off":
        return NoProgress()
    has_tqdm = importlib.util.find_spec("tqdm") is not None
    if mode == "bar" or (mode == "auto" and has_tqdm and _isatty(stream)):
        if not has_tqdm:
            log.warning(
                "tqdm is not installed (pip install 'tfio-handlers[progress]'): logging instead"
            )
            return LogProgress(interval)
        return TqdmProgress(stream)
    return LogProgress(interval)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GiB"
