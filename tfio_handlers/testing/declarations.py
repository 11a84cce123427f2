"""How a codec declares what the conformance suite may expect of it (plain data, no Hypothesis).

A plugin declares, per media type it registers, the round trips its encoder and decoder make
together, in a module-level (or object) attribute named :data:`ATTRIBUTE`::

    TFIO_HANDLERS_CONFORMANCE = {
        "application/msgpack": {
            "round_trips": [{"max_outputs": 4}],  # every dtype, any rank, names kept, bit-exact
        },
    }

The values are plain dicts, so a plugin needs nothing at run time to declare them; for type
checking, annotate with these ``TypedDict``\\ s under ``if TYPE_CHECKING:``. A media type left out
of the mapping (or a plugin without the attribute) is still checked for everything but round trips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict

__all__ = [
    "ATTRIBUTE",
    "BUILTIN_DECLARATIONS",
    "ROUTES_KEY",
    "CodecDeclaration",
    "RoundTrip",
    "RouteExample",
    "RoutesDeclaration",
]

ATTRIBUTE: Final = "TFIO_HANDLERS_CONFORMANCE"
"""The attribute of a plugin (module or object) holding ``{media type: CodecDeclaration}``."""


class RoundTrip(TypedDict, total=False):
    """One family of answers that ``decode(encode(answer))`` gives back exactly.

    The suite draws predict answers (:func:`tfio_handlers.testing.responses`) with these options,
    encodes each with the codec's encoder, decodes the body with its decoder against a signature
    whose inputs are the answer's outputs (names and dtypes, rank unknown), builds the request as a
    server does, and compares every input with the output it came from. Every key is optional.
    """

    dtypes: Sequence[int | str]
    """The dtypes carried (any spelling ``as_data_type`` reads); default: every dtype TF Serving
    accepts (:data:`tfio_handlers.testing.ALL_DTYPES`)."""
    min_dims: int
    """Smallest rank (default 0)."""
    max_dims: int
    """Largest rank (default 4)."""
    max_side: int
    """Largest dimension (default 3)."""
    zero_size: bool
    """Whether zero-sized dimensions come back (default ``True``)."""
    max_outputs: int
    """How many named outputs one body carries (default 1). Above 1, names must come back."""
    names: bool
    """Whether an output's name comes back as the input's name (default ``True``); ``False``: the
    body holds one unnamed array, which the library gives to the signature's single input."""
    same_batch: bool
    """Whether the outputs share their first dimension, as a format of rows needs (default
    ``False``)."""
    bits: bool
    """Whether every bit comes back: NaN payloads and signs (default ``True``); ``False``: values,
    any NaN equal to any NaN (``-0.0`` still told from ``0.0``)."""
    allow_nan: bool
    """Whether NaNs are drawn (default ``True``)."""
    allow_infinity: bool
    """Whether infinities are drawn (default ``True``)."""
    binary_strings: bool
    """Whether strings may be any bytes (default ``True``) or only UTF-8 text."""
    params: Mapping[str, str]
    """Media type parameters both directions are called with (``{"proto": "tensorflow.TensorProto"}``)."""


class CodecDeclaration(TypedDict, total=False):
    """What the conformance suite may expect of one media type's codec."""

    round_trips: Sequence[RoundTrip]
    """The round trips the codec makes (none by default: a decoder alone or an encoder alone)."""
    overrides: Sequence[str]
    """Built-in media types (or aliases) the plugin claims on purpose, replacing the built-in codec;
    any other claim of a built-in type fails the suite."""
    settings: Mapping[str, Any]
    """``Settings`` fields the codec needs to work at all (``{"enable_pickle": True}``)."""


_NUMERIC = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)

_BINARY = (*_NUMERIC, "complex64", "complex128")

# npy has no bfloat16: it travels as float32, which keeps every value but quiets a signalling NaN.
_BFLOAT16_AS_FLOAT32: RoundTrip = {"dtypes": ("bfloat16",), "bits": False}

