"""TensorFlow's side of the embedded backend: a SavedModel loaded, its signatures run, its errors read.

Everything here touches TensorFlow directly and imports it lazily: loading a version
(:func:`load_servable`), running one signature with checked feeds (:class:`Runner`), TensorFlow's
op errors as the HTTP errors TF Serving answers with, the size of TensorFlow's thread pools, and its
native start-up lines (:func:`quiet_tensorflow_startup`). TF Serving's server-side rules (versions,
labels, request checks, response layout) live in :mod:`.embedded`, which builds on this.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailable, BadRequest, HTTPError
from ..protos import SignatureDef, coerce
from ..tensors import dtype_name, to_ndarray
from .status import http_error, http_status_for_code

__all__ = [
    "Runner",
    "Servable",
    "configure_threads",
    "load_servable",
    "quiet_tensorflow_startup",
    "shape_text",
    "tensorflow",
]

log = logging.getLogger(__name__)

_SERVE_TAG = "serve"


def shape_text(dims: Iterable[int] | None) -> str:
    """A shape as TensorFlow's ``TensorShape::DebugString`` writes it: ``[2,3]``, ``[?,1]``."""
    if dims is None:
        return "<unknown>"
    return "[" + ",".join("?" if d < 0 else str(d) for d in dims) + "]"


# -- TensorFlow status → HTTP error ----------------------------------------------------------------

_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")
_STACK_MARKER = "defined at (most recent call last):\n"


def _tf_message(message: str) -> str:
    """The op's own message, as TF Serving shows it: without eager mode's "Graph execution error"
    header, the Python stack of where the op was defined, and the ``[Op:...]`` suffix."""
    head = "Graph execution error:"
    if message.startswith(head):
        message = message[len(head) :].lstrip("\n")
        if _STACK_MARKER in message:
            rest = message.split(_STACK_MARKER, 1)[1]
            lines = rest.split("\n")
            start = 0
            while start < len(lines) and (
                lines[start].startswith((" ", "\t"))
                or lines[start] in ("", "<stack traces unavailable>")
            ):
                start += 1
            message = "\n".join(lines[start:])
    return _OP_SUFFIX.sub("", message).strip()


_NODE_SUFFIX = re.compile(r"\s*\[\[\{\{node [^}]*\}\}\]\]")
_EXAMPLE_SIZE = re.compile(
    r"Name: [^,]*, Key: (?P<key>[^,]+), Index: (?P<index>\d+)\.\s+"
    r"Number of (?P<kind>\w+) values != expected\.\s+"
    r"Values size: (?P<got>\d+) but output shape: \[(?P<shape>[^\]]*)\]"
)


def _explained(message: str) -> str:
    """An op message a client can act on: no graph node names, and the batch rule where it applies.

    A classify/regress model parses each record into an ``Example`` whose feature must hold as many
    values as its parsing shape: a record of the wrong length (often a batch sent as one record, or
    the reverse) fails inside ``ParseExample``, whose text names neither the record nor the rule.
    """
    message = _NODE_SUFFIX.sub("", message).strip()
    found = _EXAMPLE_SIZE.search(message)
    if found is None:
        return message
    shape = [int(d) for d in found["shape"].split(",") if d.strip().lstrip("-").isdigit()]
    want = 1
    for d in shape:
        want *= d
    return (
        f"Record {found['index']}: feature {found['key']!r} holds {found['got']} "
        f"{found['kind']} value(s), but the model reads it as shape [{found['shape']}] "
        f"({want} value(s)). Each record must hold {want} value(s): a flat list (one JSON lines "
        "or CSV line, an npy array of one dimension) is one record; a list of records (several "
        "lines, an npy array of two dimensions) is a batch"
    )


def _from_tf_error(exc: Exception) -> HTTPError:
    """A TensorFlow ``OpError`` as the HTTP error TF Serving would answer with."""
    code = int(getattr(exc, "error_code", 2))  # absl's code number; UNKNOWN when absent
    message = _explained(_tf_message(str(getattr(exc, "message", "") or exc)))
    return http_error(http_status_for_code(code), message)


# -- one loaded signature --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Input:
    alias: str
    tensor_name: str
    dtype: int
    dims: tuple[int, ...] | None
    """Declared dims (-1 unknown), ``None`` for unknown rank."""


