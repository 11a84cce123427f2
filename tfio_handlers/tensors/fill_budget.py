"""The process's bound on tensors filled from fewer values than their shapes hold.

TensorFlow reads a ``TensorProto`` with fewer typed values than its shape holds by repeating the
last one (no values: zeros), and so does :func:`~tfio_handlers.tensors.to_ndarray`. That is the
one place where a request's size does not bound what it allocates: a 20-byte message declaring
shape ``[2**27]`` with one ``float_val`` fills 512 MiB. Each request is bounded by the element
limit; but a server answers many requests at once (64 work slots by default, a gRPC pool of
threads), and 64 such messages, each within its limit, would ask for 32 GiB.

So every fill is charged to one process-wide :class:`FillBudget` before it is allocated, and
given back when the array is freed (a ``weakref.finalize`` on the filled array, which the views
made from it keep alive). A string fill is charged for its repeated bytes too: the array holds
references to one ``bytes``, but TensorFlow's tensor of it holds every copy. The fills of one
request count together (:func:`fills_of_one_request`): fills that could never fit, alone or
with the rest of their request, are refused 413; ones that do not fit now, because other requests
hold the budget, 503 with ``Retry-After``: the client may try again once those are answered.
Arrays read from ``tensor_content`` or from a value per element cost what their message's bytes
cost, and are not charged.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from tfio_handlers.config import DEFAULT_FILL_BYTES
from tfio_handlers.errors import PayloadTooLarge, ServerBusy

__all__ = ["DEFAULT_FILL_BYTES", "FillBudget", "fills_of_one_request"]

A = TypeVar("A")

_REQUEST: ContextVar[list[int] | None] = ContextVar("tfio_handlers_fill_request", default=None)
"""The bytes charged so far by the request being read in this context (one cell, so that a fill
adds to it without a new token), or ``None`` outside :func:`fills_of_one_request`."""


@contextmanager
def fills_of_one_request(read: dict[str, Any]) -> Iterator[None]:
    """The fills made inside (in this thread or task) count as one request's: when together they
    exceed the whole budget the request is refused 413, as it could never be answered, not 503.

    ``read`` is the dict the request's arrays are read into: emptied when an error leaves the
    block, since its traceback keeps the caller's frame (and so the arrays, and their charge)
    alive until the collector finds it.
    """
    token = _REQUEST.set([0])
    try:
        yield
    except BaseException:
        read.clear()
        raise
    finally:
        _REQUEST.reset(token)


class FillBudget:
    """The bytes that filled tensors may hold at once in this process (``limit_bytes``).

    :meth:`charge` before allocating, then :meth:`hold` the array (or :meth:`refund` if the
    allocation failed): the bytes come back when the array is freed.
    """

    def __init__(self, limit_bytes: int = DEFAULT_FILL_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._in_use = 0
        # Re-entrant: a finalizer (:meth:`refund`) may run in any thread at any allocation,
        # including one made while this thread holds the lock.
        self._lock = threading.RLock()

    @property
    def in_use(self) -> int:
        """The bytes that filled arrays alive now were charged."""
        return self._in_use

    def charge(self, nbytes: int, what: str) -> int:
        """Take ``nbytes`` for a fill (``what`` names it in a refusal), before it is allocated; the
        bytes charged, for :meth:`hold` or :meth:`refund`.

        Raises :class:`PayloadTooLarge` (413) for a fill over the whole budget, alone or with its
        request's other fills, and :class:`ServerBusy` (503, ``Retry-After``) when the fills of
        other requests, alive now, leave too little.
        """
        if nbytes <= 0:
            return 0
        limit = self.limit_bytes
        request = _REQUEST.get()
        before = request[0] if request is not None else 0
        if before + nbytes > limit:
            others = (
                f" (with the request's other filled tensors, {before + nbytes})" if before else ""
            )
            raise PayloadTooLarge(
                f"{what} repeats its values to fill {nbytes} bytes{others}, over the {limit} bytes "
                "filled tensors may take in this process (TFIO_HANDLERS_MAX_FILL_BYTES)"
            )
        with self._lock:  # numbers only in here: an error built here could run the collector
            held = self._in_use
            fits = held + nbytes <= limit
            if fits:
                self._in_use = held + nbytes
        if not fits:
            raise ServerBusy(
                f"{what} repeats its values to fill {nbytes} bytes, and the requests in progress "
                f"hold {held} of the {limit} bytes filled tensors may take in this process "
                "(TFIO_HANDLERS_MAX_FILL_BYTES): try again"
            )
        if request is not None:
            request[0] = before + nbytes
        return nbytes

    def refund(self, nbytes: int) -> None:
        """Give back what :meth:`charge` took, for a fill that was not made."""
        if nbytes:
            with self._lock:
                self._in_use -= nbytes

    def hold(self, array: A, charged: int) -> A:
        """``array``, the fill ``charged`` was taken for: the bytes come back when it is freed."""
        if charged:
            weakref.finalize(array, self.refund, charged)
        return array

    def __repr__(self) -> str:
        return f"FillBudget(in_use={self._in_use}, limit_bytes={self.limit_bytes})"
