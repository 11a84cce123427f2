"""The conformance suite: :func:`check_codec` runs one media type's codec through every check.

1. **Declarations.** Every media type and alias the plugin registers is a valid, lower-case essence;
   no alias repeats its type; one name is never declared both text and binary; the registry holds
   the plugin without a :class:`~tfio_handlers.registry.PluginConflict`, and what it says about
   text is what the plugin declared.
2. **No conflict with the built-ins.** Claiming a built-in media type or alias (in the same
   direction) replaces the built-in codec for every client: allowed only when the declaration lists
   it in ``overrides``.
3. **Round trips.** For each :class:`~tfio_handlers.testing.declarations.RoundTrip` declared:
   answers drawn with :func:`~tfio_handlers.testing.responses`, encoded, decoded against the
   answer's own signature and built into a request as a server does, come back equal (bit for bit
   unless declared otherwise). A text codec's bodies must be UTF-8.
4. **Hostile bodies.** A bounded fuzz: random bytes and mutated (flipped, truncated, spliced, grown)
   round-trip bodies, decoded under small limits against drawn signatures, then built into a
   request. The decoder may answer ``None`` ("not mine"), a request value, or raise the library's
   :class:`~tfio_handlers.errors.HTTPError` with a 4xx status (or 501 for a dtype numpy cannot
   hold); anything else (a ``ValueError``, a 500, an input over the limits) fails.
5. **Any answer.** The encoder, given every kind of answer (:func:`~tfio_handlers.testing.responses`:
   every dtype and shape, classify and regress), returns a body, ``(body, content_type)`` or
   ``None``, or raises a 4xx ``HTTPError`` (406 for what the format cannot hold).

A failure raises :class:`ConformanceError` (an ``AssertionError``) naming the check, with
Hypothesis' smallest failing example. The number of examples is bounded by the arguments and by
the current Hypothesis profile's settings (a derandomized profile makes the run repeatable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..config import Limits, Settings
from ..context import Context, Method
from ..errors import HTTPError
from ..hookspecs import Decoder, Encoder
from ..media import MediaType, parse_media_type, text_of
from ..protocol.arrays import PredictArrays, Prediction
from ..protocol.requests import build_request
from ..protos import PredictRequest, SignatureDef
from ..registry import Kind, PluginConflict, Registry
from .compare import describe_difference, same_bits, same_values
from .declarations import ATTRIBUTE, BUILTIN_DECLARATIONS, CodecDeclaration, RoundTrip
from .strategies import available_dtypes, responses, signature_for, signatures

__all__ = [
    "FUZZ_LIMITS",
    "ConformanceError",
    "Declared",
    "check_codec",
    "declared_codecs",
    "installed_registry",
    "iter_declared",
]

FUZZ_LIMITS: Limits = Limits(
    max_body_bytes=1 << 20,
    max_elements=1 << 16,
    max_depth=32,
    max_string_bytes=1 << 16,
    max_response_bytes=1 << 20,
    max_examples=1 << 10,
)
"""The limits hostile bodies are decoded under: small, so that a size read from a body and not
checked against them shows as an input over the limits (or a ``MemoryError``) in milliseconds."""

_MUTATIONS = ("flip", "set", "insert", "delete", "truncate", "repeat", "ones", "zeros")


class ConformanceError(AssertionError):
    """A codec failed a check of the conformance suite; the message names the check."""


@dataclass(frozen=True)
class Declared:
    """One ``register(...)`` call of a plugin, as its ``register_codecs`` hook made it."""

    media_type: str
    decode: Decoder | None
    encode: Encoder | None
    aliases: tuple[str, ...]
    text: bool | None

    @property
    def names(self) -> tuple[str, ...]:
        """The media type and its aliases."""
        return (self.media_type, *self.aliases)


def declared_codecs(plugin: object) -> list[Declared]:
    """What ``plugin``'s ``register_codecs`` hook registers, recorded as it calls ``register``."""
    function = getattr(plugin, "register_codecs", None)
    if function is None:
        return []
    found: list[Declared] = []

    def register(
        media_type: str,
        *,
        decode: Decoder | None = None,
        encode: Encoder | None = None,
        aliases: tuple[str, ...] | list[str] = (),
        text: bool | None = None,
    ) -> None:
        found.append(Declared(media_type, decode, encode, tuple(aliases), text))

    function(register=register)
    return found


def installed_registry(settings_: Settings | None = None) -> Registry:
    """The built-in codecs and every installed entry-point plugin, as a server with default
    settings loads them (plugin loading switched on whatever the environment says)."""
    registry = Registry()
    registry.load_entry_points(settings_.allowed_plugins if settings_ is not None else None)
    return registry