@dataclass(frozen=True, slots=True)
class _Direct:
    """What executing a signature's function op directly needs, read once at load time.

    ``ConcreteFunction._call_flat`` ends, in eager mode with no gradient tape watching, in
    ``context.call_function(name, inputs + captures, count)``; on the way it resolves distributed
    variables, checks for tapes and watched variables, enters three context managers and packs the
    outputs with the function type: about a third of a small model's call
    (``benchmarks/tf_call.py``).
    """

    name: bytes
    """The function's name in the eager context (``AtomicFunction.name``)."""
    captured: list[Any]
    """The captured inputs (variable handles), fixed for the function's life."""
    count: int
    output_names: list[str]
    """The outputs' aliases in the function's flat output order."""


def _direct(function: Any, inputs: int) -> _Direct | None:
    """How to execute ``function``'s op directly, or ``None`` where the full path must run.

    Only where the direct call is what ``_call_flat`` itself would run: captures that are plain
    eager tensors, known when loaded (not distributed variables, not call-time closures), outputs
    without resource handle data, a flat dict of outputs, as many op inputs as inputs plus captures.
    """
    from tensorflow.python.framework import ops

    try:
        atomic = function._inference_function
        if any(callable(capture) for capture in function._captured_inputs):
            return None
        captured = list(function.captured_inputs)
        if not all(isinstance(capture, ops.EagerTensor) for capture in captured):
            return None
        flat_outputs = atomic.function_type.flat_outputs
        if any(output.dtype._handle_data for output in flat_outputs):
            return None
        if len(atomic.cached_definition.signature.input_arg) != inputs + len(captured):
            return None
        structured = function.structured_outputs
        if not isinstance(structured, dict) or not all(isinstance(k, str) for k in structured):
            return None
        import tensorflow as tf

        names = tf.nest.flatten({key: key for key in structured})
        if len(names) != len(flat_outputs):
            return None
        return _Direct(bytes(atomic.name), captured, len(flat_outputs), names)
    except (AttributeError, TypeError, ValueError):
        return None


