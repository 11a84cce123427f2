"""Testing kit for codec authors: Hypothesis strategies and the conformance suite.

Needs Hypothesis: ``pip install 'tfio-handlers[testing]'``.

Strategies (:mod:`tfio_handlers.testing.strategies`), drawing the edge values that broke codecs
before (:mod:`tfio_handlers.testing.edges`: NaN payloads, signalling NaNs in complex parts, float32
max, subnormals, ``-0.0``, zero-sized dimensions, empty and non-UTF-8 strings):

- ``data_types()``, ``shapes()``, ``strings()``, ``input_names()``;
- ``arrays(dtype, shape, ...)``: numpy arrays as the library's reader returns them;
- ``tensor_protos(...)``: the same as ``TensorProto`` messages, in either layout;
- ``signatures(...)``: predict, classify and regress ``SignatureDef``\\ s;
- ``predict_requests(signature)``: ``PredictArrays`` a signature accepts;
- ``examples()``, ``classification_requests()``, ``regression_requests()``;
- ``responses(...)``: what an encoder receives: ``Prediction``, ``ClassificationResponse``,
  ``RegressionResponse``.

Comparisons (:mod:`tfio_handlers.testing.compare`): ``same_bits``, ``same_values``.

The conformance suite (:mod:`tfio_handlers.testing.conformance`): ``check_codec(media_type, ...)``
runs a codec through declarations, conflicts, round trips, hostile bodies and any answer; a codec
declares its round trips in ``TFIO_HANDLERS_CONFORMANCE`` (:mod:`tfio_handlers.testing.declarations`).
The pytest plugin ``tfio_handlers.pytest_plugin`` (installed with the package) parametrises a test
that takes the ``tfio_codec`` argument over the installed codecs.

The route side (:mod:`tfio_handlers.testing.routes`): ``check_routes(plugin, pipeline=...)`` checks a
route plugin's declarations and conflicts and sends a bounded fuzz of hostile requests through its
handlers, as the adapters do; a route plugin declares example requests under the ``"routes"`` key
of ``TFIO_HANDLERS_CONFORMANCE`` (:class:`RoutesDeclaration`). ``docs/plugins/testing.md`` tells
how to use it.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - tested by simulating the missing package
    raise ImportError(
        "tfio_handlers.testing needs Hypothesis, which is not installed: "
        "pip install 'tfio-handlers[testing]' (the testing extra)"
    ) from exc

from .compare import describe_difference, same_bits, same_values
from .conformance import (
    FUZZ_LIMITS,
    ConformanceError,
    Declared,
    check_codec,
    declared_codecs,
    installed_registry,
)
from .declarations import (
    ATTRIBUTE,
    BUILTIN_DECLARATIONS,
    ROUTES_KEY,
    CodecDeclaration,
    RoundTrip,
    RouteExample,
    RoutesDeclaration,
)
from .edges import FLOAT_EDGE_BITS, STRING_EDGES, TEXT_EDGES
from .routes import BUILTIN_ROUTE_DECLARATIONS, ODD_PARAMETERS, check_routes, declared_routes
from .strategies import (
    ALL_DTYPES,
    arrays,
    classification_requests,
    data_types,
    examples,
    input_names,
    predict_requests,
    regression_requests,
    responses,
    shapes,
    signature_for,
    signatures,
    strings,
    tensor_protos,
)

__all__ = [
    "ALL_DTYPES",
    "ATTRIBUTE",
    "BUILTIN_DECLARATIONS",
    "BUILTIN_ROUTE_DECLARATIONS",
    "FLOAT_EDGE_BITS",
    "FUZZ_LIMITS",
    "ODD_PARAMETERS",
    "ROUTES_KEY",
    "STRING_EDGES",
    "TEXT_EDGES",
    "CodecDeclaration",
    "ConformanceError",
    "Declared",
    "RoundTrip",
    "RouteExample",
    "RoutesDeclaration",
    "arrays",
    "check_codec",
    "check_routes",
    "classification_requests",
    "data_types",
    "declared_codecs",
    "declared_routes",
    "describe_difference",
    "examples",
    "input_names",
    "installed_registry",
    "predict_requests",
    "regression_requests",
    "responses",
    "same_bits",
    "same_values",
    "shapes",
    "signature_for",
    "signatures",
    "strings",
    "tensor_protos",
]
