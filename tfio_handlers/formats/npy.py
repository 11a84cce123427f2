"""The npy and npz codecs (``application/x-npy``, ``application/x-npz``): numpy's own file formats.

Decoding never unpickles: object arrays (which need pickle) are refused, and ``np.load`` is not used
at all. The header is read with :mod:`numpy.lib.format`'s header reader (a literal, not code), its
dtype and shape are checked against the limits, and the data must be exactly as long as the header
says before a single element is touched; the array is then a zero-copy, read-only view of the body.
An npz is a zip of ``<name>.npy`` members; each is read the same way, with decompression bounded so
a zip bomb stops at ``max_body_bytes``.

* ``x-npy``: the array is the batch of the signature's single input (its first dimension is the
  instances), or, for a classify/regress signature, one example per row with the feature ``inputs``;
* ``x-npz``: member names are input names (predict) or feature names (classify/regress, one
  example per row of every member). One member for a single-input signature is that input whatever
  its name (``np.savez(f, x)`` names it ``arr_0``).

Arrays are cast to the signature input's dtype only when no value changes (see
:func:`tfio_handlers.formats._request.conform`). Numeric, bool and string (``U`` and ``S``) dtypes are
accepted, in either byte order and in Fortran order.

Encoding: one output (or regress result) is one ``.npy``; several outputs need ``x-npz`` (see
:func:`encode_npy`). Strings are written as ``S`` (bytes) arrays, bfloat16 as float32.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
from numpy.lib import format as npformat
from numpy.typing import NDArray

from ..config import Limits
from ..context import Context
from ..errors import BadRequest, HTTPError, NotAcceptable, PayloadTooLarge
from ..hookspecs import Register, hookimpl
from ..media import MediaType, parse_accept
from ..protocol.answer_size import binary_bytes, check_response
from ..protocol.requests import choose_method
from ._request import (
    InputSpec,
    check_code_points,
    conform,
    input_specs,
    object_strings,
)
from ._response import response_arrays

__all__ = [
    "NPY",
    "NPZ",
    "decode_npy",
    "decode_npz",
    "encode_npy",
    "encode_npz",
    "read_npy",
    "read_npz",
    "register_codecs",
    "write_npy",
    "write_npz",
]

NPY = "application/x-npy"
NPZ = "application/x-npz"

Array = NDArray[Any]

_KINDS = frozenset("biufcUS")


@hookimpl
def register_codecs(register: Register) -> None:
    """Declare ``application/x-npy`` and ``application/x-npz`` (binary types)."""
    register(NPY, decode=decode_npy, encode=encode_npy, text=False)
    register(NPZ, decode=decode_npz, encode=encode_npz, text=False)


# -- reading ---------------------------------------------------------------------------------------


def read_npy(data: bytes, limits: Limits, where: str = "npy body") -> Array:
    """Parse one ``.npy`` without pickle, checking the header against ``limits`` and the data length.

    Returns a read-only view of ``data`` (a copy only for Fortran order or a foreign byte order).
    """
    stream = io.BytesIO(data)
    try:
        version = npformat.read_magic(stream)
    except ValueError as exc:
        raise BadRequest(f"{where} is not an npy array: {exc}") from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(stream)
        else:
            raise BadRequest(
                f"{where}: npy format version {version[0]}.{version[1]} is not supported"
            )
    except HTTPError:
        raise
    except Exception as exc:
        # The header is a Python literal read by numpy's reader (``tokenize`` and
        # ``ast.literal_eval``), which raises whatever its parsers raise on bad text: ValueError,
        # SyntaxError, tokenize.TokenError, MemoryError, RecursionError... All mean a bad header.
        raise BadRequest(f"{where}: bad npy header: {type(exc).__name__}: {exc}"[:500]) from None
    if dtype.hasobject:
        raise BadRequest(
            f"{where}: object arrays need pickle, which is never used to read npy; send a numeric "
            "or string (U or S) array"
        )
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise BadRequest(f"{where}: dtype {dtype.str} is not supported (numbers, bool, U, S)")
    if dtype.kind in "fc" and dtype.itemsize > (8 if dtype.kind == "f" else 16):
        raise BadRequest(f"{where}: dtype {dtype.str} (extended precision) is not supported")
    if not all(type(dim) is int and dim >= 0 for dim in shape):
        raise BadRequest(f"{where}: bad npy header: {shape!r:.80} is not a shape")
    limits.check_shape(shape, where)
    count = 1
    for dim in shape:
        count *= dim
    if dtype.kind == "U" and dtype.itemsize // 4 > limits.max_string_bytes:
        raise PayloadTooLarge(
            f"{where}: strings of {dtype.itemsize // 4} characters are over the limit of "
            f"{limits.max_string_bytes} bytes"
        )
    if dtype.kind == "S" and dtype.itemsize > limits.max_string_bytes:
        raise PayloadTooLarge(
            f"{where}: strings of {dtype.itemsize} bytes are over the limit of "
            f"{limits.max_string_bytes} bytes"
        )
    offset = stream.tell()
    needed = count * dtype.itemsize
    available = len(data) - offset
    if available != needed:
        raise BadRequest(
            f"{where}: the header says shape {tuple(shape)} of {dtype.str} ({needed} bytes), but "
            f"{available} bytes of data follow it"
        )
    if dtype.itemsize == 0:
        array: Array = np.zeros(shape, dtype=dtype)
    elif fortran:
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        array = np.ascontiguousarray(array.reshape(shape[::-1]).T)
    else:
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    if dtype.byteorder not in ("=", "|") and dtype.byteorder != _NATIVE:
        array = array.astype(dtype.newbyteorder("="))
    if dtype.kind == "U":
        check_code_points(array, where)
    return array


_NATIVE = "<" if np.little_endian else ">"


def read_npz(data: bytes, limits: Limits) -> dict[str, Array]:
    """Read every ``<name>.npy`` member of an npz (a zip); names keep their order in the archive.

    Decompressed bytes are bounded by ``limits.max_body_bytes`` in all (read with a bounded read,
    whatever the zip's headers claim). Whatever :mod:`zipfile` raises on a damaged archive
    (``BadZipFile``, ``zlib.error`` from a corrupt deflate stream, ``NotImplementedError`` for an
    unknown version or method, ``EOFError``, ``struct.error``, ...) is a 400: it parses bytes the
    client chose, so every exception of it is the client's, and only its calls sit in the ``try``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception as exc:
        raise BadRequest(f"The npz body is not a zip archive: {_zip_error(exc)}") from None
    arrays: dict[str, Array] = {}
    budget = limits.max_body_bytes
    elements = 0
    with archive:
        for info in infos:
            name = info.filename
            if name.endswith("/"):  # a directory (``ZipInfo.is_dir`` fails on an empty name)
                continue
            if not name.endswith(".npy"):
                raise BadRequest(f"npz member {name!r} is not an .npy array")
            key = name[: -len(".npy")]
            if key in arrays:
                raise BadRequest(f"npz member {name!r} appears twice")
            if info.file_size > budget:
                raise PayloadTooLarge(
                    f"npz member {name!r} holds {info.file_size} bytes, over what is left of the "
                    f"limit of {limits.max_body_bytes} bytes"
                )
            try:
                with archive.open(info) as member:
                    content = member.read(budget + 1)
            except Exception as exc:
                raise BadRequest(f"npz member {name!r} cannot be read: {_zip_error(exc)}") from None
            if len(content) > budget:
                raise PayloadTooLarge(
                    f"npz members decompress to more than the limit of {limits.max_body_bytes} "
                    "bytes"
                )
            budget -= len(content)
            array = read_npy(content, limits, f"npz member {name!r}")
            elements += array.size
            limits.check_elements(elements, "npz body")
            arrays[key] = array
    if not arrays:
        raise BadRequest("The npz body holds no arrays")
    return arrays


def _zip_error(exc: Exception) -> str:
    """``zipfile``'s complaint, named (``zlib.error`` says only ``Error -3 ...``), kept short."""
    return f"{type(exc).__name__}: {exc}"[:300]


# -- decoding --------------------------------------------------------------------------------------


def _feature_values(row: Array, limits: Limits, where: str) -> list[Any]:
    if row.dtype.kind in "OUS":
        values: list[Any] = object_strings(row, limits, where).ravel().tolist()
        return values
    flat: list[Any] = row.ravel().tolist()
    return flat


def _single(specs: dict[str, InputSpec], what: str) -> InputSpec | None:
    if len(specs) > 1:
        raise BadRequest(
            f"{what} holds one array, but the signature has inputs {', '.join(specs)}: send "
            "application/x-npz with one member per input"
        )
    return next(iter(specs.values())) if specs else None


def decode_npy(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode an ``.npy`` body: the batch of the single input, or one example per row.

    The batch rule is the JSON codec's for plain lists: an array of one dimension or none is one
    record (``np.array([6.4, 3.2, 4.5, 1.5])`` answers as the JSON body ``[6.4, 3.2, 4.5, 1.5]``
    does), so it gets a batch dimension of 1; an array of more dimensions is a batch of records
    along its first one.
    """
    limits = context.limits
    limits.check_body(len(body))
    array = read_npy(body, limits)
    if array.ndim <= 1:
        array = array.reshape((1, *array.shape))
    if choose_method(context) != "predict":
        limits.check_examples(len(array), "npy body")
        return [
            {"inputs": _feature_values(row, limits, f"npy row {i}")} for i, row in enumerate(array)
        ]
    spec = _single(input_specs(context), "The npy body")
    return conform(array, spec, limits, "npy body")


def decode_npz(body: bytes, media_type: MediaType, context: Context) -> Any:
    """Decode an ``.npz`` body: named inputs, or one example per row of the named features."""
    limits = context.limits
    limits.check_body(len(body))
    arrays = read_npz(body, limits)
    if choose_method(context) != "predict":
        counts = {name: (array.shape[0] if array.ndim else 1) for name, array in arrays.items()}
        if len(set(counts.values())) > 1:
            raise BadRequest(
                "npz members must have the same number of rows (one example per row): "
                + ", ".join(f"{name}: {count}" for name, count in counts.items())
            )
        count = next(iter(counts.values()))
        limits.check_examples(count, "npz body")
        rows = {name: (array if array.ndim else array.reshape(1)) for name, array in arrays.items()}
        return [
            {
                name: _feature_values(rows[name][i], limits, f"npz member {name!r} row {i}")
                for name in rows
            }
            for i in range(count)
        ]
    specs = input_specs(context)
    if len(specs) == 1 and len(arrays) == 1:
        (name, array), spec = next(iter(arrays.items())), next(iter(specs.values()))
        if name != spec.name:
            return conform(array, spec, limits, f"npz member {name!r}")
    if specs:
        for name in arrays:
            if name not in specs:
                raise BadRequest(
                    f"npz member {name!r} is not an input of the signature (inputs: "
                    f"{', '.join(specs)})"
                )
        missing = [name for name in specs if name not in arrays]
        if missing:
            raise BadRequest(
                f"The npz body has no member for input {missing[0]!r} (inputs: {', '.join(specs)})"
            )
    return {
        name: conform(array, specs.get(name), limits, f"npz member {name!r}")
        for name, array in arrays.items()
    }


# -- encoding --------------------------------------------------------------------------------------


def _writable(array: Array, name: str, limits: Limits) -> Array:
    """An array ``np.save`` writes without pickle: strings as ``S``, bfloat16 as float32."""
    if array.dtype.kind == "O":
        items = array.ravel().tolist()
        data = [item.encode("utf-8") if isinstance(item, str) else bytes(item) for item in items]
        if any(item.endswith(b"\0") for item in data):
            raise NotAcceptable(
                f"Output {name!r} holds strings that end in NUL bytes, which npy's fixed-width "
                "bytes cannot keep (numpy drops them); ask for application/json"
            )
        width = max((len(item) for item in data), default=1) or 1
        padded = width * len(data)
        if padded > max(limits.max_body_bytes, 2 * sum(len(item) for item in data)):
            raise NotAcceptable(
                f"Output {name!r}: writing its strings at one width would take {padded} bytes; "
                "ask for application/json"
            )
        return np.array(data, dtype=f"S{width}").reshape(array.shape)
    if array.dtype.name == "bfloat16":
        return array.astype(np.float32)
    if array.dtype.kind not in _KINDS:
        raise NotAcceptable(f"Output {name!r} is {array.dtype}, which npy cannot carry")
    return array


def write_npy(array: Array) -> bytes:
    """One array as ``.npy`` bytes (never pickled)."""
    stream = io.BytesIO()
    npformat.write_array(stream, np.asarray(array), allow_pickle=False)
    return stream.getvalue()


def write_npz(arrays: dict[str, Array]) -> bytes:
    """Named arrays as an uncompressed ``.npz`` (a zip of ``<name>.npy``), never pickled."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                npformat.write_array(member, np.asarray(array), allow_pickle=False)
    return stream.getvalue()


def _accepts(context: Context, essence: str) -> bool:
    return any(
        entry.quality > 0 and entry.matches(essence)
        for entry in parse_accept(context.accept_header or "")
    )


def encode_npy(response: Any, media_type: MediaType, context: Context) -> Any:
    """One output (or the regress values) as ``.npy``.

    With several outputs (or a classify result with labels and scores) an npy cannot hold them: when
    the client's ``Accept`` also takes ``application/x-npz`` the answer is an npz with that content
    type, otherwise 406 naming the outputs.
    """
    check_response(response, context.limits, media_type.essence, binary_bytes, overhead=128)
    arrays = response_arrays(response)
    if len(arrays) == 1:
        ((name, array),) = arrays.items()
        return write_npy(_writable(array, name, context.limits))
    if _accepts(context, NPZ):
        limits = context.limits
        body = write_npz({name: _writable(array, name, limits) for name, array in arrays.items()})
        return body, NPZ
    raise NotAcceptable(
        f"The response has {len(arrays)} outputs ({', '.join(arrays)}), and application/x-npy "
        "holds one array: ask for application/x-npz"
    )


def encode_npz(response: Any, media_type: MediaType, context: Context) -> bytes:
    """Every output as a member ``<name>.npy`` of an uncompressed npz."""
    check_response(response, context.limits, NPZ, binary_bytes, overhead=128)
    arrays = response_arrays(response)
    return write_npz(
        {name: _writable(array, name, context.limits) for name, array in arrays.items()}
    )
