"""A fast path for TF Serving JSON predict bodies that hold one numeric tensor (simdjson).

``{"instances": [[...], ...]}`` and ``{"inputs": [[...], ...]}`` bodies of numbers dominate REST
traffic, and building one Python float per number is what makes them slow (``json.loads`` plus
``tf.make_tensor_proto`` takes 330 ms for a 1000x784 body). :func:`decode_predict` parses the body
with simdjson and copies the numbers into a buffer in C (``Array.as_buffer``), so no Python number
is ever built: the whole decode costs little more than the parse itself.

It is a *fast path*, never a second implementation of the rules: it answers only bodies it can
prove the exact path (:mod:`tfio_handlers.protocol.rest_json`) would turn into the very same tensor,
and returns ``None`` for everything else, so that the caller runs the exact path, which gives TF
Serving's result or its error text. It answers only when all of these hold:

* pysimdjson is installed (the ``fast`` extra) and the body is valid JSON with nothing after it;
* the root object has exactly one of ``instances``/``inputs``, optionally ``signature_name`` (a
  string without ``[``, ``]``, ``,`` or ``:``), no other key and no key twice;
* the signature (the body's ``signature_name``, else the caller's, else ``serving_default``) is in
  ``signatures`` and has exactly one input, of dtype float, double, int8/16/32/64, uint8/32/64;
* the body, the tensor's rank and its element count are within the caller's
  :class:`~tfio_handlers.config.Limits` (else the exact path answers with the error);
* the value is a non-empty nested array of numbers only (no string, ``{"b64": ...}``, bool, null,
  ``NaN``/``Infinity`` token, or number simdjson cannot hold: integers beyond 64 bits, doubles
  beyond ±1.8e308), of rank at most :data:`MAX_RANK`, with no zero-sized dimension;
* the array is rectangular: **proved completely** (``as_buffer`` flattens ``[[1, 2], [3]]`` and
  ``[[1, 2], 3]`` to ``[1, 2, 3]`` without a word), see :func:`_rectangular`;
* for an integer dtype, every number is an integer literal (``1.0`` and ``1e2`` are refused by TF
  Serving) within the dtype's range; for float, every value stays finite in float32, and no zero
  is written with a 3-digit exponent (``0e400``: 0.0 for simdjson, an error for TF Serving).

Numbers are converted as the exact path converts them: a literal is read as the nearest double (an
integer literal as an integer, then rounded to double), then cast to the dtype (float32: round to
nearest even, the ``(float)(double)v`` of TF Serving).

:func:`decode_plain` is the same fast path for SageMaker's plain bodies (a bare nested array of
numbers on ``/invocations``), which the one cast policy types instead of TF Serving's rules: it
answers only for a float or double input and values below 2**53 in magnitude (see its
docstring).

simdjson parsers are reused, one per thread: a parser cannot parse again while proxies of its last
document live, and a new parser per call costs 7-16 ms on large bodies. A parser keeps the memory
of the largest body it parsed (about 2.5x the body), per thread, so bodies over
:data:`KEEP_PARSER_MAX_BYTES` get a parser of their own that is freed after the call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message

from ... import accelerators
from ...config import Limits
from ...protos import (
    DEFAULT_SIGNATURE,
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT8,
    DT_INT16,
    DT_INT32,
    DT_INT64,
    DT_UINT8,
    DT_UINT32,
    DT_UINT64,
)

if TYPE_CHECKING:
    from ...protos import SignatureDef

__all__ = [
    "KEEP_PARSER_MAX_BYTES",
    "MAX_RANK",
    "FastPredict",
    "JsonForm",
    "available",
    "decode_plain",
    "decode_predict",
]

JsonForm = Literal["row", "columnar"]
"""``row`` for an ``instances`` body (answered with ``predictions``), ``columnar`` for ``inputs``."""

MAX_RANK: Final = 32
"""Deeper arrays are left to the exact path."""

KEEP_PARSER_MAX_BYTES: Final = 32 * 1024 * 1024
"""Bodies up to this size are parsed by the thread's reused parser, which keeps buffers of about
2.5x the largest body it parsed; a larger body gets a parser of its own, freed after the call."""


# dtype -> (as_buffer type, numpy dtype of the result, inclusive value range or None).
# TF Serving reads int8/int16/uint8 as int32 literals without a narrower check; values outside
# the narrow range are left to the exact path, which decides what they become.
_DTYPES: Final[dict[int, tuple[str, np.dtype[Any], tuple[int, int] | None]]] = {
    DT_FLOAT: ("d", np.dtype(np.float32), None),
    DT_DOUBLE: ("d", np.dtype(np.float64), None),
    DT_INT8: ("i", np.dtype(np.int8), (-(2**7), 2**7 - 1)),
    DT_INT16: ("i", np.dtype(np.int16), (-(2**15), 2**15 - 1)),
    DT_INT32: ("i", np.dtype(np.int32), (-(2**31), 2**31 - 1)),
    DT_INT64: ("i", np.dtype(np.int64), None),
    DT_UINT8: ("i", np.dtype(np.uint8), (0, 2**8 - 1)),
    DT_UINT32: ("u", np.dtype(np.uint32), (0, 2**32 - 1)),
    DT_UINT64: ("u", np.dtype(np.uint64), None),
}
_BUFFER_DTYPE: Final = {
    "d": np.dtype(np.float64),
    "i": np.dtype(np.int64),
    "u": np.dtype(np.uint64),
}

_TENSOR_KEYS: Final[dict[str, JsonForm]] = {"instances": "row", "inputs": "columnar"}
_ALLOWED_KEYS: Final = frozenset({"instances", "inputs", "signature_name"})
_PLAIN_NAME: Final = frozenset(range(256)) - frozenset(b"[],:")
_DEFAULT_LIMITS: Final = Limits()

# Everything but the three structural characters of a numeric array: ``bytes.translate`` deletes
# these, leaving the array's skeleton (``[[,],[,]]`` for a 2x2 array).
_NON_STRUCTURAL: Final = bytes(c for c in range(256) if c not in b"[],")

# Cost model of the two complete rectangularity checks (measured, see docs/performance.md):
# visiting an array through simdjson proxies costs ~60 ns, counting ``[`` ~0.15 ns a byte,
# extracting the skeleton with ``bytes.translate`` ~0.6 ns a byte.
_NS_PER_ARRAY: Final = 60.0
_NS_PER_BYTE_COUNT: Final = 0.15
_NS_PER_BYTE_SKELETON: Final = 0.6
_NUMPY_COUNT_MIN_BYTES: Final = 1 << 15
_COUNT_CHUNK: Final = 1 << 18
_SMALL: Final = 64
_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)


class FastPredict(NamedTuple):
    """A predict body decoded by the fast path."""

    array: npt.NDArray[Any]
    """The tensor, C-contiguous, in the signature input's dtype, shaped as the nested array."""
    form: JsonForm
    """``row`` (``instances``) or ``columnar`` (``inputs``)."""
    signature_name: str | None
    """The body's ``signature_name``, or ``None`` when it had none."""
    input_name: str
    """The signature's only input alias."""


