"""The batch scheduler: :class:`BatchingBackend`'s open batches, its batch threads and its counts,
and :func:`from_env`, which builds one from SageMaker's variables.

A request becomes a task with a key (alike requests have equal keys); tasks of one key join an
open batch until it holds ``max_batch_size`` rows or its ``batch_timeout_micros`` run out, then a
batch thread runs it: one task alone on the inner backend, several merged and split by
:mod:`.merge`. The package docstring (:mod:`tfio_handlers.backends.batching`) has the rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from ...config import env_int
from ...errors import BackendUnavailable, HTTPError, InternalError
from ...observability.metrics import active as observed_metrics
from ...protocol.arrays import Array, PredictArrays, Prediction
from ...protos import (
    DEFAULT_SIGNATURE,
    ClassificationRequest,
    ClassificationResponse,
    GetModelMetadataRequest,
    GetModelMetadataResponse,
    GetModelStatusRequest,
    GetModelStatusResponse,
    ModelServerConfig,
    PredictRequest,
    PredictResponse,
    RegressionRequest,
    RegressionResponse,
    SignatureDef,
    coerce,
)
from ..base import Backend, ResolvedModel
from ..model_calls import usable_cpus
from .merge import (
    merge_arrays,
    merge_examples,
    merge_predict,
    split_examples,
    split_predict,
    split_prediction,
)

__all__ = [
    "BATCH_TIMEOUT_MICROS_ENV",
    "ENABLE_BATCHING_ENV",
    "MAX_BATCH_SIZE_ENV",
    "MAX_ENQUEUED_BATCHES_ENV",
    "NUM_BATCH_THREADS_ENV",
    "BatchStats",
    "BatchingBackend",
    "from_env",
]

log = logging.getLogger(__name__)

ENABLE_BATCHING_ENV: Final = "SAGEMAKER_TFS_ENABLE_BATCHING"
MAX_BATCH_SIZE_ENV: Final = "SAGEMAKER_TFS_MAX_BATCH_SIZE"
BATCH_TIMEOUT_MICROS_ENV: Final = "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS"
NUM_BATCH_THREADS_ENV: Final = "SAGEMAKER_TFS_NUM_BATCH_THREADS"
MAX_ENQUEUED_BATCHES_ENV: Final = "SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES"

_QUEUE_FULL: Final = "The batch scheduling queue to which this task was submitted is full"

# -- the environment ------------------------------------------------------------------------------


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def from_env(inner: Backend, env: Mapping[str, str] | None = None) -> Backend:
    """``inner`` wrapped in a :class:`BatchingBackend` when ``SAGEMAKER_TFS_ENABLE_BATCHING`` is
    true (``true``, ``1``, ``yes``, ``on``), configured from the other ``SAGEMAKER_TFS_*``
    variables (see the package docstring); ``inner`` itself otherwise."""
    environ = os.environ if env is None else env
    if not _env_flag(environ, ENABLE_BATCHING_ENV):
        return inner
    return BatchingBackend(
        inner,
        max_batch_size=env_int(environ, MAX_BATCH_SIZE_ENV, 8, error=BackendUnavailable) or 8,
        batch_timeout_micros=env_int(
            environ, BATCH_TIMEOUT_MICROS_ENV, 1000, error=BackendUnavailable
        )
        or 0,
        num_batch_threads=env_int(environ, NUM_BATCH_THREADS_ENV, None, error=BackendUnavailable),
        max_enqueued_batches=env_int(
            environ, MAX_ENQUEUED_BATCHES_ENV, None, error=BackendUnavailable
        ),
    )


# -- tasks and batches ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Task:
    """One caller's request, waiting in a batch."""

    kind: str
    """``arrays`` (:class:`PredictArrays`), ``predict`` (a ``PredictRequest``), ``classify`` or
    ``regress``."""
    request: Any
    rows: int
    key: tuple[Any, ...] | None
    """Requests of equal keys may be merged; ``None``: this one runs alone, in the caller."""
    future: Future[Any] = field(default_factory=Future)
    inputs: Mapping[str, Array] | None = None
    """A ``predict`` task's tensors, read by its caller before it joins a batch (a tensor that
    cannot be read, or is refused by a limit, fails its own request and not its batch)."""


