"""A JSON reader that accepts, rejects and reports exactly as TF Serving's RapidJSON does.

TF Serving parses request bodies with RapidJSON 1.1.0, flags ``kParseIterativeFlag |
kParseNanAndInfFlag | kParseStopWhenDoneFlag``, over a ``MemoryStream`` of the body's bytes. This
module is the slow, exact path behind :mod:`.parse`'s fast one: it is used for every body
the fast parser declines (``NaN``/``Inf`` tokens, trailing data, invalid UTF-8, a byte-order mark,
nesting deeper than the fast parser's limit, duplicate names, syntax errors), so that what is
accepted, and the English message and byte offset of what is not, match TF Serving:

* the byte-order mark bytes ``EF``, ``BB``, ``BF`` are each skipped when they lead the body, in
  that order, as RapidJSON's UTF-8 ``EncodedInputStream`` does (offsets still count them);
* a NUL byte, like the end of the body, ends the input where a token is expected;
* ``NaN``, ``Inf`` and ``Infinity``, optionally after ``-``, are numbers (``-NaN`` is NaN), and
  RapidJSON's quirks are kept: ``NaN.5`` is 0.5 and ``NaNe5`` is 0.0;
* an integer literal is an ``int`` when it fits int64/uint64 and a ``float`` otherwise; a literal
  with a fraction or exponent is a ``float``; ``Number too big`` is raised where RapidJSON raises
  it (``1e309``, ``0e400``, integers of about 309 digits) while ``10e308`` is infinity;
* strings are raw bytes: escapes are decoded, UTF-8 is not validated, a lone low surrogate escape
  becomes its three-byte (invalid) UTF-8 form, a lone high one is an error;
* anything after the root value is ignored (``kParseStopWhenDoneFlag``);
* nesting is handled with an explicit stack: depth costs memory, never Python's recursion.

Values are correctly rounded (Python's ``float``), where RapidJSON's normal-precision conversion
can be one unit in the last place off for literals of more than 15 significant digits or large
exponents: a deliberate departure shared with the fast path, so both paths always agree.

The document model is the one :mod:`.parse` documents: ``None``, ``bool``, ``int``,
``float``, ``str`` (the string's bytes when they are valid UTF-8) or ``bytes`` (when they are not),
``list``, and ``dict`` for objects, or :class:`JsonObject` for an object with a repeated name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "JsonDepthError",
    "JsonObject",
    "JsonParseError",
    "parse",
    "parse_prefix",
]

MAX_DOCUMENT_DEPTH: Final = 1_000_000
"""The deepest nesting :func:`parse` builds. TF Serving's own test nests 500,000 arrays under an
ignored key and expects success, so the default allows that; the body-size limit bounds memory."""

# RapidJSON's English messages (error/en.h), the ones these flags can produce.
DOCUMENT_EMPTY: Final = "The document is empty."
VALUE_INVALID: Final = "Invalid value."
OBJECT_MISS_NAME: Final = "Missing a name for object member."
OBJECT_MISS_COLON: Final = "Missing a colon after a name of object member."
OBJECT_MISS_COMMA: Final = "Missing a comma or '}' after an object member."
ARRAY_MISS_COMMA: Final = "Missing a comma or ']' after an array element."
STRING_INVALID_HEX: Final = "Incorrect hex digit after \\u escape in string."
STRING_SURROGATE: Final = "The surrogate pair in string is invalid."
STRING_ESCAPE: Final = "Invalid escape character in string."
STRING_MISS_QUOTE: Final = "Missing a closing quotation mark in string."
NUMBER_TOO_BIG: Final = "Number too big to be stored in double."
NUMBER_MISS_FRACTION: Final = "Miss fraction part in number."
NUMBER_MISS_EXPONENT: Final = "Miss exponent in number."


class JsonParseError(ValueError):
    """A body RapidJSON rejects: its English ``message`` and the byte ``offset`` it reports."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset: {offset}")
        self.message = message
        self.offset = offset


