"""Hypothesis strategies for what TF Serving carries: dtypes, shapes, arrays, tensors, signatures,
requests and responses, each drawing the edge values of :mod:`tfio_handlers.testing.edges`.

Arrays are little-endian and C-ordered, as the library's reader gives them; strings are ``object``
arrays of ``bytes``, as every decoder gives them. Every strategy draws small values (sides of at
most a few elements) so that a property runs hundreds of examples in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from ..context import Method
from ..protocol.arrays import PredictArrays, Prediction
from ..protos import (
    DT_BFLOAT16,
    DT_BOOL,
    DT_FLOAT,
    DT_INT64,
    DT_STRING,
    ClassificationRequest,
    ClassificationResponse,
    Example,
    RegressionRequest,
    RegressionResponse,
    SignatureDef,
    TensorProto,
)
from ..tensors import SUPPORTED_DTYPES, as_data_type, numpy_dtype, to_tensor_proto
from .edges import FLOAT_EDGE_BITS, STRING_EDGES, TEXT_EDGES

__all__ = [
    "ALL_DTYPES",
    "CLASSIFY",
    "PREDICT",
    "REGRESS",
    "arrays",
    "available_dtypes",
    "classification_requests",
    "data_types",
    "examples",
    "input_names",
    "predict_requests",
    "regression_requests",
    "responses",
    "shapes",
    "signature_for",
    "signatures",
    "strings",
    "tensor_protos",
]

Array = NDArray[Any]
DTypeSpec = int | str | type | np.dtype[Any]
"""A dtype in any spelling :func:`tfio_handlers.tensors.as_data_type` reads (``DT_FLOAT``,
``"float32"``, ``np.float32``, ``1``)."""

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def _bfloat16_available() -> bool:
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return False
    return True


ALL_DTYPES: tuple[int, ...] = tuple(
    sorted(SUPPORTED_DTYPES - (set() if _bfloat16_available() else {DT_BFLOAT16}))
)
"""Every DataType TF Serving accepts that the library converts to numpy (bfloat16 only where the
``ml_dtypes`` package is installed)."""


def available_dtypes(dtypes: Collection[DTypeSpec] | None) -> tuple[int, ...]:
    """``dtypes`` (any spelling; ``None``: all) that this installation converts, as DataType enums."""
    return _data_types(dtypes)


def _data_types(dtypes: Collection[DTypeSpec] | None) -> tuple[int, ...]:
    if dtypes is None:
        return ALL_DTYPES
    chosen = tuple(dict.fromkeys(as_data_type(d) for d in dtypes))
    return tuple(dt for dt in chosen if dt in ALL_DTYPES)


def data_types(dtypes: Collection[DTypeSpec] | None = None) -> st.SearchStrategy[int]:
    """DataType enums: ``dtypes`` (any spelling) or :data:`ALL_DTYPES`, bfloat16 only if available."""
    return st.sampled_from(_data_types(dtypes))


def shapes(
    *, min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = 3
) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes of rank ``min_dims`` to ``max_dims``; zero-sized dimensions unless ``min_side`` > 0."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def strings(*, binary: bool = True, max_size: int = 8) -> st.SearchStrategy[bytes]:
    """Byte strings with :data:`~tfio_handlers.testing.edges.STRING_EDGES` (empty, NUL bytes, not
    UTF-8); with ``binary=False`` only UTF-8 text, encoded."""
    text = st.text(max_size=max_size).map(str.encode)
    if not binary:
        return st.one_of(st.sampled_from([t.encode() for t in TEXT_EDGES]), text)
    return st.one_of(st.sampled_from(STRING_EDGES), st.binary(max_size=max_size), text)


def _float_bits(width: int) -> st.SearchStrategy[int]:
    """Any bit pattern of a float format, an edge pattern one time in three."""
    top = 2 ** abs(width) - 1
    return st.one_of(
        st.sampled_from(FLOAT_EDGE_BITS[width]), st.integers(0, top), st.integers(0, top)
    )


@st.composite
def arrays(
    draw: st.DrawFn,
    dtype: DTypeSpec | None = None,
    shape: Sequence[int] | st.SearchStrategy[tuple[int, ...]] | None = None,
    *,
    dtypes: Collection[DTypeSpec] | None = None,
    min_dims: int = 0,
    max_dims: int = 4,
    min_side: int = 0,
    max_side: int = 3,
    allow_nan: bool = True,
    allow_infinity: bool = True,
    binary_strings: bool = True,
    max_string_size: int = 8,
) -> Array:
    """An array of one dtype TF Serving accepts, as the library's reader returns it.

    ``dtype`` fixes the dtype (any spelling), else one of ``dtypes`` (default :data:`ALL_DTYPES`) is
    drawn; ``shape`` fixes the shape (or is a strategy of shapes), else one of rank ``min_dims`` to
    ``max_dims`` with sides ``min_side`` to ``max_side`` (zero-sized dimensions by default).

    Floating-point values are any bit pattern (NaN payloads, signalling NaNs, subnormals, ``-0.0``)
    with the edges of :data:`~tfio_handlers.testing.edges.FLOAT_EDGE_BITS` drawn often; complex
    values have such parts. ``allow_nan=False`` and ``allow_infinity=False`` replace those with
    ``0``. Integers and booleans cover their whole range, bounds included. Strings are an ``object``
    array of ``bytes`` (:func:`strings`).
    """
    dt = as_data_type(dtype) if dtype is not None else draw(data_types(dtypes))
    if shape is None:
        dims: tuple[int, ...] = draw(
            shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)
        )
    elif isinstance(shape, st.SearchStrategy):
        dims = tuple(draw(shape))
    else:
        dims = tuple(int(d) for d in shape)
    n = math.prod(dims)
    np_dtype = numpy_dtype(dt)
    if dt == DT_STRING:
        items = draw(
            st.lists(
                strings(binary=binary_strings, max_size=max_string_size), min_size=n, max_size=n
            )
        )
        out = np.empty(n, dtype=object)
        out[:] = items
        return out.reshape(dims)
    if dt == DT_BOOL or np_dtype.kind in "iu":
        drawn: Array = draw(hnp.arrays(np_dtype, dims))
        return drawn
    kind = np_dtype.kind
    if kind == "c":
        part = np_dtype.itemsize // 2
        bits = draw(hnp.arrays(np.dtype(f"<u{part}"), (*dims, 2), elements=_float_bits(8 * part)))
        values: Array = bits.view(f"<f{part}").view(np_dtype).reshape(dims)
    else:
        width = -16 if dt == DT_BFLOAT16 else 8 * np_dtype.itemsize
        bits = draw(
            hnp.arrays(np.dtype(f"<u{np_dtype.itemsize}"), dims, elements=_float_bits(width))
        )
        values = bits.view(np_dtype)
    if not (allow_nan and allow_infinity):
        values = _finite(values, allow_nan=allow_nan, allow_infinity=allow_infinity)
    return values


def _finite(values: Array, *, allow_nan: bool, allow_infinity: bool) -> Array:
    """``values`` with NaNs and/or infinities (in either part of a complex) replaced by zeros."""
    parts: Array = (
        values.view(f"<f{values.dtype.itemsize // 2}") if values.dtype.kind == "c" else values
    )
    parts = np.array(parts, copy=True)
    as_float = parts.astype(np.float64) if parts.dtype.kind != "f" else parts
    bad = np.zeros(parts.shape, dtype=bool)
    if not allow_nan:
        bad |= np.isnan(as_float)
    if not allow_infinity:
        bad |= np.isinf(as_float)
    parts[bad] = 0
    if values.dtype.kind == "c":
        whole: Array = parts.view(values.dtype).reshape(values.shape)
        return whole
    return parts


def tensor_protos(
    dtype: DTypeSpec | None = None,
    shape: Sequence[int] | st.SearchStrategy[tuple[int, ...]] | None = None,
    *,
    typed_fields: bool | None = None,
    **array_options: Any,
) -> st.SearchStrategy[TensorProto]:
    """``TensorProto`` messages of :func:`arrays` (same options), written by the library's one
    writer in ``tensor_content`` or, with ``typed_fields`` (drawn when ``None``), in the dtype's
    ``*_val`` field as TF Serving's REST API writes them."""
    layouts = st.booleans() if typed_fields is None else st.just(typed_fields)
    return st.builds(
        lambda array, typed: to_tensor_proto(array, typed_fields=typed),
        arrays(dtype, shape, **array_options),
        layouts,
    )