@dataclass(slots=True)
class _Batch:
    key: tuple[Any, ...]
    deadline: float
    tasks: list[_Task] = field(default_factory=list)
    rows: int = 0


@dataclass(frozen=True, slots=True)
class BatchStats:
    """What a :class:`BatchingBackend` has done so far."""

    requests: int
    """Requests submitted (merged or not)."""
    batches: int
    """Batches of two or more requests run."""
    batched_requests: int
    """Requests that ran inside such a batch."""
    solo: int
    """Requests that ran alone (no partner arrived in time, or not mergeable)."""
    reruns: int
    """Batches whose response could not be split and whose requests were run again alone."""

    @property
    def mean_batch_size(self) -> float:
        """Requests per batch of two or more (0 when none ran)."""
        return self.batched_requests / self.batches if self.batches else 0.0


class BatchingBackend(Backend):
    """``inner`` with TF Serving's dynamic batching in front of Predict, Classify and Regress.

    The knobs are the package docstring's; ``close_inner`` (default true): whether :meth:`close`
    closes ``inner`` too.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        max_batch_size: int = 8,
        batch_timeout_micros: int = 1000,
        num_batch_threads: int | None = None,
        max_enqueued_batches: int | None = None,
        close_inner: bool = True,
    ) -> None:
        super().__init__()
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, not {max_batch_size}")
        if batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0, not {batch_timeout_micros}")
        # The no-wait mode defaults to one batch at a time: TensorFlow spreads a call over the
        # cores itself, and the batches gathered while one runs are the largest (measured: see
        # the package docstring).
        threads = num_batch_threads or (1 if batch_timeout_micros == 0 else usable_cpus())
        if threads < 1:
            raise ValueError(f"num_batch_threads must be at least 1, not {threads}")
        if max_enqueued_batches is not None and max_enqueued_batches < 1:
            raise ValueError(f"max_enqueued_batches must be at least 1, not {max_enqueued_batches}")
        self.inner = inner
        self.max_batch_size = max_batch_size
        self.batch_timeout_micros = batch_timeout_micros
        self.num_batch_threads = threads
        self.max_enqueued_batches = max_enqueued_batches
        self.close_inner = close_inner
        self._timeout = batch_timeout_micros / 1e6
        self._cond = threading.Condition()
        self._open: dict[tuple[Any, ...], _Batch] = {}
        self._ready: deque[_Batch] = deque()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._batchable: dict[tuple[Any, ...], bool] = {}
        self._counts = {"requests": 0, "batches": 0, "batched": 0, "solo": 0, "reruns": 0}
        self._waiting = 0
        """Requests in open or ready batches, not yet running (the queue depth metric)."""
        self._running = 0
        """Batches running now, in batch threads or (no-wait mode) in their callers' threads: at
        most ``num_batch_threads``."""

    def __repr__(self) -> str:
        return (
            f"BatchingBackend({self.inner!r}, max_batch_size={self.max_batch_size}, "
            f"batch_timeout_micros={self.batch_timeout_micros}, "
            f"num_batch_threads={self.num_batch_threads})"
        )

    @property
    def default_model(self) -> str | None:
        """The inner backend's default model."""
        return self.inner.default_model

    @default_model.setter
    def default_model(self, value: str | None) -> None:
        self.inner.default_model = value

    def stats(self) -> BatchStats:
        """Counts of requests, batches and reruns so far."""
        with self._cond:
            c = dict(self._counts)
        return BatchStats(c["requests"], c["batches"], c["batched"], c["solo"], c["reruns"])

    @property
    def no_wait(self) -> bool:
        """Whether this is the no-wait mode (``batch_timeout_micros=0``): a batch runs as soon as
        a batch thread is free, and requests gather in it only while every thread is busy."""
        return self._timeout <= 0

    # -- the Backend interface ------------------------------------------------------------------

    def predict_arrays(self, request: PredictArrays) -> Prediction:
        """Predict on arrays, merged with concurrent alike requests: what the pipeline calls.

        No ``TensorProto`` is built: the arrays are concatenated, ``inner.predict_arrays`` runs
        once, and each caller gets views of its own rows of the outputs (see the package
        docstring). In the no-wait mode a request that finds a batch thread free runs in the
        calling thread, with no hand-off.
        """
        result: Prediction = self._resolve(
            "arrays", request, lambda: self._arrays_task(request, may_block=True)
        )
        return result

    async def apredict_arrays(self, request: PredictArrays) -> Prediction:
        """:meth:`predict_arrays`, awaited without a thread per caller (the batch runs in a batch
        thread; a cancelled caller is dropped from its batch if the batch has not started)."""
        result: Prediction = await self._aresolve(
            "arrays", request, lambda: self._arrays_task(request, may_block=False)
        )
        return result

    def predict(self, request: PredictRequest) -> PredictResponse:
        """Predict, merged with concurrent alike requests (see the package docstring)."""
        message = coerce(request, PredictRequest)
        result: PredictResponse = self._resolve(
            "predict", message, lambda: self._predict_task(message, may_block=True)
        )
        return result

    def classify(self, request: ClassificationRequest) -> ClassificationResponse:
        """Classify, merged with concurrent requests for the same signature."""
        message = coerce(request, ClassificationRequest)
        result: ClassificationResponse = self._resolve(
            "classify", message, lambda: self._examples_task("classify", message)
        )
        return result

    def regress(self, request: RegressionRequest) -> RegressionResponse:
        """Regress, merged with concurrent requests for the same signature."""
        message = coerce(request, RegressionRequest)
        result: RegressionResponse = self._resolve(
            "regress", message, lambda: self._examples_task("regress", message)
        )
        return result

    async def apredict(self, request: PredictRequest) -> PredictResponse:
        """:meth:`predict`, awaited without a thread per caller."""
        message = coerce(request, PredictRequest)
        result: PredictResponse = await self._aresolve(
            "predict", message, lambda: self._predict_task(message, may_block=False)
        )
        return result

    async def aclassify(self, request: ClassificationRequest) -> ClassificationResponse:
        """:meth:`classify`, awaited without a thread per caller."""
        message = coerce(request, ClassificationRequest)
        result: ClassificationResponse = await self._aresolve(
            "classify", message, lambda: self._examples_task("classify", message)
        )
        return result

    async def aregress(self, request: RegressionRequest) -> RegressionResponse:
        """:meth:`regress`, awaited without a thread per caller."""
        message = coerce(request, RegressionRequest)
        result: RegressionResponse = await self._aresolve(
            "regress", message, lambda: self._examples_task("regress", message)
        )
        return result

    def _resolve(self, kind: str, request: Any, task_of: Callable[[], _Task]) -> Any:
        """A sync caller's answer. In the no-wait mode, when nothing waits and a batch thread's
        place is free, ``request`` runs at once on ``inner`` in the calling thread, holding that
        place (requests arriving meanwhile gather in a batch); else it becomes a task
        (``task_of()``) and joins a batch."""
        if self._enter_idle():
            try:
                return self._call(kind)(request)
            finally:
                self._leave(in_caller=True)
        task = task_of()
        if task.key is None:
            self._count_solo()
            return self._call(task.kind)(task.request)
        mine = self._submit(task, may_run=True)
        if mine is not None:
            self._run_batch(mine, in_caller=True)
        return task.future.result()

    async def _aresolve(self, kind: str, request: Any, task_of: Callable[[], _Task]) -> Any:
        """An async caller's answer: :meth:`_resolve`'s rules, with the inner backend's async
        twin where a request runs alone (a lone request in the no-wait mode costs what it costs
        unbatched) and a batch thread where it joins a batch."""
        if self._enter_idle():
            try:
                return await self._acall(kind)(request)
            finally:
                self._leave(in_caller=True)
        task = task_of()
        if task.key is None:
            self._count_solo()
            return await self._acall(kind)(request)
        self._submit(task, may_run=False)
        return await asyncio.wrap_future(task.future)

    def _enter_idle(self) -> bool:
        """In the no-wait mode, take a batch thread's place for a request to run alone now, when
        one is free and no batch waits; counted as a request run alone (and a batch of one in
        the batch size metric, as a batch thread would count it)."""
        if not self.no_wait:
            return False
        with self._cond:
            if self._closed or self._running >= self.num_batch_threads or self._ready or self._open:
                return False
            self._running += 1
            self._counts["requests"] += 1
            self._counts["solo"] += 1
        metrics = observed_metrics()
        if metrics is not None:
            metrics.batch_size.observe(1)
        return True

    def _leave(self, *, in_caller: bool) -> None:
        """Give back a batch thread's place. ``in_caller``: it was held in a caller's thread,
        which wakes a batch thread for the batches that gathered meanwhile (a batch thread looks
        for them itself)."""
        with self._cond:
            self._running -= 1
            if in_caller and (self._ready or self._open):
                self._cond.notify()

    def _count_solo(self) -> None:
        with self._cond:
            if self._closed:
                raise BackendUnavailable("The batching backend is closed")
            self._counts["requests"] += 1
            self._counts["solo"] += 1

    def get_model_metadata(self, request: GetModelMetadataRequest) -> GetModelMetadataResponse:
        """Straight to the inner backend."""
        return self.inner.get_model_metadata(request)

    def get_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        """Straight to the inner backend."""
        return self.inner.get_model_status(request)

    async def aget_model_metadata(
        self, request: GetModelMetadataRequest
    ) -> GetModelMetadataResponse:
        """Straight to the inner backend."""
        return await self.inner.aget_model_metadata(request)

    async def aget_model_status(self, request: GetModelStatusRequest) -> GetModelStatusResponse:
        """Straight to the inner backend."""
        return await self.inner.aget_model_status(request)

    def models_not_ready(self) -> dict[str, str]:
        """The inner backend's."""
        return self.inner.models_not_ready()

    def reload_config(self, config: ModelServerConfig) -> None:
        """Straight to the inner backend."""
        self.inner.reload_config(config)

    def signatures(
        self, model_name: str | None = None, version: int | None = None, label: str | None = None
    ) -> ResolvedModel:
        """The inner backend's (cached) signatures."""
        return self.inner.signatures(model_name, version, label)

    async def asignatures(
        self, model_name: str | None = None, version: int | None = None, label: str | None = None
    ) -> ResolvedModel:
        """The inner backend's (cached) signatures."""
        return await self.inner.asignatures(model_name, version, label)

    def signatures_cached(
        self, model_name: str | None = None, version: int | None = None, label: str | None = None
    ) -> bool:
        """Whether the inner backend has these signatures cached."""
        return self.inner.signatures_cached(model_name, version, label)

    def invalidate_signatures(self, model_name: str | None = None) -> None:
        """Forget cached signatures here and in the inner backend."""
        with self._cond:
            self._batchable.clear()
        self.inner.invalidate_signatures(model_name)

    def close(self) -> None:
        """Fail waiting requests (503), stop the batch threads, close the inner backend (unless
        built with ``close_inner=False``)."""
        with self._cond:
            self._closed = True
            pending = list(self._ready) + list(self._open.values())
            self._ready.clear()
            self._open.clear()
            self._cond.notify_all()
            workers = list(self._workers)
        for batch in pending:
            for task in batch.tasks:
                _fail(task.future, BackendUnavailable("The batching backend is closed"))
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(timeout=5)
        if self.close_inner:
            self.inner.close()

    # -- tasks ------------------------------------------------------------------------------------

    def _arrays_task(self, request: PredictArrays, *, may_block: bool) -> _Task:
        """The task of a predict request on arrays: :meth:`_predict_like_task` on each input's
        numpy dtype and shape."""
        inputs = [(name, array.dtype, array.shape) for name, array in request.inputs.items()]
        return self._predict_like_task(
            "arrays", request, request.model_spec, request.output_filter, inputs, may_block
        )

    def _predict_task(self, request: PredictRequest, *, may_block: bool) -> _Task:
        """The task of a ``PredictRequest``: :meth:`_predict_like_task` on each tensor's
        ``DataType`` and dimensions (an unknown rank counts as a scalar: it runs alone)."""
        inputs = [
            (
                name,
                int(tensor.dtype),
                ()
                if tensor.tensor_shape.unknown_rank
                else tuple(d.size for d in tensor.tensor_shape.dim),
            )
            for name, tensor in request.inputs.items()
        ]
        task = self._predict_like_task(
            "predict", request, request.model_spec, tuple(request.output_filter), inputs, may_block
        )
        if task.key is not None:
            task.inputs = PredictArrays.from_message(request).inputs
        return task

    def _predict_like_task(
        self,
        kind: str,
        request: Any,
        spec: Any,
        output_filter: tuple[str, ...],
        inputs: Sequence[tuple[str, Any, tuple[int, ...]]],
        may_block: bool,
    ) -> _Task:
        """The task of a predict request of either form, keyed when it may be merged (see the
        package docstring): ``inputs`` are ``(name, dtype, shape)``; the key holds the model,
        version choice, signature, output filter and every input's name, dtype and shape after
        dimension 0.

        ``may_block``: whether the signatures may be fetched from the inner backend now (not on an
        event loop); otherwise an uncached model's request runs alone this time.
        """
        rows = -1
        shapes = []
        for name, dtype, dims in sorted(inputs, key=lambda item: item[0]):
            if not dims or (rows >= 0 and dims[0] != rows):
                return _Task(kind, request, 0, None)
            rows = dims[0]
            shapes.append((name, dtype, dims[1:]))
        if rows < 1 or rows >= self.max_batch_size:
            return _Task(kind, request, max(rows, 0), None)
        model = (spec.name, _version_choice(spec), spec.signature_name or DEFAULT_SIGNATURE)
        names = frozenset(name for name, _, _ in shapes)
        if not self._is_batchable(model, names, may_block=may_block):
            return _Task(kind, request, rows, None)
        key = (kind, *model, output_filter, tuple(shapes))
        return _Task(kind, request, rows, key)

    def _examples_task(self, kind: str, request: Any) -> _Task:
        which = request.input.WhichOneof("kind")
        if which == "example_list":
            rows = len(request.input.example_list.examples)
            context = b""
        elif which == "example_list_with_context":
            rows = len(request.input.example_list_with_context.examples)
            context = request.input.example_list_with_context.context.SerializeToString(
                deterministic=True
            )
        else:
            return _Task(kind, request, 0, None)
        if rows < 1 or rows >= self.max_batch_size:
            return _Task(kind, request, rows, None)
        spec = request.model_spec
        key = (kind, spec.name, _version_choice(spec), spec.signature_name, which, context)
        return _Task(kind, request, rows, key)

    def _is_batchable(
        self, model: tuple[Any, ...], names: frozenset[str], *, may_block: bool
    ) -> bool:
        """Whether the signature takes a batch: every input declares an unknown dimension 0."""
        cache_key = (*model, names)
        known = self._batchable.get(cache_key)
        if known is not None:
            return known
        name, (which, value), signature_name = model
        version = value if which == "version" else None
        label = value if which == "label" else None
        if not may_block and not self.inner.signatures_cached(name or None, version, label):
            return False  # fetching them would block the event loop; the pipeline will cache them
        try:
            resolved = self.inner.signatures(name or None, version, label)
        except HTTPError:
            return False  # not cached: the request runs alone and meets the error itself
        signature = resolved.signature_defs.get(signature_name)
        answer = signature is not None and _takes_batches(signature, names)
        with self._cond:
            self._batchable[cache_key] = answer
        return answer

    # -- scheduling -------------------------------------------------------------------------------

    def _submit(self, task: _Task, *, may_run: bool) -> _Batch | None:
        """Add ``task`` to the open batch of its key (or a new one).

        Returns the batch when the caller is to run it itself, now, in its own thread: in the
        no-wait mode, when ``may_run`` (a thread that may block), a batch thread's place is free
        and the task's batch is the next one due. Otherwise ``None``: a batch thread runs it.
        """
        key = task.key
        assert key is not None
        with self._cond:
            if self._closed:
                raise BackendUnavailable("The batching backend is closed")
            self._counts["requests"] += 1
            self._start_workers()
            batch = self._open.get(key)
            if batch is not None and batch.rows + task.rows > self.max_batch_size:
                del self._open[key]  # full enough: it runs next, this task starts the next one
                self._ready.append(batch)
                self._notify_if_free()
                batch = None
            if batch is None:
                self._check_queue()
                batch = _Batch(key, time.monotonic() + self._timeout)
                self._open[key] = batch
                if not self.no_wait:
                    self._cond.notify_all()  # a new deadline: waiting threads recompute their wait
            batch.tasks.append(task)
            batch.rows += task.rows
            self._waiting += 1
            _observe_depth(self._waiting)
            if batch.rows >= self.max_batch_size:
                del self._open[key]
                self._ready.append(batch)
            elif not self.no_wait:
                return None
            if self._running >= self.num_batch_threads:
                return None  # the batch that finishes first wakes a thread for this one
            if may_run and self.no_wait and self._due() is batch:
                return self._take(batch)
            self._cond.notify()
        return None

    def _notify_if_free(self) -> None:
        """Wake a batch thread if one may run a batch now (the caller holds ``_cond``)."""
        if self._running < self.num_batch_threads:
            self._cond.notify()

    def _check_queue(self) -> None:
        limit = self.max_enqueued_batches
        if limit is not None and len(self._ready) + len(self._open) >= limit:
            raise BackendUnavailable(_QUEUE_FULL)

    def _start_workers(self) -> None:
        while len(self._workers) < self.num_batch_threads:
            worker = threading.Thread(
                target=self._work, name=f"tfio-batch-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _due(self) -> _Batch | None:
        """The batch a free thread runs next, if any is due (the caller holds ``_cond``): the
        first full one, else the open one whose deadline passed first (in the no-wait mode every
        open batch is due)."""
        if self._ready:
            return self._ready[0]
        if not self._open:
            return None
        batch = min(self._open.values(), key=lambda b: b.deadline)
        return batch if batch.deadline <= time.monotonic() else None

    def _next_batch(self) -> _Batch | None:
        """The next batch for a batch thread to run (waiting for one, and for a place among the
        ``num_batch_threads`` running), or ``None`` once closed."""
        with self._cond:
            while not self._closed:
                if self._running >= self.num_batch_threads:
                    self._cond.wait()  # callers run batches (no-wait mode); one will wake us
                    continue
                due = self._due()
                if due is not None:
                    return self._take(due)
                if not self._open:
                    self._cond.wait()
                    continue
                soonest = min(batch.deadline for batch in self._open.values())
                self._cond.wait(soonest - time.monotonic())
        return None

    def _take(self, batch: _Batch) -> _Batch:
        """``batch`` leaves the queue to run, holding a place (the caller holds ``_cond``)."""
        if self._ready and self._ready[0] is batch:
            self._ready.popleft()
        else:
            del self._open[batch.key]
        self._running += 1
        self._waiting -= len(batch.tasks)
        _observe_depth(self._waiting)
        return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run_batch(batch, in_caller=False)

    def _run_batch(self, batch: _Batch, *, in_caller: bool) -> None:
        """Run a taken batch and give its place back (``in_caller``: in a caller's thread, the
        no-wait mode's; see :meth:`_leave`)."""
        try:
            self._run(batch)
        except BaseException as exc:  # never lose a caller, whatever happened
            log.exception("Batch of %d requests failed unexpectedly", len(batch.tasks))
            for task in batch.tasks:
                _fail(task.future, InternalError(f"Batch failed: {type(exc).__name__}: {exc}"))
            if in_caller and not isinstance(exc, Exception):
                raise
        finally:
            self._leave(in_caller=in_caller)

    # -- running ----------------------------------------------------------------------------------

    def _run(self, batch: _Batch) -> None:
        tasks = [task for task in batch.tasks if task.future.set_running_or_notify_cancel()]
        if not tasks:
            return
        metrics = observed_metrics()
        if metrics is not None:
            metrics.batch_size.observe(len(tasks))
        if len(tasks) == 1:
            with self._cond:
                self._counts["solo"] += 1
            self._run_alone(tasks[0])
            return
        with self._cond:
            self._counts["batches"] += 1
            self._counts["batched"] += len(tasks)
        kind = tasks[0].kind
        try:
            if kind == "arrays":
                responses: list[Any] | None = self._run_arrays(tasks)
            elif kind == "predict":
                responses = self._run_predict(tasks)
            else:
                responses = self._run_examples(kind, tasks)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else InternalError(str(exc))
            for task in tasks:
                _fail(task.future, error)
            if not isinstance(exc, Exception):
                raise
            return
        if responses is None:  # the outputs are not row-aligned: answer each request alone
            with self._cond:
                self._counts["reruns"] += 1
            for task in tasks:
                self._run_alone(task)
            return
        for task, response in zip(tasks, responses, strict=True):
            task.future.set_result(response)

    def _call(self, kind: str) -> Callable[[Any], Any]:
        if kind == "arrays":
            return self.inner.predict_arrays
        if kind == "predict":
            return self.inner.predict
        return self.inner.classify if kind == "classify" else self.inner.regress

    def _acall(self, kind: str) -> Callable[[Any], Awaitable[Any]]:
        if kind == "arrays":
            return self.inner.apredict_arrays
        if kind == "predict":
            return self.inner.apredict
        return self.inner.aclassify if kind == "classify" else self.inner.aregress

    def _run_alone(self, task: _Task) -> None:
        try:
            response = self._call(task.kind)(task.request)
        except Exception as exc:
            _fail(task.future, exc)
        else:
            task.future.set_result(response)

    def _run_arrays(self, tasks: Sequence[_Task]) -> list[Prediction] | None:
        merged = merge_arrays([task.request for task in tasks])
        prediction = self.inner.predict_arrays(merged)
        return split_prediction(prediction, [task.rows for task in tasks])

    def _run_predict(self, tasks: Sequence[_Task]) -> list[PredictResponse] | None:
        merged = merge_predict(
            [task.request for task in tasks], [task.inputs or {} for task in tasks]
        )
        response = self.inner.predict(merged)
        return split_predict(response, [task.rows for task in tasks])

    def _run_examples(self, kind: str, tasks: Sequence[_Task]) -> list[Any] | None:
        merged = merge_examples([task.request for task in tasks])
        response = self._call(kind)(merged)
        return split_examples(kind, response, [task.rows for task in tasks])


# -- helpers --------------------------------------------------------------------------------------


def _version_choice(spec: Any) -> tuple[str, Any]:
    which = spec.WhichOneof("version_choice")
    if which == "version":
        return "version", int(spec.version.value)
    if which == "version_label":
        return "label", spec.version_label
    return "latest", None


def _takes_batches(signature: SignatureDef, names: frozenset[str]) -> bool:
    """Every input the request names (and the signature has) declares dimension 0 unknown."""
    inputs = signature.inputs
    if not names <= set(inputs):
        return False
    for name in names:
        shape = inputs[name].tensor_shape
        if shape.unknown_rank or not shape.dim or shape.dim[0].size != -1:
            return False
    return True


def _observe_depth(depth: int) -> None:
    """The queue depth gauge, when metrics are on (``tfio_handlers_batch_queue_depth``)."""
    metrics = observed_metrics()
    if metrics is not None:
        metrics.batch_queue_depth.set(depth)


def _fail(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        with contextlib.suppress(Exception):  # cancelled meanwhile
            future.set_exception(error)