def _fail(check: str, media_type: str, message: str) -> ConformanceError:
    return ConformanceError(f"{media_type}: {check}: {message}")


# -- choosing the codec ----------------------------------------------------------------------------


@dataclass
class _Codec:
    essence: str
    plugin_name: str
    plugin: object
    kind: Kind
    registry: Registry
    declared: list[Declared]
    decode: Decoder | None
    encode: Encoder | None
    declaration: CodecDeclaration


def _resolve(
    media_type: str,
    plugin: object | str | None,
    registry: Registry | None,
    declaration: CodecDeclaration | None,
) -> _Codec:
    essence = parse_media_type(media_type).essence
    if plugin is not None and not isinstance(plugin, str):
        registry = registry if registry is not None else Registry()
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        existing = {n for n, _ in registry.plugins()}
        if registry.pm.is_registered(plugin):
            name = registry.pm.get_name(plugin) or name
        else:
            if name in existing:
                name = f"{name}-under-test"
            registry.register(plugin, name=name)
        plugin_name = name
    else:
        registry = registry if registry is not None else installed_registry()
        plugin_name = _owner(registry, essence) if plugin is None else plugin
    found = registry.pm.get_plugin(plugin_name)
    if found is None:
        raise _fail("plugin", essence, f"no plugin {plugin_name!r} is registered (not installed?)")
    kind = dict(registry.plugins()).get(plugin_name, Kind.PLUGIN)
    declared = declared_codecs(found)
    decode = next((d.decode for d in declared if d.decode and essence in d.names), None)
    encode = next((d.encode for d in declared if d.encode and essence in d.names), None)
    if decode is None and encode is None:
        raise _fail(
            "declarations", essence, f"plugin {plugin_name!r} registers no codec for {essence}"
        )
    if declaration is None:
        table: Mapping[str, CodecDeclaration] = (
            BUILTIN_DECLARATIONS if kind == Kind.BUILTIN else getattr(found, ATTRIBUTE, {})
        )
        declaration = table.get(essence, {})
    return _Codec(
        essence, plugin_name, found, kind, registry, declared, decode, encode, declaration
    )


def _owner(registry: Registry, essence: str) -> str:
    """The plugin asked first for ``essence`` (decoders before encoders)."""
    rows = [row for row in registry.table() if row.media_type == essence and row.order == 0]
    rows.sort(key=lambda row: row.direction)
    if not rows:
        raise _fail("plugin", essence, "no plugin registers this media type")
    return rows[0].plugin


# -- 1 and 2: declarations ---------------------------------------------------------------------------


def _check_declarations(codec: _Codec) -> None:
    text_of_name: dict[str, bool] = {}
    for declared in codec.declared:
        for name in declared.names:
            try:
                parsed = parse_media_type(name)
            except HTTPError as exc:
                raise _fail(
                    "declarations", codec.essence, f"{name!r} is not a media type: {exc}"
                ) from None
            if parsed.essence != name or parsed.params or "*" in name:
                raise _fail(
                    "declarations",
                    codec.essence,
                    f"{name!r} must be a lower-case type/subtype without parameters or wildcards",
                )
        if len(set(declared.names)) != len(declared.names):
            raise _fail(
                "declarations",
                codec.essence,
                f"{declared.media_type} lists itself or an alias twice: {list(declared.names)}",
            )
        if declared.text is not None:
            for name in declared.names:
                before = text_of_name.setdefault(name, declared.text)
                if before != declared.text:
                    raise _fail(
                        "declarations",
                        codec.essence,
                        f"{name} is declared both text and binary by {codec.plugin_name!r}",
                    )
    try:
        codec.registry.check()
    except PluginConflict as exc:
        raise _fail("conflicts", codec.essence, str(exc)) from None
    for name, is_text in text_of_name.items():
        if (
            codec.registry.is_text(name) != is_text
            and _first_owner(codec, name) == codec.plugin_name
        ):
            raise _fail(
                "declarations",
                codec.essence,
                f"{name} is declared {'text' if is_text else 'binary'}, and the registry "
                "says otherwise (another plugin declared it first)",
            )


def _first_owner(codec: _Codec, name: str) -> str | None:
    for row in codec.registry.table():
        if row.media_type == name and row.order == 0:
            return row.plugin
    return None