def input_names() -> st.SearchStrategy[str]:
    """Input and output names as models have them (``x``, ``input_1``, ``dense/BiasAdd:0``)."""
    return st.one_of(
        st.sampled_from(["x", "inputs", "input_1", "dense/BiasAdd:0", "y", "scores"]),
        st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True),
    )


_PREDICT_ONLY: tuple[Method, ...] = ("predict",)


@st.composite
def signatures(
    draw: st.DrawFn,
    *,
    methods: Collection[Method] = _PREDICT_ONLY,
    dtypes: Collection[DTypeSpec] | None = None,
    min_inputs: int = 1,
    max_inputs: int = 3,
    max_dims: int = 4,
) -> SignatureDef:
    """``SignatureDef``s as a SavedModel's: a predict signature has ``min_inputs`` to ``max_inputs``
    inputs of ``dtypes`` (the batch dimension ``-1``, other dimensions fixed or ``-1``, or the rank
    unknown) and one to three outputs; classify and regress take serialized ``tf.Example``s
    (``inputs``: ``DT_STRING [-1]``) and answer ``classes``/``scores`` or ``outputs``."""
    method = draw(st.sampled_from(sorted(methods)))
    sig = SignatureDef()
    if method == "classify":
        sig.method_name = CLASSIFY
        _spec(sig.inputs["inputs"], DT_STRING, [-1])
        _spec(sig.outputs["classes"], DT_STRING, [-1, -1])
        _spec(sig.outputs["scores"], DT_FLOAT, [-1, -1])
        return sig
    if method == "regress":
        sig.method_name = REGRESS
        _spec(sig.inputs["inputs"], DT_STRING, [-1])
        _spec(sig.outputs["outputs"], DT_FLOAT, [-1])
        return sig
    sig.method_name = PREDICT
    names = draw(st.lists(input_names(), min_size=min_inputs, max_size=max_inputs, unique=True))
    for name in names:
        dt = draw(data_types(dtypes))
        if draw(st.integers(0, 4)) == 0:
            _spec(sig.inputs[name], dt, None)
        else:
            rank = draw(st.integers(1, max(1, max_dims)))
            dims = [-1] + [draw(st.sampled_from([-1, 1, 2, 3])) for _ in range(rank - 1)]
            _spec(sig.inputs[name], dt, dims)
    outputs = draw(st.lists(input_names(), min_size=1, max_size=3, unique=True))
    for name in outputs:
        _spec(sig.outputs[name], draw(data_types(dtypes)), [-1])
    return sig