BUILTIN_DECLARATIONS: Final[Mapping[str, CodecDeclaration]] = {
    # TF Serving's JSON and CSV: a response body is not a request body (``predictions`` is not
    # ``instances``; a CSV answer of one column reads back as a vector), so no round trip is
    # declared; their own property tests read answers back (tests/protocol/tfs_json/
    # test_roundtrip.py, tests/formats/test_csv.py).
    "application/json": {},
    "text/csv": {},
    "application/jsonlines": {
        # one line per instance (an empty batch is an empty body, which holds no request); JSON
        # numbers carry a NaN but not its payload
        "round_trips": [
            {"names": False, "min_dims": 1, "zero_size": False, "dtypes": _NUMERIC, "bits": False}
        ],
    },
    "application/x-protobuf": {
        # one output as a TensorProto, read back as the single input: every dtype, every bit
        "round_trips": [{"names": False, "params": {"proto": "tensorflow.TensorProto"}}],
    },
    "application/x-npy": {
        # an array of rank 0 or 1 is one record (the batch rule): it comes back with a batch dim.
        # Strings are left out: npy writes them as fixed-width S arrays, which drop trailing NULs,
        # so an answer with such strings is a 406 (tests/testing/test_kit_builtins.py).
        "round_trips": [
            {"names": False, "min_dims": 2, "dtypes": _BINARY},
            {"names": False, "min_dims": 2, **_BFLOAT16_AS_FLOAT32},
        ],
    },
    "application/x-npz": {
        "round_trips": [
            {"max_outputs": 3, "dtypes": _BINARY},
            {"max_outputs": 3, **_BFLOAT16_AS_FLOAT32},
        ],
    },
    "application/python-pickle": {
        "settings": {"enable_pickle": True},
        "round_trips": [
            {"max_outputs": 3, "dtypes": (*_BINARY, "string")},
            {"max_outputs": 3, **_BFLOAT16_AS_FLOAT32},
        ],
    },
}
"""The built-in codecs' declarations (they are not plugins that could carry the attribute)."""


ROUTES_KEY: Final = "routes"
"""The key of :data:`ATTRIBUTE` under which a route plugin declares its :class:`RoutesDeclaration`
(media types hold a ``/``, so the key never clashes with a codec's entry)."""


class RouteExample(TypedDict, total=False):
    """One request a route of the plugin answers, as a client sends it: what
    :func:`~tfio_handlers.testing.check_routes` sends as is, then mutates.

    ``method`` and ``path`` are required; the rest optional. Examples name whatever the pipeline
    given to ``check_routes`` serves (a model name in the path, an input name in the body).
    """

    method: str
    """``"GET"``, ``"POST"``, ..."""
    path: str
    """The path, percent-decoded, with an optional ``?query``: ``/v2/models/half_plus_two/infer``."""
    body: bytes | str
    """The body (text is sent as UTF-8); default empty."""
    json: Any
    """The body as a JSON document, instead of ``body``."""
    headers: Mapping[str, str]
    """Request headers (``content-type``, a protocol's own); the fuzz also sends odd values for
    each name listed here (``content-length`` is always the body's length, as the adapters set it)."""
    status: int
    """The status the example must answer as is (default: any the fuzz allows)."""


class RoutesDeclaration(TypedDict, total=False):
    """What a route plugin declares under :data:`ROUTES_KEY` of :data:`ATTRIBUTE`::

    TFIO_HANDLERS_CONFORMANCE = {
        "routes": {
            "examples": [
                {
                    "method": "POST",
                    "path": "/v2/models/half_plus_two/infer",
                    "json": {"inputs": [{"name": "x", "datatype": "FP32", ...}]},
                    "status": 200,
                },
            ],
        },
    }
    """

    examples: Sequence[RouteExample]
    """Requests the plugin's routes answer; the fuzz mutates their paths, headers and bodies."""
    overrides: Sequence[str]
    """Templates of this plugin's routes that may take requests a built-in route answers
    (``/ping``, ``/invocations``, ``/v1/...``): replacing a built-in must be meant."""