def _builtin_claims() -> dict[tuple[str, str], str]:
    from ..formats import BUILTIN_PLUGINS

    claims: dict[tuple[str, str], str] = {}
    for plugin_name, module in BUILTIN_PLUGINS:
        for declared in declared_codecs(module):
            for name in declared.names:
                if declared.decode is not None:
                    claims[(name, "decode")] = plugin_name
                if declared.encode is not None:
                    claims[(name, "encode")] = plugin_name
    return claims


def _check_builtin_conflicts(codec: _Codec) -> None:
    if codec.kind == Kind.BUILTIN:
        return
    overrides = {parse_media_type(m).essence for m in codec.declaration.get("overrides", ())}
    builtin = _builtin_claims()
    for declared in codec.declared:
        for name in declared.names:
            for direction, function in (("decode", declared.decode), ("encode", declared.encode)):
                owner = builtin.get((name, direction))
                if function is not None and owner is not None and name not in overrides:
                    raise _fail(
                        "conflicts",
                        codec.essence,
                        f"{codec.plugin_name!r} claims {name} ({direction}), which the built-in "
                        f"{owner!r} codec handles: list it in the declaration's 'overrides' if "
                        "replacing the built-in is meant",
                    )


# -- 3: round trips ----------------------------------------------------------------------------------


def _settings(codec: _Codec, limits: Limits | None = None) -> Settings:
    values = dict(codec.declaration.get("settings", {}))
    if limits is not None:
        values["limits"] = limits
    return Settings(**values)


def _round_trip_strategy(trip: RoundTrip) -> st.SearchStrategy[Any]:
    max_outputs = trip.get("max_outputs", 1)
    options: dict[str, Any] = {
        "dtypes": trip.get("dtypes"),
        "min_dims": trip.get("min_dims", 0),
        "max_dims": trip.get("max_dims", 4),
        "min_side": 0 if trip.get("zero_size", True) else 1,
        "max_side": trip.get("max_side", 3),
        "allow_nan": trip.get("allow_nan", True),
        "allow_infinity": trip.get("allow_infinity", True),
        "binary_strings": trip.get("binary_strings", True),
    }
    predict: tuple[Method] = ("predict",)
    return responses(
        predict,
        min_outputs=1,
        max_outputs=max_outputs,
        same_batch=trip.get("same_batch", False),
        **options,
    )


def _encoded(result: Any, check: str, essence: str) -> tuple[bytes, str | None]:
    """An encoder's result as ``(body, content type or None)``; a wrong type fails ``check``."""
    content_type = None
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], str):
            raise _fail(
                check, essence, f"the encoder returned a tuple that is not (body, type): {result!r}"
            )
        result, content_type = result
    if isinstance(result, str):
        return result.encode(), content_type
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), content_type
    raise _fail(check, essence, f"the encoder returned a {type(result).__name__}, not a body")


def _decoder_for(codec: _Codec, content_type: str | None) -> tuple[Decoder, MediaType] | None:
    """The plugin's decoder for an answer's own content type (the codec's when it is ``None``)."""
    if content_type is None:
        return None
    essence = parse_media_type(content_type).essence
    for declared in codec.declared:
        if declared.decode is not None and essence in declared.names:
            return declared.decode, parse_media_type(content_type).with_essence(declared.media_type)
    return None


def _as_arrays(request: Any) -> dict[str, Any]:
    if isinstance(request, PredictArrays):
        return request.inputs
    if isinstance(request, PredictRequest):
        return PredictArrays.from_message(request).inputs
    raise TypeError(type(request).__name__)


