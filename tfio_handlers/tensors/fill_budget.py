"""The process's bound on tensors filled from fewer values than their shapes hold.

TensorFlow reads a ``TensorProto`` with fewer typed values than its shape holds by repeating the
last one (no values: zeros), and so does :func:`~tfio_handlers.tensors.to_ndarray`. That is the
one place where a request's size does not bound what it allocates: a 20-byte message declaring
shape ``[2**27]`` with one ``float_val`` fills 512 MiB. Each request is bounded by the element
limit; but a server answers many requests at once (64 work slots by default, a gRPC pool of
threads), and 64 such messages, each within its limit, would ask for 32 GiB.

So every fill of :data:`SMALL_FILL_BYTES` or more is charged to one process-wide
:class:`FillBudget` before it is allocated, and given back when the array is freed (a
``weakref.finalize`` on the filled array, which the views made from it keep alive). A fill that
could never fit is refused 413; one that does not fit now, because others hold the budget, 503
with ``Retry-After``: the client may try again once they are answered. Arrays read from
``tensor_content`` or from a value per element cost what their message's bytes cost, and are not
charged.
"""

from __future__ import annotations

import threading
import weakref
from typing import TypeVar

from tfio_handlers.config import DEFAULT_FILL_BYTES
from tfio_handlers.errors import PayloadTooLarge, ServerBusy

__all__ = ["DEFAULT_FILL_BYTES", "SMALL_FILL_BYTES", "FillBudget"]

SMALL_FILL_BYTES = 1024**2
"""Fills under 1 MiB are not charged: 64 of them cost at most 64 MiB, and small requests then pay
no lock and no finalizer."""

A = TypeVar("A")


class FillBudget:
    """The bytes that filled tensors may hold at once in this process (``limit_bytes``).

    :meth:`charge` before allocating, then :meth:`hold` the array (or :meth:`refund` if the
    allocation failed): the bytes come back when the array is freed.
    """

    def __init__(self, limit_bytes: int = DEFAULT_FILL_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        """The bytes that filled arrays alive now were charged."""
        return self._in_use

    def charge(self, nbytes: int, what: str) -> int:
        """Take ``nbytes`` for a fill (``what`` names it in a refusal), before it is allocated; the
        bytes charged (0 for a fill under :data:`SMALL_FILL_BYTES`), for :meth:`hold` or
        :meth:`refund`.

        Raises :class:`PayloadTooLarge` (413) for a fill over the whole budget, and
        :class:`ServerBusy` (503, ``Retry-After``) when the fills alive now leave too little.
        """
        if nbytes < SMALL_FILL_BYTES:
            return 0
        limit = self.limit_bytes
        if nbytes > limit:
            raise PayloadTooLarge(
                f"{what} repeats its values to fill {nbytes} bytes, over the {limit} bytes filled "
                "tensors may take in this process (TFIO_HANDLERS_MAX_FILL_BYTES)"
            )
        with self._lock:
            if self._in_use + nbytes > limit:
                raise ServerBusy(
                    f"{what} repeats its values to fill {nbytes} bytes, and the requests in "
                    f"progress hold {self._in_use} of the {limit} bytes filled tensors may take "
                    "in this process (TFIO_HANDLERS_MAX_FILL_BYTES): try again"
                )
            self._in_use += nbytes
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