class JsonDepthError(ValueError):
    """The body nests deeper than the reader's ``max_depth``."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nesting deeper than {max_depth} levels")
        self.max_depth = max_depth


class JsonObject:
    """A JSON object that repeats a name: every member, in document order.

    RapidJSON keeps repeated members and finds the first; a ``dict`` would keep one value. The
    parsers return a plain ``dict`` for every object without repeats (nearly all of them) and this
    for the rest.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str | bytes, Any]]) -> None:
        self.pairs = pairs

    def items(self) -> Iterator[tuple[str | bytes, Any]]:
        """The members in document order, repeats included."""
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"JsonObject({len(self.pairs)} members)"


_WS = re.compile(rb"[ \t\n\r]*")
_DIGITS = re.compile(rb"[0-9]*")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')
# A number that needs none of RapidJSON's special cases: at most 19 integer digits (so int64 /
# uint64 decide int or float by value alone) and an exponent of at most two digits (so never too
# big). It is taken as is only when the byte after it cannot continue a number.
_SIMPLE_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]{0,18})(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,2})?")
_CONTINUES_NUMBER = frozenset(b"0123456789.eE")
# The first byte that ends a flat array of scalars, or opens something inside it.
_STRUCTURAL = re.compile(rb'[\]\[{"]')
_BIG_EXPONENT = re.compile(rb"[eE][-+]?[0-9]{3}")
_NAN: Final = float("nan")
_INF: Final = float("inf")
_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
_ESCAPES: Final = {
    0x22: b'"',
    0x5C: b"\\",
    0x2F: b"/",
    0x62: b"\b",
    0x66: b"\f",
    0x6E: b"\n",
    0x72: b"\r",
    0x74: b"\t",
}
_HEX: Final = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}

# Iterative parser states (RapidJSON's IterativeParsingState, the ones that persist).
_START, _FINISH, _OBJ_INITIAL, _MEMBER_KEY, _KV_DELIM, _MEMBER_VALUE, _MEMBER_DELIM = range(7)
_ARR_INITIAL, _ELEMENT, _ELEM_DELIM = range(7, 10)

# The error RapidJSON's HandleError reports for an unexpected token (or end) in each state.
_STATE_ERROR: Final = {
    _START: DOCUMENT_EMPTY,
    _OBJ_INITIAL: OBJECT_MISS_NAME,
    _MEMBER_DELIM: OBJECT_MISS_NAME,
    _MEMBER_KEY: OBJECT_MISS_COLON,
    _MEMBER_VALUE: OBJECT_MISS_COMMA,
    _KV_DELIM: VALUE_INVALID,
    _ARR_INITIAL: VALUE_INVALID,
    _ELEM_DELIM: VALUE_INVALID,
    _ELEMENT: ARRAY_MISS_COMMA,
}
# States in which a value may start (RapidJSON's Predict gives a value state for value tokens).
_VALUE_STATES: Final = frozenset({_START, _KV_DELIM, _ARR_INITIAL, _ELEM_DELIM})


def _finish_object(pairs: list[tuple[str | bytes, Any]]) -> dict[str | bytes, Any] | JsonObject:
    """A ``dict`` of the members, or a :class:`JsonObject` when a name repeats."""
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else JsonObject(pairs)


