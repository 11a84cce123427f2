"""A request's work written once, run in a thread or on the event loop.

The pipeline's request handlers (``/invocations``, TF Serving's ``:predict``, ``:classify`` and
``:regress``) are generators: they decode, ``yield`` each backend call they need (a predict,
classify or regress request) and receive its answer, then encode. A driver runs them:

* :func:`run_steps`, in the calling thread: each call made with a blocking function. That is how
  the WSGI adapter, plain code and any request with user code run them, in the work pool.
* :func:`arun_steps`, on the event loop: each call awaited (the embedded backend's model threads,
  the batching queue, a remote model server's network I/O), so a small request's decoding and
  encoding never pay a thread hop and requests that arrive while the model runs can be batched
  with each other. An answer too big to write on the loop is written in a thread.

A backend call that raises is thrown into the generator at its ``yield``, so each handler's error
handling is written once for both drivers.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeAlias, TypeVar

__all__ = ["Steps", "arun_steps", "run_steps"]

T = TypeVar("T")

Steps: TypeAlias = Generator[Any, Any, T]
"""A handler: yields backend requests, is sent their answers, returns its result."""


def run_steps(steps: Steps[T], call: Callable[[Any], Any]) -> T:
    """Run ``steps`` to its result in this thread, answering each yielded request with ``call``."""
    try:
        request = next(steps)
        while True:
            try:
                answer = call(request)
            except Exception as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result


async def arun_steps(
    steps: Steps[T],
    acall: Callable[[Any], Awaitable[Any]],
    offload: Callable[[Callable[[], tuple[bool, Any]]], Awaitable[tuple[bool, Any]]],
    on_loop: Callable[[Any], bool],
) -> T:
    """Run ``steps`` to its result on the event loop, awaiting ``acall`` for each yielded request.

    After each answer the handler goes on on the loop when ``on_loop(answer)`` says the rest is
    small, else through ``offload`` (a thread), so a huge answer never blocks the loop while it is
    written. A cancelled await (the request's timeout) closes the generator (or leaves it to the thread
    that is writing its answer).
    """
    try:
        request = next(steps)
        while True:
            try:
                answer = await acall(request)
            except Exception as exc:
                request = steps.throw(exc)
                continue
            if on_loop(answer):
                request = steps.send(answer)
                continue
            finished, value = await offload(functools.partial(_resume, steps, answer))
            if finished:
                result: T = value
                return result
            request = value
    except StopIteration as done:
        ended: T = done.value
        return ended
    finally:
        # Cancelled while a thread writes the answer: that thread finishes the generator.
        with contextlib.suppress(ValueError):
            steps.close()


def _resume(steps: Steps[Any], answer: Any) -> tuple[bool, Any]:
    """``steps.send(answer)`` as ``(finished, next request or result)``: a thread's future cannot
    carry :class:`StopIteration`."""
    try:
        return False, steps.send(answer)
    except StopIteration as done:
        return True, done.value