def _spec(info: Any, dtype: int, dims: list[int] | None) -> None:
    info.name = "serving_default_input:0"  # the graph tensor; never sent by a client
    info.dtype = dtype
    if dims is None:
        info.tensor_shape.unknown_rank = True
        return
    info.tensor_shape.SetInParent()
    for size in dims:
        info.tensor_shape.dim.add(size=size)


@st.composite
def predict_requests(
    draw: st.DrawFn, /, signature: SignatureDef, *, max_batch: int = 3, **array_options: Any
) -> PredictArrays:
    """A predict request the signature accepts, as the library holds one (``PredictArrays``;
    ``.to_message()`` gives the ``PredictRequest``): one array per input, of the input's dtype,
    every ``-1`` dimension drawn, the batch dimension the same for every input (as TF Serving
    requires), an unknown rank drawn. ``array_options`` go to :func:`arrays`."""
    batch = draw(st.integers(0, max_batch))
    inputs: dict[str, Array] = {}
    for name in sorted(signature.inputs):
        info = signature.inputs[name]
        if info.tensor_shape.unknown_rank:
            rest = draw(shapes(min_dims=0, max_dims=3))
            dims: tuple[int, ...] = (batch, *rest)
        else:
            declared = [d.size for d in info.tensor_shape.dim]
            dims = tuple(
                (batch if i == 0 else draw(st.integers(0, 3))) if size < 0 else size
                for i, size in enumerate(declared)
            )
        inputs[name] = draw(arrays(info.dtype, dims, **array_options))
    return PredictArrays(inputs)


@st.composite
def examples(
    draw: st.DrawFn, *, features: Sequence[str] | None = None, max_values: int = 4
) -> Example:
    """``tf.Example`` records: each feature a float list (edge bit patterns included), an int64 list
    (its bounds included) or a bytes list (:func:`strings`), possibly empty."""
    names = (
        features
        if features is not None
        else draw(st.lists(input_names(), min_size=0, max_size=3, unique=True))
    )
    example = Example()
    for name in names:
        feature = example.features.feature[name]
        kind = draw(st.sampled_from(["float", "int64", "bytes"]))
        if kind == "float":
            values = draw(arrays(DT_FLOAT, (draw(st.integers(0, max_values)),)))
            feature.float_list.value.extend(values.tolist())
        elif kind == "int64":
            values = draw(arrays(DT_INT64, (draw(st.integers(0, max_values)),)))
            feature.int64_list.value.extend(values.tolist())
        else:
            feature.bytes_list.value.extend(draw(st.lists(strings(), max_size=max_values)))
    return example


def classification_requests(
    *, max_examples: int = 3, features: Sequence[str] | None = None
) -> st.SearchStrategy[ClassificationRequest]:
    """``ClassificationRequest`` messages of zero to ``max_examples`` :func:`examples`."""
    return st.lists(examples(features=features), max_size=max_examples).map(
        lambda found: _examples_request(ClassificationRequest(), found)
    )