def _round_trip(codec: _Codec, trip: RoundTrip, answer: Prediction) -> None:
    essence = codec.essence
    assert codec.encode is not None and codec.decode is not None
    params = dict(trip.get("params", {}))
    media_type = MediaType(essence, params)
    outputs = answer.outputs
    settings_ = _settings(codec)
    try:
        result = codec.encode(
            answer, media_type, Context(settings=settings_, accept_header=essence)
        )
    except HTTPError as exc:
        raise _fail(
            "round trip",
            essence,
            f"the encoder refused a declared answer: {exc.status_code} {exc.message}",
        ) from exc
    if result is None:
        raise _fail("round trip", essence, "the encoder passed (None) on an answer it declares")
    body, content_type = _encoded(result, "round trip", essence)
    decoder, decode_type = _decoder_for(codec, content_type) or (codec.decode, media_type)
    if codec.registry.is_text(decode_type.essence):
        try:
            text_of(body, decode_type)
        except HTTPError:
            raise _fail(
                "text flag",
                essence,
                "declared text, and the encoder wrote a body that is not UTF-8",
            ) from None
    names = trip.get("names", True)
    signature = signature_for(outputs)
    context = Context(
        settings=settings_,
        signature_defs={"serving_default": signature},
        request_content_type=str(decode_type),
    )
    try:
        value = decoder(body, decode_type, context)
        if value is None:
            raise _fail(
                "round trip", essence, "the decoder passed (None) on the encoder's own body"
            )
        request = build_request(value, context)
    except HTTPError as exc:
        raise _fail(
            "round trip",
            essence,
            f"the encoder's own body was refused: {exc.status_code} {exc.message}",
        ) from exc
    try:
        inputs = _as_arrays(request)
    except TypeError:
        raise _fail(
            "round trip", essence, f"the body came back as a {type(request).__name__}"
        ) from None
    if names and sorted(inputs) != sorted(outputs):
        raise _fail(
            "round trip", essence, f"outputs {sorted(outputs)} came back as {sorted(inputs)}"
        )
    compare = same_bits if trip.get("bits", True) else same_values
    for name, expected in outputs.items():
        actual = inputs[name] if names else next(iter(inputs.values()))
        actual = np.asarray(actual)
        if not compare(expected, actual):
            raise _fail(
                "round trip",
                essence,
                f"output {name!r} came back changed: {describe_difference(expected, actual)}",
            )


# -- 4 and 5: hostile bodies, any answer -------------------------------------------------------------


def _allowed(exc: HTTPError) -> bool:
    return 400 <= exc.status_code < 500 or exc.status_code == 501


def _mutate(body: bytes, operations: Sequence[tuple[str, int, bytes]]) -> bytes:
    data = bytearray(body)
    for operation, where, chunk in operations:
        at = where % (len(data) + 1)
        if operation == "flip" and data:
            data[at % len(data)] ^= 1 << (where % 8)
        elif operation == "set" and data:
            data[at % len(data)] = chunk[0] if chunk else 0xFF
        elif operation == "insert":
            data[at:at] = chunk
        elif operation == "delete":
            del data[at : at + 1 + len(chunk)]
        elif operation == "truncate":
            del data[at:]
        elif operation == "repeat":
            data[at:at] = data[at : at + 1 + len(chunk)] * 3
        elif operation in ("ones", "zeros"):
            fill = 0xFF if operation == "ones" else 0x00
            end = min(len(data), at + 1 + len(chunk))
            data[at:end] = bytes([fill]) * (end - at)
    return bytes(data)


def _fuzz_bodies(codec: _Codec) -> st.SearchStrategy[bytes]:
    seeds: list[st.SearchStrategy[bytes]] = [st.binary(max_size=64)]
    trips = codec.declaration.get("round_trips", ())
    if codec.encode is not None and trips:
        encode = codec.encode
        settings_ = _settings(codec)

        def body_of(answer: Any, trip: RoundTrip) -> bytes:
            media_type = MediaType(codec.essence, dict(trip.get("params", {})))
            try:
                result = encode(answer, media_type, Context(settings=settings_))
                return _encoded(result, "fuzz", codec.essence)[0] if result is not None else b""
            except HTTPError:
                return b""

        for trip in trips:
            seeds.append(_round_trip_strategy(trip).map(partial(_swap(body_of), trip)))
    operations = st.lists(
        st.tuples(st.sampled_from(_MUTATIONS), st.integers(0, 1 << 16), st.binary(max_size=8)),
        max_size=4,
    )
    return st.builds(_mutate, st.one_of(seeds), operations)


def _swap(function: Callable[[Any, RoundTrip], bytes]) -> Callable[[RoundTrip, Any], bytes]:
    return lambda trip, answer: function(answer, trip)


def _hostile(
    codec: _Codec, body: bytes, signature: SignatureDef, params: Mapping[str, str]
) -> None:
    essence = codec.essence
    assert codec.decode is not None
    context = Context(
        settings=_settings(codec, FUZZ_LIMITS),
        signature_defs={"serving_default": signature},
        request_content_type=essence,
        content_length=len(body),
    )
    try:
        value = codec.decode(body, MediaType(essence, dict(params)), context)
        if value is None:
            return
        request = build_request(value, context)
    except HTTPError as exc:
        if not _allowed(exc):
            raise _fail(
                "hostile body",
                essence,
                f"answered {exc.status_code} ({exc.message}); a bad body is a 4xx",
            ) from exc
        return
    except Exception as exc:
        raise _fail(
            "hostile body",
            essence,
            f"raised {type(exc).__name__}: {exc} (a bad body must raise the library's HTTPError)",
        ) from exc
    if isinstance(request, PredictArrays):
        for name, array in request.inputs.items():
            size = int(getattr(array, "size", 0))
            if size > FUZZ_LIMITS.max_elements:
                raise _fail(
                    "hostile body",
                    essence,
                    f"decoded input {name!r} of {size} elements, over limits.max_elements "
                    f"({FUZZ_LIMITS.max_elements}): sizes read from a body must be checked",
                )


