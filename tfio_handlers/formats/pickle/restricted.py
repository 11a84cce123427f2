"""The restricted unpickler: numpy arrays, dtypes, numpy scalars and plain builtin values, nothing else.

Unpickling runs whatever callables a pickle names (CWE-502), so :class:`RestrictedUnpickler`'s
``find_class`` knows only what rebuilding those values takes, and hands out small replacements
for numpy's own callables that validate their arguments and build arrays with ``np.frombuffer``
(numpy's ``ndarray.__setstate__`` crashes the process on some malformed states). Length prefixes
are checked against the bytes left before anything is allocated, calls are charged against a
budget, and :class:`ValueWalk` checks the loaded value once (expansion through shared references,
depth, element count). :func:`restricted_loads` is the whole of it: bytes in, plain data out, 400
on anything else.
"""

from __future__ import annotations

import io
import pickle
import re
import struct
from collections.abc import Callable
from typing import Any, ClassVar, Literal, cast

import numpy as np
from numpy.typing import NDArray

from ...config import Limits
from ...errors import (
    BadRequest,
    HTTPError,
    PayloadTooLarge,
)
from .._request import (
    check_code_points,
    check_string,
)

__all__ = ["RestrictedUnpickler", "ValueWalk", "restricted_loads"]

Array = NDArray[Any]

# -- the restricted unpickler ----------------------------------------------------------------------


_DTYPE_CODE = re.compile(r"[<>|=]?(?:b1|\?|[iu][1248]|f[248]|c(?:8|16)|[US]\d*|O[48]?)")


class _NDArrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle: only :func:`_reconstruct` takes it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise pickle.UnpicklingError("numpy.ndarray cannot be called from a pickle")


class _DTypeProxy:
    """A dtype named by a pickle (``numpy.dtype('f4', False, True)`` plus its ``BUILD`` state)."""

    __slots__ = ("code", "elsize", "order")

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if isinstance(code, bytes):
            code = code.decode("latin-1")
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
            raise pickle.UnpicklingError(f"dtype {code!r:.40} is not allowed")
        self.code = code
        self.order = "="
        self.elsize = -1

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 6:
            raise pickle.UnpicklingError("bad dtype state")
        order, subarray, names, fields, elsize = state[1:6]
        if subarray is not None or names is not None or fields is not None:
            raise pickle.UnpicklingError("structured dtypes are not allowed")
        if not isinstance(order, str) or order not in "<>|=" or not isinstance(elsize, int):
            raise pickle.UnpicklingError("bad dtype state")
        self.order, self.elsize = order, elsize

    def resolve(self) -> np.dtype[Any]:
        dtype = np.dtype(self.code)
        if dtype.kind in "US" and dtype.itemsize == 0 and self.elsize > 0:
            unit = 4 if dtype.kind == "U" else 1
            dtype = np.dtype(f"{dtype.kind}{self.elsize // unit}")
        if self.order in "<>" and dtype.byteorder != "|":
            dtype = dtype.newbyteorder(cast("Any", self.order))
        return dtype


def _dtype_of(value: Any) -> np.dtype[Any]:
    if isinstance(value, _DTypeProxy):
        return value.resolve()
    raise pickle.UnpicklingError(f"expected a dtype, got {type(value).__name__}")


def _shape_of(value: Any, limits: Limits) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or len(value) > limits.max_depth:
        raise pickle.UnpicklingError("bad array shape")
    for dim in value:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            raise pickle.UnpicklingError("bad array shape")
    limits.check_shape(value, "pickled array")
    return tuple(value)


def _raw_bytes(value: Any) -> bytes | bytearray | memoryview:
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, (bytes, bytearray)):
        return value
    if isinstance(value, pickle.PickleBuffer):
        return value.raw()
    raise pickle.UnpicklingError(f"expected array bytes, got {type(value).__name__}")