# -- simdjson, lazily ---------------------------------------------------------------------------

_UNSET: Any = object()
_simdjson: Any = _UNSET
_local = threading.local()


def _module() -> Any:
    global _simdjson
    if _simdjson is _UNSET:
        _simdjson = accelerators.simdjson()
    return _simdjson


def available() -> bool:
    """Whether pysimdjson is installed, so that :func:`decode_predict` can answer at all."""
    return _module() is not None


def _parser(module: Any) -> Any:
    """This thread's parser (created on first use)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = module.Parser()
    return parser


# -- the fast path --------------------------------------------------------------------------------


def decode_predict(
    body: bytes | bytearray | memoryview | str,
    signatures: Mapping[str, SignatureDef] | Message,
    *,
    signature_name: str | None = None,
    limits: Limits | None = None,
) -> FastPredict | None:
    """The tensor of a ``{"instances"|"inputs": <numeric array>}`` body, or ``None``.

    Arguments as :func:`~.requests.predict_arrays_from_json` takes them:
    ``signatures`` maps signature names to ``SignatureDef`` (as the request ``Context`` holds
    them), or is the one ``SignatureDef`` to use whatever the body names; the signature is the
    body's ``signature_name``, else ``signature_name`` (the ``model_spec``'s), else
    ``serving_default``. ``limits`` (default: :class:`~tfio_handlers.config.Limits`' defaults):
    a body over ``max_body_bytes``, a rank over ``max_depth`` or a tensor over ``max_elements`` is
    left to the exact path, which answers with the error.

    ``None`` means "not proved equal to the exact path: use it" and is the answer for every body
    outside the module docstring's list, malformed ones included; this function never raises
    for a body.
    """
    return _run(
        body,
        limits,
        lambda module, parser, data, limits: _decode(
            module, parser, _Request(data, signatures, signature_name, limits)
        ),
    )


def decode_plain(
    body: bytes | bytearray | memoryview | str,
    signature: SignatureDef | Message,
    *,
    limits: Limits | None = None,
) -> npt.NDArray[Any] | None:
    """The tensor of a plain body that is one nested JSON array of numbers, for ``signature``'s
    only input when it is float or double, typed by the one cast policy; or ``None``.

    A plain body (``[[0.1, 0.2], [0.3, 0.4]]``, SageMaker's list of lists on ``/invocations``)
    is typed by :mod:`tfio_handlers.tensors.casting`, not by TF Serving's rules, and the exact
    path for it is :func:`~tfio_handlers.formats.json.decode_json` then
    :func:`~tfio_handlers.protocol.requests.typed_array`. This answers only what it proves that
    path would answer with the very same array, besides everything :func:`decode_predict` needs
    of the array itself (numbers only, rectangular, within ``limits``; no ``NaN``/``Infinity``
    token, bool, null or string):

    * the signature has exactly one input, of dtype float or double (an integer input takes
      ``1.0`` as ``1`` by the cast policy, which simdjson's buffers cannot tell from ``1``);
    * every value is below 2**53 in magnitude. numpy reads a list of integer literals as int64
      and casts that to float32 once, where simdjson rounds an integer to double first: from
      2**53 on the two roundings may differ, and a double tells no integer literal from a float.
      Below it, every integer is exact in a double, and a float32 cannot overflow.

    The shape is the nested array's (a flat list stays rank 1: adding the batch dimension is the
    codec's rule). ``None`` without pysimdjson, and for every other body; never raises for a body.
    """
    resolved = _signature_input(signature, None)
    if resolved is None or resolved[1] not in _PLAIN_DTYPES:
        return None
    np_dtype = _DTYPES[resolved[1]][1]
    return _run(
        body,
        limits,
        lambda module, parser, data, limits: _decode_plain(module, parser, data, limits, np_dtype),
    )


_PLAIN_DTYPES: Final = frozenset({DT_FLOAT, DT_DOUBLE})
_EXACT_INTEGERS: Final = float(2**53)

_T = TypeVar("_T")


def _run(
    body: bytes | bytearray | memoryview | str,
    limits: Limits | None,
    decode: Callable[[Any, Any, bytes, Limits], _T | None],
) -> _T | None:
    """``decode(module, parser, data, limits)`` with the body as bytes and a parser free to use:
    this thread's, or one of its own for a huge body or a re-entered call; ``None`` without
    pysimdjson, for an empty body and for one over ``limits.max_body_bytes``."""
    module = _module()
    if module is None or not body:
        return None
    if type(body) is bytes:
        data = body
    elif isinstance(body, str):
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: the exact path's business
            return None
    else:
        data = bytes(body)
    limits = _DEFAULT_LIMITS if limits is None else limits
    if len(data) > limits.max_body_bytes:
        return None
    if len(data) > KEEP_PARSER_MAX_BYTES or getattr(_local, "busy", False):
        # A parser of its own: a huge body's buffers are not kept by the thread, and a re-entered
        # call must not touch the parser whose proxies are alive.
        return decode(module, module.Parser(), data, limits)
    _local.busy = True
    try:
        return decode(module, _parser(module), data, limits)
    finally:
        _local.busy = False


class _Request(NamedTuple):
    body: bytes
    signatures: Mapping[str, SignatureDef] | Message
    signature_name: str | None
    limits: Limits


def _decode_plain(
    module: Any, parser: Any, body: bytes, limits: Limits, np_dtype: np.dtype[Any]
) -> npt.NDArray[Any] | None:
    # As in _decode: the proxy lives in this frame only.
    value: Any = None
    try:
        value = _parse(module, parser, body)
        numbers = _numbers(module, body, value, "d", limits)
        value = None
        if numbers is None:
            return None
        flat, dims = numbers
        high, low = _extremes(flat)
        if high >= _EXACT_INTEGERS or low <= -_EXACT_INTEGERS:
            return None
        array = flat if flat.dtype == np_dtype else flat.astype(np_dtype)
        return array.reshape(dims)
    finally:
        value = None


def _parse(module: Any, parser: Any, body: bytes) -> Any:
    """The document's root proxy, or ``None`` when simdjson refuses the body."""
    try:
        return parser.parse(body)
    except RuntimeError as exc:
        if "re-use" not in str(exc):
            return None  # e.g. BIGINT_ERROR
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    # A proxy of this thread's last document outlived its call (a traceback held it, say): give
    # the thread a new parser rather than decline every later call.
    parser = _local.parser = module.Parser()
    try:
        return parser.parse(body)
    except (ValueError, TypeError, RuntimeError, UnicodeDecodeError):
        return None


def _decode(module: Any, parser: Any, request: _Request) -> FastPredict | None:
    # Every simdjson proxy lives in this frame only and is dropped before it returns: the
    # parser refuses to parse again while one lives.
    body = request.body
    doc: Any = None
    value: Any = None
    try:
        doc = _parse(module, parser, body)
        if type(doc) is not module.Object:
            return None
        keys = list(doc.keys())
        if len(keys) > 2 or len(set(keys)) != len(keys) or not _ALLOWED_KEYS.issuperset(keys):
            return None
        form: JsonForm | None = None
        tensor_key = ""
        for key in keys:
            if key in _TENSOR_KEYS:
                if form is not None:  # both "instances" and "inputs": the exact path's error
                    return None
                form = _TENSOR_KEYS[key]
                tensor_key = key
        if form is None:
            return None
        body_signature: str | None = None
        if "signature_name" in keys:
            name = doc["signature_name"]
            # No structural character in it: the checks below read every [ ] , of the body as the
            # array's; no ':' so that the exact path's parser takes its own fast route too.
            if type(name) is not str or not _PLAIN_NAME.issuperset(name.encode("utf-8", "replace")):
                return None
            body_signature = name
        resolved = _signature_input(request.signatures, body_signature or request.signature_name)
        if resolved is None:
            return None
        input_name, dtype = resolved
        buffer_type, np_dtype, bounds = _DTYPES[dtype]

        value = doc[tensor_key]
        doc = None
        numbers = _numbers(module, body, value, buffer_type, request.limits)
        value = None
        if numbers is None:
            return None
        flat, dims = numbers
        array = _convert(flat, np_dtype, bounds)
        if array is None:
            return None
        return FastPredict(array.reshape(dims), form, body_signature, input_name)
    finally:
        doc = value = None


def _numbers(
    module: Any, body: bytes, value: Any, buffer_type: str, limits: Limits
) -> tuple[npt.NDArray[Any], tuple[int, ...]] | None:
    """The numbers of the nested array ``value`` (a proxy into ``body``'s document) as a flat
    float64, int64 or uint64 array (``buffer_type``), and its shape; ``None`` unless ``value`` is
    a non-empty rectangular array of numbers only, within ``limits``, proved so completely, with
    no zero written with a 3-digit exponent. Every ``[`` ``]`` ``,`` of ``body`` outside ``value``
    must be one of :func:`_rectangular`'s known few."""
    if type(value) is not module.Array:
        return None
    dims = _first_shape(value, module.Array)
    if dims is None or len(dims) > limits.max_depth:
        return None
    count = 1
    for d in dims:
        count *= d
    if count > limits.max_elements:
        return None
    try:
        buffer = value.as_buffer(of_type=buffer_type)
    except (ValueError, TypeError, RuntimeError, OverflowError):
        return None
    flat = np.frombuffer(buffer, _BUFFER_DTYPE[buffer_type])
    if flat.size != count or not _rectangular(body, value, dims):
        return None
    # count_nonzero: a zero among the values, without ndarray.all's Python wrapper
    if buffer_type == "d" and np.count_nonzero(flat) < count and _big_exponent(body):
        return None
    return flat, dims


def _signature_input(
    signatures: Mapping[str, SignatureDef] | Message, signature_name: str | None
) -> tuple[str, int] | None:
    """The signature's only input alias and dtype, if the fast path handles it."""
    if isinstance(signatures, Message):
        signature: Any = signatures
    else:
        try:
            signature = signatures.get(signature_name or DEFAULT_SIGNATURE)
        except Exception:  # a foreign mapping that cannot look up: not ours to judge
            return None
    if signature is None:
        return None
    # Reading a protobuf map costs microseconds: remember the answer per SignatureDef object
    # (the entry holds the object, so its id cannot be reused while cached).
    key = id(signature)
    cached = _INPUT_CACHE.get(key)
    if cached is not None and cached[0] is signature:
        return cached[1]
    inputs = signature.inputs
    answer: tuple[str, int] | None = None
    if len(inputs) == 1:
        for alias, info in inputs.items():
            dtype = int(info.dtype)
            if dtype in _DTYPES:
                answer = alias, dtype
    if len(_INPUT_CACHE) >= _INPUT_CACHE_SIZE:
        _INPUT_CACHE.clear()
    _INPUT_CACHE[key] = (signature, answer)
    return answer


_INPUT_CACHE: dict[int, tuple[Any, tuple[str, int] | None]] = {}
_INPUT_CACHE_SIZE: Final = 256


def _first_shape(value: Any, array_type: Any) -> tuple[int, ...] | None:
    """The shape TF Serving infers from the first element of each level; ``None`` when the first
    leaf is not a number, a level is empty or the rank exceeds :data:`MAX_RANK`."""
    dims: list[int] = []
    node: Any = value
    while type(node) is array_type:
        n = len(node)
        if n == 0 or len(dims) == MAX_RANK:
            return None
        dims.append(n)
        node = node[0]
    if type(node) is not float and type(node) is not int:  # bool, str, None, Object
        return None
    return tuple(dims)


# -- rectangularity ---------------------------------------------------------------------------------


def _rectangular(body: bytes, value: Any, dims: tuple[int, ...]) -> bool:
    """Whether the nested array ``value`` is exactly of shape ``dims``: complete, not a heuristic.

    Known on entry: the body is valid JSON; ``value`` holds only numbers and arrays (``as_buffer``
    succeeded), its first elements give ``dims``; the only strings in the body are its keys
    (``instances``/``inputs``/``signature_name``) and a signature name without ``[``/``]``/``,``,
    so every ``[`` of the body opens an array inside ``value``.

    Two proofs, whichever the cost model says is cheaper:

    * **lengths**: visit every array above the last level and check the length of each of its
      children (they must all be arrays), then count the body's ``[``. A rectangular array of
      shape ``dims`` has exactly ``1 + d0 + d0*d1 + ... + d0*...*d(k-2)`` arrays; the visit found
      that many with the right lengths, so an equal count means there is no array below the last
      level, i.e. every element of a last-level array is a number. Cost: one proxy per array.
    * **skeleton**: delete every byte but ``[``, ``]`` and ``,`` (``bytes.translate``) and compare
      the rest with the skeleton of a rectangular array of shape ``dims`` (``[[,],[,]]`` for 2x2).
      In a valid JSON array the skeleton fixes the tree: where each array opens and closes and how
      many values each holds. Cost: one C pass over the body.
    """
    arrays = 1
    above = 1
    for d in dims[:-1]:
        above *= d
        arrays += above
    size = len(body)
    lengths_ns = (arrays - 1) * _NS_PER_ARRAY + size * _NS_PER_BYTE_COUNT
    if lengths_ns <= size * _NS_PER_BYTE_SKELETON:
        return _count_open(body) == arrays and _lengths_ok(value, dims)
    skeleton = body.translate(None, _NON_STRUCTURAL)
    # The body's other structural bytes are the commas between the root's two members.
    return skeleton.strip(b",") == _skeleton(dims)


def _count_open(body: bytes) -> int:
    """How many ``[`` the body holds.

    numpy's vectorised compare beats ``bytes.count`` 2.5x; comparing cache-sized chunks into one
    reused buffer saves another 20% over one body-sized temporary.
    """
    if len(body) < _NUMPY_COUNT_MIN_BYTES:
        return body.count(b"[")
    data = np.frombuffer(body, np.uint8)
    chunk = min(len(data), _COUNT_CHUNK)
    scratch = np.empty(chunk, np.bool_)
    count = 0
    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        out = scratch[: len(part)]
        np.equal(part, 0x5B, out=out)
        count += int(np.count_nonzero(out))
    return count


def _lengths_ok(value: Any, dims: tuple[int, ...]) -> bool:
    """Every array at levels 1..k-1 is an array of length ``dims[level]`` (level 0 is known)."""
    level = [value]
    last = len(dims) - 1
    for depth in range(1, len(dims)):
        d = dims[depth]
        below: list[Any] = []
        for parent in level:
            try:
                children = list(parent) if depth < last else parent
                for n in map(len, children):  # a number has no len(): TypeError
                    if n != d:
                        return False
            except TypeError:
                return False
            if depth < last:
                below.extend(children)
        level = below
    return True


@lru_cache(maxsize=8)
def _skeleton(dims: tuple[int, ...]) -> bytes:
    """``[`` ``]`` ``,`` of a rectangular array of shape ``dims``, as the body would hold them."""
    skeleton = b"[" + b"," * (dims[-1] - 1) + b"]"
    for d in reversed(dims[:-1]):
        skeleton = b"[" + (skeleton + b",") * (d - 1) + skeleton + b"]"
    return skeleton


# -- numbers --------------------------------------------------------------------------------------


def _big_exponent(body: bytes) -> bool:
    """Whether a number of the body may be written with a non-negative exponent of 3+ digits.

    simdjson reads ``0e400`` as 0.0; TF Serving's RapidJSON refuses it (``Number too big``), and
    the exact path sends any zero written with a 3-digit exponent to its RapidJSON reader. Only
    called when the tensor holds a zero. Conservative: a key letter ``e`` followed by digits would
    answer ``True`` too (and the body go to the exact path).
    """
    if body.find(b"e") < 0 and body.find(b"E") < 0:  # memchr: quick when there is none
        return False
    data = np.frombuffer(body, np.uint8)
    marks = np.flatnonzero((data | 0x20) == ord("e"))
    marks = marks[marks + 4 < len(data)]
    if not marks.size:
        return False
    start = marks + 1 + (data[marks + 1] == ord("+"))
    digits = (
        ((data[start] - 48) < 10) & ((data[start + 1] - 48) < 10) & ((data[start + 2] - 48) < 10)
    )
    return bool(digits.any())


def _convert(
    flat: npt.NDArray[Any], np_dtype: np.dtype[Any], bounds: tuple[int, int] | None
) -> npt.NDArray[Any] | None:
    """``flat`` (float64, int64 or uint64 from simdjson) in the signature's dtype, or ``None``."""
    if np_dtype == flat.dtype:
        return flat
    if np_dtype.kind == "f":  # float64 -> float32
        # Beyond float32's range (inf, or a value rounding to its largest) the exact path's
        # behaviour is its own to give; within it the cast cannot overflow.
        high, low = _extremes(flat)
        if high > _FLOAT32_MAX or low < -_FLOAT32_MAX:
            return None
        return flat.astype(np_dtype)
    if bounds is not None:
        high, low = _extremes(flat)
        if low < bounds[0] or high > bounds[1]:
            return None
    return flat.astype(np_dtype)


def _extremes(flat: npt.NDArray[Any]) -> tuple[Any, Any]:
    """The largest and the smallest value of the non-empty ``flat``, as Python numbers."""
    if flat.size <= _SMALL:  # numpy's reductions cost microseconds of overhead each
        values = flat.tolist()
        return max(values), min(values)
    return flat.max().item(), flat.min().item()