@dataclass(slots=True)
class Runner:
    """A signature's function and what is needed to feed it, computed once at load time."""

    name: str
    signature: SignatureDef
    function: Any
    inputs: list[_Input]
    """In sorted alias order: the order inputs are fed and reported in errors."""
    defaults: dict[str, np.ndarray[Any, Any]]
    output_aliases: list[str]
    tf_dtypes: list[Any]
    """The TensorFlow dtype of each input, in :attr:`inputs` order."""
    flat: bool
    """Whether :meth:`run` may call the function's flat form (see there)."""
    direct: _Direct | None = None
    """How :meth:`run` executes the function's op directly, where it may (see there)."""

    def check(self, alias: str, index: int, array: np.ndarray[Any, Any], proto_dtype: int) -> None:
        """The request tensor's dtype and shape against the signature's, before running."""
        spec = self.inputs[index]
        if proto_dtype != spec.dtype:
            raise BadRequest(
                f"Expects arg[{index}] to be {dtype_name(spec.dtype)} but "
                f"{dtype_name(proto_dtype)} is provided"
            )
        dims = spec.dims
        if dims is None:
            return
        shape = array.shape
        if len(shape) != len(dims) or any(
            d >= 0 and d != s for d, s in zip(dims, shape, strict=True)
        ):
            raise BadRequest(
                f"input tensor alias {alias} has shape {shape_text(shape)} but the signature "
                f"expects {shape_text(dims)}"
            )

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Call the function with ``feeds`` (alias to array); TensorFlow's errors become HTTP errors.

        The flat call skips the structured-signature binding of ``function(**feeds)`` (about a
        quarter of a small model's call time); it is used only where the function's flat inputs
        are the sorted aliases, and abandoned for good if it ever fails for a reason other than
        the model's own error. Where :attr:`direct` is set, the call goes straight to the eager
        context's ``call_function``, the call ``_call_flat`` itself ends in when eager mode is on
        and no gradient tape watches (both checked on every call; otherwise the flat call
        runs): the same op on the same tensors, without the Python in between, about a third
        off a small model's call (``benchmarks/RESULTS-tf-call.md``).
        """
        import tensorflow as tf

        try:
            if self.direct is not None:
                outputs = self._run_direct(self.direct, feeds)
                if outputs is not None:
                    return outputs
            if self.flat:
                try:
                    tensors = [
                        tf.convert_to_tensor(feeds[spec.alias], dtype=spec_dtype)
                        for spec, spec_dtype in zip(self.inputs, self.tf_dtypes, strict=True)
                    ]
                    outputs = self.function._call_flat(tensors, self.function.captured_inputs)
                    return dict(outputs)
                except (TypeError, ValueError, AttributeError, KeyError):
                    log.debug(
                        "Flat call of signature %r failed; using the keyword call",
                        self.name,
                        exc_info=True,
                    )
                    self.flat = False
            return dict(self.function(**feeds))
        except tf.errors.OpError as exc:
            raise _from_tf_error(exc) from exc
        except (TypeError, ValueError) as exc:  # binding errors the checks did not foresee
            raise BadRequest(str(exc)) from exc

    def _run_direct(self, direct: _Direct, feeds: Mapping[str, Any]) -> dict[str, Any] | None:
        """The direct call of :meth:`run`; ``None`` where it does not apply to this call (then
        the flat call runs). TensorFlow's op errors propagate; any other failure of the call
        itself abandons the direct call for good."""
        try:
            import tensorflow as tf
            from tensorflow.python.eager import context, record
            from tensorflow.python.framework import constant_op

            ctx = context.context()
            if not ctx.executing_eagerly() or record.could_possibly_record():
                return None
            try:
                # for an ndarray in eager mode, convert_to_tensor ends in convert_to_eager_tensor
                # (a copy included): called here without the dispatch, half the cost
                tensors = [
                    constant_op.convert_to_eager_tensor(value, ctx, spec_dtype)
                    if type(value) is np.ndarray
                    else tf.convert_to_tensor(value, dtype=spec_dtype)
                    for value, spec_dtype in zip(
                        [feeds[spec.alias] for spec in self.inputs], self.tf_dtypes, strict=True
                    )
                ]
            except (TypeError, ValueError, KeyError):
                return None  # the flat call converts again and decides, as before
            flat = ctx.call_function(direct.name, tensors + direct.captured, direct.count)
            return dict(zip(direct.output_names, flat, strict=True))
        except (ImportError, TypeError, ValueError, AttributeError, KeyError):
            log.debug(
                "Direct call of signature %r failed; using the flat call", self.name, exc_info=True
            )
            self.direct = None
            return None


def _tensor_info_dims(info: Any) -> tuple[int, ...] | None:
    shape = info.tensor_shape
    if shape.unknown_rank:
        return None
    return tuple(int(d.size) for d in shape.dim)


def _make_runner(name: str, signature: SignatureDef, function: Any) -> Runner:
    inputs = [
        _Input(alias, info.name, int(info.dtype), _tensor_info_dims(info))
        for alias, info in sorted(signature.inputs.items())
    ]
    import tensorflow as tf

    defaults = {
        alias: to_ndarray(proto, writable=True) for alias, proto in signature.defaults.items()
    }
    tf_dtypes = [tf.dtypes.as_dtype(spec.dtype) if spec.dtype else None for spec in inputs]
    try:
        flat_names = [spec.name for spec in tf.nest.flatten(function.structured_input_signature)]
        flat = (
            hasattr(function, "_call_flat")
            and flat_names == [spec.alias for spec in inputs]
            and len(function.inputs) - len(function.captured_inputs) == len(inputs)
        )
    except (AttributeError, TypeError, ValueError):
        flat = False
    direct = _direct(function, len(inputs)) if flat else None
    return Runner(
        name,
        signature,
        function,
        inputs,
        defaults,
        sorted(signature.outputs),
        tf_dtypes,
        flat,
        direct,
    )


# -- one loaded model version ----------------------------------------------------------------------


@dataclass(slots=True)
class Servable:
    name: str
    version: int
    path: Path
    loaded: Any
    signature_defs: dict[str, SignatureDef]
    runners: dict[str, Runner] = field(default_factory=dict)

    def runner(self, signature_name: str) -> Runner:
        runner = self.runners.get(signature_name)
        if runner is None:
            raise BadRequest(
                f'Serving signature key "{signature_name}" has no function to run in '
                f"{self.path} (it is not exported as a callable signature)"
            )
        return runner


def _read_signature_defs(path: Path) -> dict[str, SignatureDef]:
    """The ``serve`` meta graph's signatures, as our ``SignatureDef`` class."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    binary = path / "saved_model.pb"
    if binary.is_file():
        saved_model.ParseFromString(binary.read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    meta_graphs = list(saved_model.meta_graphs)
    chosen = next(
        (mg for mg in meta_graphs if set(mg.meta_info_def.tags) == {_SERVE_TAG}),
        next((mg for mg in meta_graphs if _SERVE_TAG in mg.meta_info_def.tags), None),
    )
    if chosen is None:
        tags = [sorted(mg.meta_info_def.tags) for mg in meta_graphs]
        raise ValueError(f"no meta graph is tagged 'serve' (tags: {tags})")
    return {name: coerce(sig, SignatureDef) for name, sig in chosen.signature_def.items()}


def load_servable(name: str, version: int, path: Path) -> Servable:
    tf = tensorflow()

    try:
        signature_defs = _read_signature_defs(path)
        loaded = tf.saved_model.load(str(path), tags=[_SERVE_TAG])
    except Exception as exc:
        raise BackendUnavailable(
            f"Could not load model {name!r} version {version} from {path}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    servable = Servable(name, version, path, loaded, signature_defs)
    functions = getattr(loaded, "signatures", {})
    for signature_name, signature in signature_defs.items():
        function = functions.get(signature_name) if hasattr(functions, "get") else None
        if function is not None:
            servable.runners[signature_name] = _make_runner(signature_name, signature, function)
    log.info(
        "Loaded model %r version %d from %s (signatures: %s)",
        name,
        version,
        path,
        ", ".join(sorted(servable.runners)),
    )
    return servable


# -- TensorFlow's start-up chatter ----------------------------------------------------------------

_STARTUP_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cudart_stub|cuda_platform|cuInit|cuda_dnn"
    r"|cuda_fft|cuda_blas|Unable to register cu|cpu_feature_guard|To enable the following "
    r"instructions|TF-TRT Warning|computation_placer|Could not find cuda drivers"
)


@contextmanager
def quiet_tensorflow_startup(env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Hide the lines TensorFlow's C++ side prints while it imports and finds its devices.

    ``cuInit`` failures on a machine without a GPU, oneDNN and CPU-feature notices: TensorFlow
    writes them to the process's standard error before its logging is set up, so
    ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them all. Inside this block file descriptor 2 goes to a
    temporary file; afterwards every line that is not such start-up noise is written out again,
    so real errors still show. When the user has set ``TF_CPP_MIN_LOG_LEVEL`` they asked for
    TensorFlow's own logging, and nothing is hidden.
    """
    environ = os.environ if env is None else env
    if "TF_CPP_MIN_LOG_LEVEL" in environ:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not _STARTUP_NOISE.search(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


# -- thread pools ---------------------------------------------------------------------------------


def tensorflow() -> Any:
    """TensorFlow, imported on first use (``import tfio_handlers`` never does); without it, a 503
    saying which extra brings it, rather than a ModuleNotFoundError from deep inside a worker."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise BackendUnavailable(
            "The embedded backend needs TensorFlow, which is not installed: "
            "pip install 'tfio-handlers[tensorflow]' (or serve a TF Serving model server with "
            "--backend grpc://host:port or http://host:port)"
        ) from exc
    return tf


def configure_threads(inter: int | None, intra: int | None) -> None:
    """Set TensorFlow's thread pools (0 or ``None``: TensorFlow's default), before it starts."""
    tf = tensorflow()

    threading_config = tf.config.threading
    for what, value, setter, getter in (
        (
            "inter-op",
            inter,
            threading_config.set_inter_op_parallelism_threads,
            threading_config.get_inter_op_parallelism_threads,
        ),
        (
            "intra-op",
            intra,
            threading_config.set_intra_op_parallelism_threads,
            threading_config.get_intra_op_parallelism_threads,
        ),
    ):
        if not value:
            continue
        if value < 0:
            raise BackendUnavailable(f"{what} parallelism must be >= 0, got {value}")
        try:
            setter(value)
        except RuntimeError:
            current = getter()
            if current != value:
                log.warning(
                    "TensorFlow is already running with %s parallelism %d; %d is ignored "
                    "(set it before TensorFlow runs anything)",
                    what,
                    current,
                    value,
                )