def _array_from_bytes(
    raw: bytes | bytearray | memoryview, dtype: np.dtype[Any], shape: tuple[int, ...], order: str
) -> Array:
    count = 1
    for dim in shape:
        count *= dim
    if dtype.hasobject or dtype.kind not in "biufcUS":
        raise pickle.UnpicklingError(f"arrays of dtype {dtype} are not allowed")
    if len(raw) != count * dtype.itemsize:
        raise pickle.UnpicklingError("array bytes do not match its shape")
    if dtype.itemsize == 0:
        return np.zeros(shape, dtype=dtype)
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    array = flat.reshape(shape, order="F" if order == "F" else "C")
    check_code_points(array, "pickled array")
    return array


class _ArrayProxy:
    """What ``numpy._core.multiarray._reconstruct`` gives: an empty array that ``BUILD`` fills."""

    __slots__ = ("array", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.array: Array | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("bad array state")
        shape_value, dtype_value, fortran, raw = state[-4:]
        shape = _shape_of(shape_value, self.limits)
        dtype = _dtype_of(dtype_value)
        order: Literal["C", "F"] = "F" if fortran else "C"
        if not dtype.hasobject:
            self.array = _array_from_bytes(_raw_bytes(raw), dtype, shape, order)
            return
        count = 1
        for dim in shape:
            count *= dim
        if dtype.kind != "O" or not isinstance(raw, list) or len(raw) != count:
            raise pickle.UnpicklingError("object array items do not match its shape")
        flat = np.empty(count, dtype=object)
        for index, item in enumerate(raw):
            flat[index] = item
        self.array = flat.reshape(shape, order=order)


def _checked_bytes(kind: type[bytes] | type[bytearray]) -> Callable[..., Any]:
    def build(*args: Any) -> bytes | bytearray:
        if not args:
            return kind()
        if isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{kind.__name__}(<int>) is not allowed")
        return kind(*args)

    return build


def _codecs_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Protocol 2 writes ``bytes`` as ``_codecs.encode(text, 'latin1')``; only that is allowed."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in ("latin1", "utf8"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin-1 text")
    return text.encode(encoding, errors)


def _text(data: bytes) -> str:
    return str(data, "utf-8", "surrogatepass")


_COUNTED: dict[int, tuple[str, str, Callable[[bytes], Any]]] = {
    pickle.BINBYTES8[0]: ("BINBYTES8", "<Q", bytes),
    pickle.BINUNICODE8[0]: ("BINUNICODE8", "<Q", _text),
    pickle.BYTEARRAY8[0]: ("BYTEARRAY8", "<Q", bytearray),
    pickle.BINBYTES[0]: ("BINBYTES", "<I", bytes),
    pickle.BINUNICODE[0]: ("BINUNICODE", "<I", _text),
    pickle.LONG4[0]: ("LONG4", "<i", pickle.decode_long),
}
"""Length-prefixed opcodes: the length is checked against the bytes left before any read."""
_COUNTED_OPCODES = (
    pickle.BINBYTES8,
    pickle.BINUNICODE8,
    pickle.BYTEARRAY8,
    pickle.BINBYTES,
    pickle.BINUNICODE,
    pickle.LONG4,
)
_SCALARS = frozenset({str, bytes, int, float, bool, complex, type(None)})


def _counted_loader(opcode: int) -> Callable[[Any], None]:
    """The dispatch entry of a length-prefixed opcode: :meth:`RestrictedUnpickler._load_counted`."""

    def load(unpickler: Any) -> None:
        unpickler._load_counted(opcode)

    return load