def parse(data: bytes, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """Parse ``data`` as TF Serving's RapidJSON does; raise :class:`JsonParseError` where it fails.

    ``max_depth`` bounds the nesting (:class:`JsonDepthError` beyond it). An empty ``data`` is
    ``The document is empty.`` at offset 0 here; TF Serving words that case differently, which
    is the caller's business. What follows the root value is ignored (:func:`parse_prefix` says
    where it begins).
    """
    return parse_prefix(data, max_depth=max_depth)[0]


def parse_prefix(data: bytes, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> tuple[Any, int]:
    """:func:`parse`'s root value and the offset just past it: ``data[end:]`` is what TF Serving
    ignores (whitespace, or a NUL byte, or more values; it may start with whitespace)."""
    n = len(data)
    pos = 0
    if n and data[0] == 0xEF:
        pos = 1
    if pos < n and data[pos] == 0xBB:
        pos += 1
    if pos < n and data[pos] == 0xBF:
        pos += 1
    pos = _WS.match(data, pos).end()  # type: ignore[union-attr]
    # Open containers: a list for an array, a list of (name, value) pairs for an object.
    stack: list[list[Any]] = []
    is_object: list[bool] = []
    names: list[Any] = []  # the pending member name of each open object (None for arrays)
    state = _START
    root: Any = None
    ws = _WS.match

    while pos < n:
        c = data[pos]
        if c == 0:
            break
        if state in _VALUE_STATES:
            if c == 0x5B or c == 0x7B:  # '[' or '{': open containers, in a run when they repeat
                while True:
                    if len(stack) >= max_depth:
                        raise JsonDepthError(max_depth)
                    stack.append([])
                    if c == 0x5B:
                        is_object.append(False)
                        names.append(None)
                        state = _ARR_INITIAL
                    else:
                        is_object.append(True)
                        names.append(None)
                        state = _OBJ_INITIAL
                    pos += 1
                    if pos < n and data[pos] in b" \t\n\r":
                        pos = ws(data, pos).end()  # type: ignore[union-attr]
                    if state == _OBJ_INITIAL or pos >= n:
                        break
                    c = data[pos]
                    if c != 0x5B and c != 0x7B:
                        break
                continue
            if c in b"]}:,":
                if c == 0x5D and state == _ARR_INITIAL:
                    value: Any = stack.pop()
                    is_object.pop()
                    names.pop()
                    pos += 1
                    state, root = _close(stack, is_object, names, value, root)
                    pos, state, root = _close_run(
                        data, pos, n, stack, is_object, names, state, root
                    )
                    continue
                raise JsonParseError(_STATE_ERROR[state], pos)
            if state == _ARR_INITIAL and c in b"-0123456789NItfn":
                m = _STRUCTURAL.search(data, pos)
                if m is not None and data[m.start()] == 0x5D:
                    values = _flat_array(data[pos : m.start()])
                    if values is not None:
                        stack[-1].extend(values)
                        pos = m.start()
                        state = _ELEMENT
                        continue
            value, pos = _scalar(data, pos, n, c)
            if state == _START:
                return value, pos
            if state == _KV_DELIM:
                stack[-1].append((names[-1], value))
                state = _MEMBER_VALUE
            else:
                stack[-1].append(value)
                state = _ELEMENT
        elif state == _ELEMENT:
            if c == 0x2C:
                state = _ELEM_DELIM
                pos += 1
            elif c == 0x5D:
                value = stack.pop()
                is_object.pop()
                names.pop()
                pos += 1
                state, root = _close(stack, is_object, names, value, root)
                pos, state, root = _close_run(data, pos, n, stack, is_object, names, state, root)
                continue
            else:
                raise JsonParseError(ARRAY_MISS_COMMA, pos)
        elif state == _MEMBER_VALUE:
            if c == 0x2C:
                state = _MEMBER_DELIM
                pos += 1
            elif c == 0x7D:
                value = _finish_object(stack.pop())
                is_object.pop()
                names.pop()
                pos += 1
                state, root = _close(stack, is_object, names, value, root)
                pos, state, root = _close_run(data, pos, n, stack, is_object, names, state, root)
                continue
            else:
                raise JsonParseError(OBJECT_MISS_COMMA, pos)
        elif state in (_OBJ_INITIAL, _MEMBER_DELIM):
            if c == 0x22:
                names[-1], pos = _string(data, pos, n)
                state = _MEMBER_KEY
            elif c == 0x7D and state == _OBJ_INITIAL:
                value = _finish_object(stack.pop())
                is_object.pop()
                names.pop()
                pos += 1
                state, root = _close(stack, is_object, names, value, root)
                pos, state, root = _close_run(data, pos, n, stack, is_object, names, state, root)
                continue
            else:
                raise JsonParseError(OBJECT_MISS_NAME, pos)
        elif state == _MEMBER_KEY:
            if c != 0x3A:
                raise JsonParseError(OBJECT_MISS_COLON, pos)
            state = _KV_DELIM
            pos += 1
        if state == _FINISH:
            return root, pos
        if pos < n and data[pos] in b" \t\n\r":
            pos = ws(data, pos).end()  # type: ignore[union-attr]
    if state == _FINISH:
        return root, pos
    raise JsonParseError(_STATE_ERROR[state], pos)


def _close(
    stack: list[list[Any]], is_object: list[bool], names: list[Any], value: Any, root: Any
) -> tuple[int, Any]:
    """Hand a finished container to its parent; the state that follows, and the root if done."""
    if not stack:
        return _FINISH, value
    if is_object[-1]:
        stack[-1].append((names[-1], value))
        return _MEMBER_VALUE, root
    stack[-1].append(value)
    return _ELEMENT, root


def _close_run(
    data: bytes,
    pos: int,
    n: int,
    stack: list[list[Any]],
    is_object: list[bool],
    names: list[Any],
    state: int,
    root: Any,
) -> tuple[int, int, Any]:
    """Close the brackets that follow at once (``]]]]``), the common end of deep nesting."""
    while state != _FINISH:
        if pos < n and data[pos] in b" \t\n\r":
            pos = _WS.match(data, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            break
        c = data[pos]
        if c == 0x5D and state == _ELEMENT:
            value: Any = stack.pop()
        elif c == 0x7D and state == _MEMBER_VALUE:
            value = _finish_object(stack.pop())
        else:
            break
        is_object.pop()
        names.pop()
        pos += 1
        state, root = _close(stack, is_object, names, value, root)
    if state != _FINISH and pos < n and data[pos] in b" \t\n\r":
        pos = _WS.match(data, pos).end()  # type: ignore[union-attr]
    return pos, state, root


def _flat_array(segment: bytes) -> list[Any] | None:
    """The contents of a flat array (no strings, arrays or objects) in bulk, or None.

    The standard library's C scanner reads such an array exactly as RapidJSON does, as long as
    nothing needs RapidJSON's special cases: its NaN/Infinity/-Infinity tokens are RapidJSON's
    too, and whatever else it accepts is plain JSON. Integers beyond 64 bits and numbers too big
    for a double (exponents of three digits, overflowing literals) are left to the token reader,
    as is anything the scanner rejects.
    """
    if (b"e" in segment or b"E" in segment) and _BIG_EXPONENT.search(segment):
        return None
    try:
        values: list[Any] = json.loads(b"[" + segment + b"]")
    except ValueError:
        return None
    kinds = set(map(type, values))
    if int in kinds:
        ints = [v for v in values if type(v) is int]
        if min(ints) < _INT_MIN or max(ints) > _UINT_MAX:
            return None
    if float in kinds:
        infinities = values.count(_INF) + values.count(-_INF)
        if infinities != segment.count(b"Infinity"):
            return None  # an overflowing literal: RapidJSON says it is too big
    return values


def _simple_value(token: bytes) -> Any:
    """The value of a token that ``_SIMPLE_NUMBER`` (or a NaN/Inf token) matches in full."""
    if b"." in token or b"e" in token or b"E" in token:
        return float(token)
    if b"N" in token:
        return _NAN  # RapidJSON's NaN ignores the sign
    if b"I" in token:
        return -_INF if token[0] == 0x2D else _INF
    value = int(token)
    return value if value >= _INT_MIN else float(token)


def _scalar(data: bytes, pos: int, n: int, c: int) -> tuple[Any, int]:
    """RapidJSON's ParseValue for anything but a container: the value and the position after it."""
    if c == 0x22:
        return _string(data, pos, n)
    if c == 0x6E:
        return None, _literal(data, pos, n, b"null")
    if c == 0x74:
        return True, _literal(data, pos, n, b"true")
    if c == 0x66:
        return False, _literal(data, pos, n, b"false")
    m = _SIMPLE_NUMBER.match(data, pos)
    if m is not None:
        end = m.end()
        if end >= n or data[end] not in _CONTINUES_NUMBER:
            return _simple_value(m.group()), end
    return _number(data, pos, n)


def _literal(data: bytes, pos: int, n: int, word: bytes) -> int:
    """``null``/``true``/``false``: the error is at the first byte that differs."""
    end = pos + len(word)
    if data[pos:end] == word:
        return end
    i = pos + 1
    while i < n and i < end and data[i] == word[i - pos]:
        i += 1
    raise JsonParseError(VALUE_INVALID, i)


def _consume(data: bytes, pos: int, n: int, expect: bytes) -> int:
    """Consume bytes of ``expect`` while they match (RapidJSON's ``Consume`` chain)."""
    for b in expect:
        if pos < n and data[pos] == b:
            pos += 1
        else:
            return -pos - 1  # failed here
    return pos


def _number(data: bytes, pos: int, n: int) -> tuple[Any, int]:
    """RapidJSON's ParseNumber, every branch: the value and the position after the number."""
    start = pos
    minus = pos < n and data[pos] == 0x2D
    if minus:
        pos += 1
    c = data[pos] if pos < n else 0
    int_text = b""
    special: float | None = None
    if c == 0x30:
        int_text = b"0"
        pos += 1
    elif 0x31 <= c <= 0x39:
        end = _DIGITS.match(data, pos).end()  # type: ignore[union-attr]
        int_text = data[pos:end]
        pos = end
    elif c == 0x4E or c == 0x49:  # 'N' or 'I'
        # Consume('N') && Consume('a') && Consume('N'), else Consume('I') && ... from where it
        # stopped: so "NInf" and "NaInf" are infinity, as in RapidJSON.
        r = _consume(data, pos, n, b"NaN")
        if r >= 0:
            special = _NAN
            pos = r
        else:
            pos = -r - 1
            r = _consume(data, pos, n, b"Inf")
            if r < 0:
                raise JsonParseError(VALUE_INVALID, -r - 1)
            pos = r
            special = -_INF if minus else _INF
            if pos < n and data[pos] == 0x69:  # 'i': must be "inity"
                r = _consume(data, pos, n, b"inity")
                if r < 0:
                    raise JsonParseError(VALUE_INVALID, -r - 1)
                pos = r
    else:
        raise JsonParseError(VALUE_INVALID, pos)

    # The integer part, as RapidJSON classifies it: an integer, or too big for one (a double).
    big = False
    if len(int_text) >= 19:
        limit = 2**63 if minus else _UINT_MAX
        if len(int_text) > 20 or int(int_text) > limit:
            big = True
            if len(int_text) > 300:
                head = 20
                while int(int_text[:head]) > limit:
                    head -= 1
                _check_big_integer(int_text, head, start)

    frac = b""
    if pos < n and data[pos] == 0x2E:
        pos += 1
        if not (pos < n and 0x30 <= data[pos] <= 0x39):
            raise JsonParseError(NUMBER_MISS_FRACTION, pos)
        end = _DIGITS.match(data, pos).end()  # type: ignore[union-attr]
        frac = data[pos:end]
        pos = end
    has_exp = False
    exp_text = b""
    exp_minus = False
    if pos < n and data[pos] in b"eE":
        has_exp = True
        pos += 1
        if pos < n and data[pos] in b"+-":
            exp_minus = data[pos] == 0x2D
            pos += 1
        if not (pos < n and 0x30 <= data[pos] <= 0x39):
            raise JsonParseError(NUMBER_MISS_EXPONENT, pos)
        end = _DIGITS.match(data, pos).end()  # type: ignore[union-attr]
        exp_text = data[pos:end]
        pos = end
        if not exp_minus:
            stripped = exp_text.lstrip(b"0")
            if len(stripped) >= 3:  # above 99: RapidJSON's bound may bite
                max_exp = 308 - _exp_frac(int_text, frac, big)
                if len(stripped) > len(str(max_exp)) or int(stripped) > max_exp:
                    raise JsonParseError(NUMBER_TOO_BIG, start)

    if special is not None and not frac and not has_exp:
        return special, pos
    if not frac and not has_exp and not big and special is None:
        value = int(int_text)
        return (-value if minus else value), pos
    text = (b"-" if minus else b"") + (int_text or b"0")
    if frac:
        text += b"." + frac
    if has_exp:
        text += (b"e-" if exp_minus else b"e") + exp_text
    return float(text), pos


def _check_big_integer(int_text: bytes, head: int, start: int) -> None:
    """RapidJSON's "force double for big integer" loop: too big once it passes DBL_MAX / 10."""
    d = float(int(int_text[:head]))
    for digit in int_text[head:]:
        if d >= 1.7976931348623157e307:
            raise JsonParseError(NUMBER_TOO_BIG, start)
        d = d * 10 + (digit - 0x30)


def _exp_frac(int_text: bytes, frac: bytes, big: bool) -> int:
    """RapidJSON's ``expFrac``: minus the fraction digits it counted as significant."""
    if not frac or big:
        return 0  # a big integer has already counted 17 significant digits
    significant = len(int_text) - 1 if int_text and int_text != b"0" else 0
    i64 = int(int_text) if int_text else 0
    exp_frac = 0
    index = 0
    while index < len(frac) and i64 <= 2**53 - 1:
        i64 = i64 * 10 + frac[index] - 0x30
        index += 1
        exp_frac -= 1
        if i64:
            significant += 1
    d = float(i64)
    for digit in frac[index:]:
        if significant < 17:
            d = d * 10.0 + (digit - 0x30)
            exp_frac -= 1
            if d > 0.0:
                significant += 1
    return exp_frac


def _string(data: bytes, pos: int, n: int) -> tuple[str | bytes, int]:
    """RapidJSON's ParseString from the opening quote: the value and the position after it."""
    pos += 1
    m = _PLAIN.match(data, pos)
    end = m.end()  # type: ignore[union-attr]
    if end < n and data[end] == 0x22:  # no escapes: the common case
        raw = data[pos:end]
        try:
            return raw.decode("utf-8"), end + 1
        except UnicodeDecodeError:
            return raw, end + 1
    chunks: list[bytes] = []
    while True:
        m = _PLAIN.match(data, pos)
        end = m.end()  # type: ignore[union-attr]
        if end > pos:
            chunks.append(data[pos:end])
            pos = end
        c = data[pos] if pos < n else 0
        if c == 0x22:
            pos += 1
            break
        if c == 0x5C:
            escape = pos
            pos += 1
            e = data[pos] if pos < n else 0
            simple = _ESCAPES.get(e)
            if simple is not None:
                chunks.append(simple)
                pos += 1
            elif e == 0x75:  # 'u'
                code, pos = _hex4(data, pos + 1, n, escape)
                if 0xD800 <= code <= 0xDBFF:
                    if not (pos < n and data[pos] == 0x5C):
                        raise JsonParseError(STRING_SURROGATE, escape)
                    if not (pos + 1 < n and data[pos + 1] == 0x75):
                        raise JsonParseError(STRING_SURROGATE, escape)
                    low, pos = _hex4(data, pos + 2, n, escape)
                    if not 0xDC00 <= low <= 0xDFFF:
                        raise JsonParseError(STRING_SURROGATE, escape)
                    code = (((code - 0xD800) << 10) | (low - 0xDC00)) + 0x10000
                chunks.append(chr(code).encode("utf-8", "surrogatepass"))
            else:
                raise JsonParseError(STRING_ESCAPE, escape)
        elif c == 0:
            raise JsonParseError(STRING_MISS_QUOTE, pos)
        else:
            raise JsonParseError(STRING_ESCAPE, pos)
    raw = b"".join(chunks)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError:
        return raw, pos


def _hex4(data: bytes, pos: int, n: int, escape: int) -> tuple[int, int]:
    """Four hex digits of a ``\\u`` escape; an error reports the backslash's offset."""
    code = 0
    for i in range(pos, pos + 4):
        digit = _HEX.get(data[i]) if i < n else None
        if digit is None:
            raise JsonParseError(STRING_INVALID_HEX, escape)
        code = code * 16 + digit
    return code, pos + 4