def regression_requests(
    *, max_examples: int = 3, features: Sequence[str] | None = None
) -> st.SearchStrategy[RegressionRequest]:
    """``RegressionRequest`` messages of zero to ``max_examples`` :func:`examples`."""
    return st.lists(examples(features=features), max_size=max_examples).map(
        lambda found: _examples_request(RegressionRequest(), found)
    )


def _examples_request(request: Any, found: list[Example]) -> Any:
    request.input.example_list.examples.extend(found)
    return request


@st.composite
def _predictions(
    draw: st.DrawFn,
    /,
    *,
    min_outputs: int,
    max_outputs: int,
    same_batch: bool,
    names: st.SearchStrategy[str] | None,
    **array_options: Any,
) -> Prediction:
    found = draw(
        st.lists(names or input_names(), min_size=min_outputs, max_size=max_outputs, unique=True)
    )
    outputs: dict[str, Array] = {}
    batch = None
    for name in found:
        if same_batch:
            if batch is None:
                batch = draw(
                    st.integers(
                        1 if array_options.get("min_side", 0) > 0 else 0,
                        array_options.get("max_side", 3),
                    )
                )
            options = {**array_options, "min_dims": max(1, array_options.get("min_dims", 0))}
            rest = draw(
                shapes(
                    min_dims=options["min_dims"] - 1,
                    max_dims=max(options["min_dims"], options.get("max_dims", 4)) - 1,
                    min_side=options.get("min_side", 0),
                    max_side=options.get("max_side", 3),
                )
            )
            for key in ("min_dims", "max_dims", "min_side", "max_side"):
                options.pop(key, None)
            outputs[name] = draw(arrays(shape=(batch, *rest), **options))
        else:
            outputs[name] = draw(arrays(**array_options))
    return Prediction(outputs)


@st.composite
def _classifications(draw: st.DrawFn, *, max_examples: int) -> ClassificationResponse:
    response = ClassificationResponse()
    for _ in range(draw(st.integers(0, max_examples))):
        classification = response.result.classifications.add()
        for _ in range(draw(st.integers(0, 3))):
            entry = classification.classes.add()
            entry.label = draw(strings(binary=False)).decode()
            entry.score = float(draw(arrays(DT_FLOAT, ()))[()])
    return response


@st.composite
def _regressions(draw: st.DrawFn, *, max_examples: int) -> RegressionResponse:
    response = RegressionResponse()
    values = draw(arrays(DT_FLOAT, (draw(st.integers(0, max_examples)),)))
    for value in values.tolist():
        response.result.regressions.add().value = value
    return response


def responses(
    kinds: Collection[Method] = ("predict", "classify", "regress"),
    *,
    min_outputs: int = 1,
    max_outputs: int = 3,
    same_batch: bool = False,
    names: st.SearchStrategy[str] | None = None,
    max_examples: int = 3,
    **array_options: Any,
) -> st.SearchStrategy[Prediction | ClassificationResponse | RegressionResponse]:
    """What an encoder receives (:data:`tfio_handlers.hookspecs.Answer`): a
    :class:`~tfio_handlers.protocol.arrays.Prediction` of ``min_outputs`` to ``max_outputs`` named
    :func:`arrays` (``array_options`` go there; ``same_batch`` gives them one first dimension, as
    TF Serving's row format needs), a ``ClassificationResponse`` or a ``RegressionResponse`` of up
    to ``max_examples`` results, with edge scores and labels."""
    options: list[st.SearchStrategy[Any]] = []
    if "predict" in kinds:
        options.append(
            _predictions(
                min_outputs=min_outputs,
                max_outputs=max_outputs,
                same_batch=same_batch,
                names=names,
                **array_options,
            )
        )
    if "classify" in kinds:
        options.append(_classifications(max_examples=max_examples))
    if "regress" in kinds:
        options.append(_regressions(max_examples=max_examples))
    return st.one_of(options)


def signature_for(outputs: Mapping[str, Array], method: str = PREDICT) -> SignatureDef:
    """The ``SignatureDef`` whose inputs are ``outputs``' names and dtypes, of unknown rank: what a
    round trip decodes a codec's answer against."""
    from ..tensors import data_type_of

    sig = SignatureDef(method_name=method)
    for name, array in outputs.items():
        _spec(sig.inputs[name], data_type_of(array.dtype), None)
    # Not "outputs": one string input named "inputs" beside a float "outputs" is a regressor's
    # shape, which the library serves as regress whatever the method name says (TF 2 writes
    # "predict" on every signature).
    _spec(sig.outputs["answer"], DT_FLOAT, None)
    return sig