def _any_answer(codec: _Codec, answer: Any) -> None:
    essence = codec.essence
    assert codec.encode is not None
    context = Context(settings=_settings(codec), accept_header=essence)
    try:
        result = codec.encode(answer, MediaType(essence), context)
    except HTTPError as exc:
        if not _allowed(exc):
            raise _fail(
                "any answer", essence, f"answered {exc.status_code} ({exc.message}); use 406"
            ) from exc
        return
    except Exception as exc:
        raise _fail(
            "any answer",
            essence,
            f"raised {type(exc).__name__}: {exc} (an answer the format cannot hold is a 406)",
        ) from exc
    if result is not None:
        _encoded(result, "any answer", essence)


# -- running ------------------------------------------------------------------------------------------


def _run(
    test: Callable[..., None], strategy: st.SearchStrategy[Any], examples: int, key: str
) -> None:
    """Run ``test`` on ``examples`` values of ``strategy`` under the current Hypothesis profile."""

    def property_(value: Any) -> None:
        test(value)

    property_.__qualname__ = f"check_codec.<{key}>"
    run = settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )(given(strategy)(property_))
    run._hypothesis_internal_add_digest = key.encode()  # type: ignore[attr-defined]
    run()


def check_codec(
    media_type: str,
    *,
    plugin: object | str | None = None,
    registry: Registry | None = None,
    declaration: CodecDeclaration | None = None,
    examples: int = 100,
    fuzz_examples: int = 200,
) -> None:
    """Run the conformance suite on the codec of ``media_type``; raise :class:`ConformanceError`.

    ``plugin`` is the codec's plugin: a module or object with hookimpls (registered in
    ``registry``, by default a new one with the built-ins), or the name of a plugin registered in
    ``registry`` (by default :func:`installed_registry`: the built-ins and every installed entry
    point, so conflicts between installed plugins show). ``None`` takes the plugin asked first for
    ``media_type``. ``declaration`` defaults to the plugin's ``TFIO_HANDLERS_CONFORMANCE`` entry for
    ``media_type`` (see :mod:`tfio_handlers.testing.declarations`).

    ``examples`` bounds each round trip and the any-answer check; ``fuzz_examples`` the hostile
    bodies. Hypothesis' current profile decides the seed (derandomized in CI).
    """
    codec = _resolve(media_type, plugin, registry, declaration)
    _check_builtin_conflicts(codec)
    _check_declarations(codec)
    key = f"{codec.plugin_name}:{codec.essence}"
    # a round trip of dtypes this installation cannot hold (bfloat16 without ml_dtypes) is skipped
    trips = [
        trip
        for trip in codec.declaration.get("round_trips", ())
        if "dtypes" not in trip or available_dtypes(trip["dtypes"])
    ]
    codec.declaration = {**codec.declaration, "round_trips": trips}
    if trips and (codec.decode is None or codec.encode is None):
        raise _fail(
            "round trip",
            codec.essence,
            "round trips are declared and the plugin has "
            + ("no decoder" if codec.decode is None else "no encoder"),
        )
    for i, trip in enumerate(trips):
        _run(
            partial(_round_trip, codec, trip),
            _round_trip_strategy(trip),
            examples,
            f"{key}:round-trip:{i}",
        )
    if codec.decode is not None:
        params = [dict(t.get("params", {})) for t in trips] or [{}]
        _run(
            lambda drawn: _hostile(codec, drawn[0], drawn[1], drawn[2]),
            st.tuples(
                _fuzz_bodies(codec),
                signatures(methods=("predict", "classify", "regress")),
                st.sampled_from(params),
            ),
            fuzz_examples,
            f"{key}:hostile",
        )
    if codec.encode is not None:
        _run(
            lambda answer: _any_answer(codec, answer),
            responses(),
            examples,
            f"{key}:any-answer",
        )


def iter_declared(plugin: object) -> Iterator[str]:
    """The canonical media types ``plugin`` registers, each once, in registration order."""
    yield from dict.fromkeys(d.media_type.strip().lower() for d in declared_codecs(plugin))
