"""Dynamic batching: concurrent requests merged along the batch dimension, run once, split back.

``BatchingBackend(inner)`` wraps any :class:`~.base.Backend` and does what TF Serving's
``--enable_batching`` does (its ``BasicBatchScheduler``), with the same knobs:

``max_batch_size`` (default 8)
    The most rows (dimension 0, summed over the merged requests) one batch may hold. A batch that
    reaches it runs at once.
``batch_timeout_micros`` (default 1000)
    How long a batch waits for more requests after its first one arrived, before it runs anyway.
    ``0`` selects the **no-wait mode** (below).
``num_batch_threads`` (default: the CPUs the process may run on, as TF Serving's; 1 in the no-wait mode)
    How many batches run at the same time (each in a thread of its own, calling ``inner``).
``max_enqueued_batches`` (default: unbounded)
    How many batches may wait for a thread; beyond it a request fails at once with
    :class:`~tfio_handlers.errors.BackendUnavailable` (503), TF Serving's "The batch scheduling
    queue to which this task was submitted is full".

The no-wait mode (``batch_timeout_micros=0``, ``SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS=0``). No
request ever waits for a timer: a batch runs as soon as a batch thread is free. A request that
finds a place free and no batch waiting runs at once on ``inner``, in the caller's own thread
(its async twin for an async caller), costing what it costs unbatched but for a lock; requests
that arrive while all ``num_batch_threads`` places are busy gather in the open batch of their key
(up to ``max_batch_size`` rows) and run together as soon as a place frees. So at concurrency 1
nothing waits, and under load batches form by themselves while the model runs, as large as the
load makes them. One place (the default) makes them largest: TensorFlow already spreads one call
over the cores, and the next batch gathers while this one runs.

What is merged. Predict requests for the same model, version (or label), signature and output
filter whose inputs have the same names, dtypes and shapes after dimension 0 (every input with the
same dimension 0, the request's row count) are concatenated along dimension 0, run as one request,
and each caller gets exactly its own rows of every output. Predict requests on arrays
(:meth:`BatchingBackend.predict_arrays`, what the pipeline calls) are merged by ``np.concatenate``
and answered by one ``inner.predict_arrays`` call, each caller getting views of its rows (no
``TensorProto`` is built); ``PredictRequest`` messages (:meth:`BatchingBackend.predict`, the gRPC
adapter's) are merged as messages; the two forms are never merged together. Either way each answer
carries the model spec the merged call answered with, as unbatched. Classify and regress requests
for the same model, version and signature are merged by concatenating their examples (their
contexts, if any, must be identical) and each caller gets its own results. Anything else runs
alone, unchanged, straight on ``inner`` in the caller's thread (or its async twin): a request of
``max_batch_size`` rows or more (TF Serving would refuse more; we run it unbatched), a scalar or
mismatched-row input, a signature whose inputs do not declare an unknown dimension 0 (a model with
a fixed batch size), a model whose signatures are not cached yet when called from an event loop
(fetching them would block it; the pipeline caches them before it predicts). A merged response
whose outputs lack the batch's row count in dimension 0 is thrown away and each request run again
alone, so a model that does not map rows to rows still answers each caller as if unbatched.
Metadata and status calls go straight to ``inner``.

The package: :mod:`.scheduler` holds :class:`BatchingBackend` (the open batches, the batch threads,
which requests may be merged) and :func:`from_env`; :mod:`.merge` merges alike requests into one
and splits the response back into each caller's rows.

Failures. An error raised while running a merged batch goes to every caller in it, as in TF
Serving: only requests that are alike are merged, so a request-shaped error is every caller's.
Batching assumes what TF Serving assumes: a model maps each input row to its output row
independently of the other rows.

Callers. :meth:`BatchingBackend.predict_arrays` and :meth:`BatchingBackend.predict` (and classify,
regress) block the calling thread until its batch has run; :meth:`BatchingBackend.apredict_arrays`
and :meth:`BatchingBackend.apredict` (and the other twins) await without holding a thread (a
cancelled caller is dropped from its batch if the batch has not started). Any number of threads
and event loops may call at once.

Settings from the environment, as SageMaker's TF Serving container reads them:
:func:`from_env` wraps a backend when ``SAGEMAKER_TFS_ENABLE_BATCHING`` is true, with
``SAGEMAKER_TFS_MAX_BATCH_SIZE``, ``SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS``,
``SAGEMAKER_TFS_NUM_BATCH_THREADS`` and ``SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES``
(``SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS=0``: the no-wait mode). One departure: that
container defaults the queue bound to the CPU count, which refuses requests (503) as soon as more
than ``2 * max_batch_size`` wait on a two-core machine; here the queue is unbounded unless the
variable is set.
"""

from __future__ import annotations

from .scheduler import (
    BATCH_TIMEOUT_MICROS_ENV,
    ENABLE_BATCHING_ENV,
    MAX_BATCH_SIZE_ENV,
    MAX_ENQUEUED_BATCHES_ENV,
    NUM_BATCH_THREADS_ENV,
    BatchingBackend,
    BatchStats,
    from_env,
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