class RestrictedUnpickler(pickle._Unpickler):
    """Loads numpy arrays, dtypes, numpy scalars and plain builtin values; refuses everything else.

    A pure-Python unpickler: its memo is a dict (the C unpickler sizes a list by the largest memo
    index, which a hostile pickle sets to 2**32) and its opcodes can be overridden.
    """

    dispatch: ClassVar[dict[int, Callable[[pickle.Unpickler], None]]] = dict(
        pickle._Unpickler.dispatch
    )

    def __init__(self, data: bytes, limits: Limits) -> None:
        self._stream = io.BytesIO(data)
        super().__init__(self._stream, fix_imports=True, encoding="latin-1")
        self.limits = limits
        self._size = len(data)
        self._budget = 2 * len(data) + 4096
        """What calls may cost in all: every value handed to a callable (``REDUCE``) is walked,
        each node counted every time a shared reference repeats it, before the call is made."""
        bytes_ = _checked_bytes(bytes)
        scalar: Callable[..., Any] = self._scalar
        reconstruct: Callable[..., Any] = self._reconstruct
        frombuffer: Callable[..., Any] = self._frombuffer
        self.allowed: dict[tuple[str, str], Any] = {
            ("numpy", "ndarray"): _NDArrayMarker,
            ("numpy", "dtype"): _DTypeProxy,
            ("_codecs", "encode"): _codecs_encode,
        }
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            self.allowed[(module, "_reconstruct")] = reconstruct
            self.allowed[(module, "scalar")] = scalar
            self.allowed[(module, "dtype")] = _DTypeProxy
        for module in ("numpy.core.numeric", "numpy._core.numeric"):
            self.allowed[(module, "_frombuffer")] = frombuffer
        plain: dict[str, Any] = {
            "list": list,
            "dict": dict,
            "tuple": tuple,
            "set": set,
            "frozenset": frozenset,
            "int": int,
            "float": float,
            "complex": complex,
            "str": str,
            "bool": bool,
            "bytes": bytes_,
            "bytearray": _checked_bytes(bytearray),
        }
        for module in ("builtins", "__builtin__"):
            for name, value in plain.items():
                self.allowed[(module, name)] = value

    def _remaining(self) -> int:
        """Bytes of the body not read yet (in the current frame and after it)."""
        left = self._size - self._stream.tell()
        frame = self._unframer.current_frame  # type: ignore[attr-defined]
        if frame is not None:
            left += len(frame.getbuffer()) - frame.tell()
        return left

    def _claimed(self, size_format: str, opcode: str) -> int:
        """Read a length prefix; refuse a length beyond what the body still holds, so a
        12-byte pickle claiming 4 GiB allocates nothing (``BYTEARRAY8`` would allocate first)."""
        read = self.read  # type: ignore[attr-defined]
        (length,) = struct.unpack(size_format, read(struct.calcsize(size_format)))
        if length < 0 or length > self._remaining():
            raise pickle.UnpicklingError(
                f"{opcode} claims {length} bytes, but the pickle holds {self._remaining()} more"
            )
        return int(length)

    def _load_counted(self, opcode: int) -> None:
        name, size_format, build = _COUNTED[opcode]
        length = self._claimed(size_format, name)
        data = self.read(length)  # type: ignore[attr-defined]
        if len(data) != length:
            raise pickle.UnpicklingError(f"{name}: the pickle ends inside its data")
        self.append(build(data))  # type: ignore[attr-defined]

    def _load_frame(self) -> None:
        length = self._claimed("<Q", "FRAME")
        self._unframer.load_frame(length)  # type: ignore[attr-defined]

    def _charge(self, value: Any, what: str) -> None:
        """Walk ``value`` (shared references counted each time), spending the call budget;
        refuse before anything is built from a value that expands beyond the body (``str`` of a
        list of shared references is its full text)."""
        pending = [value]
        while pending:
            item = pending.pop()
            self._budget -= 1
            if isinstance(item, (str, bytes, bytearray)):
                self._budget -= len(item)
            elif isinstance(item, (list, tuple, set, frozenset)):
                pending.extend(item)
            elif isinstance(item, dict):
                pending.extend(item.keys())
                pending.extend(item.values())
            if self._budget < 0:
                raise BadRequest(
                    f"The pickle calls {what} on a value that expands to more data than the "
                    "pickle holds (shared references); refused"
                )

    def _load_reduce(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        args = stack.pop()
        func = stack[-1]
        self._charge(args, getattr(func, "__name__", type(func).__name__))
        stack[-1] = func(*args)

    def _instantiate(self, klass: Any, args: Any) -> None:
        self._charge(args, getattr(klass, "__name__", type(klass).__name__))
        super()._instantiate(klass, args)  # type: ignore[misc]

    def _flat_keys(self, keys: Any, opcode: str) -> None:
        """Dict keys and set items must be scalars: hashing a tuple of shared tuples is
        exponential, and the loaded value may hold only string keys and no sets of tuples."""
        for key in keys:
            if type(key) not in _SCALARS:
                raise pickle.UnpicklingError(
                    f"{opcode}: a {type(key).__name__} as a dict key or set item is not allowed"
                )

    def _load_setitem(self) -> None:
        self._flat_keys(self.stack[-2:-1], "SETITEM")  # type: ignore[attr-defined]
        super().load_setitem()  # type: ignore[misc]

    def _load_setitems(self) -> None:
        self._flat_keys(self.stack[0::2], "SETITEMS")  # type: ignore[attr-defined]
        super().load_setitems()  # type: ignore[misc]

    def _load_dict(self) -> None:
        self._flat_keys(self.stack[0::2], "DICT")  # type: ignore[attr-defined]
        super().load_dict()  # type: ignore[misc]

    def _load_additems(self) -> None:
        self._flat_keys(self.stack, "ADDITEMS")  # type: ignore[attr-defined]
        super().load_additems()  # type: ignore[misc]

    def _load_frozenset(self) -> None:
        self._flat_keys(self.stack, "FROZENSET")  # type: ignore[attr-defined]
        super().load_frozenset()  # type: ignore[misc]

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> _ArrayProxy:
        if subtype is not _NDArrayMarker:
            raise pickle.UnpicklingError("only numpy.ndarray can be reconstructed")
        return _ArrayProxy(self.limits)

    def _scalar(self, dtype_value: Any, data: Any = None) -> Any:
        dtype = _dtype_of(dtype_value)
        if dtype.hasobject:
            return data
        raw = _raw_bytes(data)
        if dtype.kind not in "biufcUS" or len(raw) != dtype.itemsize or dtype.itemsize == 0:
            raise pickle.UnpicklingError("bad numpy scalar")
        return np.frombuffer(raw, dtype=dtype, count=1)[0]

    def _frombuffer(self, buffer: Any, dtype_value: Any, shape: Any, order: Any = "C") -> Array:
        return _array_from_bytes(
            _raw_bytes(buffer), _dtype_of(dtype_value), _shape_of(shape, self.limits), str(order)
        )

    def _load_build(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        state = stack.pop()
        target = stack[-1]
        if not isinstance(target, (_ArrayProxy, _DTypeProxy)):
            raise pickle.UnpicklingError(f"BUILD on a {type(target).__name__} is not allowed")
        target.__setstate__(state)

    def _refuse(self) -> None:
        raise pickle.UnpicklingError("this pickle opcode is not allowed")

    dispatch[pickle.BUILD[0]] = _load_build  # type: ignore[assignment]
    dispatch[pickle.REDUCE[0]] = _load_reduce  # type: ignore[assignment]
    dispatch[pickle.FRAME[0]] = _load_frame  # type: ignore[assignment]
    dispatch[pickle.SETITEM[0]] = _load_setitem  # type: ignore[assignment]
    dispatch[pickle.SETITEMS[0]] = _load_setitems  # type: ignore[assignment]
    dispatch[pickle.DICT[0]] = _load_dict  # type: ignore[assignment]
    dispatch[pickle.ADDITEMS[0]] = _load_additems  # type: ignore[assignment]
    dispatch[pickle.FROZENSET[0]] = _load_frozenset  # type: ignore[assignment]
    for _opcode in _COUNTED_OPCODES:
        dispatch[_opcode[0]] = _counted_loader(_opcode[0])
    for _opcode in (
        pickle.NEWOBJ,
        pickle.NEWOBJ_EX,
        pickle.EXT1,
        pickle.EXT2,
        pickle.EXT4,
        pickle.NEXT_BUFFER,
        pickle.READONLY_BUFFER,
        pickle.PERSID,
        pickle.BINPERSID,
    ):
        dispatch[_opcode[0]] = _refuse  # type: ignore[assignment]
    del _opcode


class ValueWalk:
    """One pass over an unpickled value: resolves array proxies, refuses other types, and bounds
    expansion (shared references), depth and element count."""

    def __init__(self, limits: Limits, size: int) -> None:
        self.limits = limits
        self.budget = size + 4096
        self.elements = 0

    def spend(self, amount: int) -> None:
        self.budget -= amount
        if self.budget < 0:
            raise BadRequest(
                "The pickle expands to more data than it holds (shared references); refused"
            )

    def count(self, amount: int) -> None:
        self.elements += amount
        self.limits.check_elements(self.elements, "pickle body")

    def value(self, item: Any, depth: int = 0) -> Any:
        if depth > self.limits.max_depth:
            raise BadRequest(
                f"The pickle nests deeper than the limit of {self.limits.max_depth} levels"
            )
        self.spend(1)
        if isinstance(item, _ArrayProxy):
            if item.array is None:
                raise BadRequest("The pickle holds an array without data")
            item = item.array
        if isinstance(item, np.ndarray):
            return self.array(item, depth)
        if isinstance(item, np.generic):
            return self.value(item.item(), depth)
        if item is None or isinstance(item, (bool, int, float, complex)):
            self.count(1)
            return item
        if isinstance(item, (str, bytes, bytearray)):
            self.spend(len(item))
            check_string(
                item if not isinstance(item, bytearray) else bytes(item), self.limits, "pickle body"
            )
            self.count(1)
            return bytes(item) if isinstance(item, bytearray) else item
        if isinstance(item, (list, tuple)):
            return [self.value(sub, depth + 1) for sub in item]
        if isinstance(item, dict):
            out: dict[str, Any] = {}
            for key, sub in item.items():
                if isinstance(key, bytes):
                    key = key.decode("utf-8", "replace")
                if not isinstance(key, str):
                    raise BadRequest(
                        f"The pickle holds a dict key of type {type(key).__name__}; keys must be "
                        "strings (input or feature names)"
                    )
                out[key] = self.value(sub, depth + 1)
            return out
        if isinstance(item, (set, frozenset)):
            raise BadRequest("The pickle holds a set, which has no order to make a tensor of")
        raise BadRequest(f"The pickle holds a {type(item).__name__}, which is not plain data")

    def array(self, array: Array, depth: int) -> Array:
        if array.ndim > self.limits.max_depth:
            raise BadRequest(f"The pickle holds an array of rank over {self.limits.max_depth}")
        self.count(array.size)
        if array.dtype.kind != "O":
            self.spend(array.nbytes)
            return array
        flat = np.empty(array.size, dtype=object)
        for index, item in enumerate(array.reshape(-1).tolist()):
            flat[index] = self.value(item, depth + 1)
        return flat.reshape(array.shape)


def restricted_loads(data: bytes, limits: Limits) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` and check the value; 400 on anything else."""
    try:
        value = RestrictedUnpickler(data, limits).load()
    except HTTPError:
        raise
    except RecursionError:
        raise BadRequest("The pickle nests too deeply") from None
    except MemoryError:
        raise PayloadTooLarge("The pickle needs more memory than allowed") from None
    except Exception as exc:
        raise BadRequest(f"Refused pickle: {type(exc).__name__}: {exc}"[:500]) from None
    return ValueWalk(limits, len(data)).value(value)
