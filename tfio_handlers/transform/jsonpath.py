"""The JSONPath subset of SageMaker's ``InputFilter`` and ``OutputFilter``.

SageMaker documents these operators for batch transform filters, and this module implements exactly them:

========================  ===============================================================
``$``                     the whole record
``.name``, ``['name']``   a member of an object (``["name"]`` too)
``['a','b']``             several members: an object holding just those members, in that order
``[3]``, ``[-1]``         an element of an array (negative counts from the end)
``[1:]``, ``[0:-1]``      a slice of an array (Python's rules; a step is accepted too)
``[0,5:]``                a union of indices and slices: an array of the selected elements
``*``, ``[*]``            every element of an array or every member value of an object
========================  ===============================================================

After a slice, a union or a wildcard, the segments that follow apply to each selected element
(``$.rows[*].x``). A member or an index that is not there is an error naming the path, as SageMaker's
"indexes that aren't within the dimension size" error; a slice never is. Recursive descent (``..``) and
filter expressions (``?()``) are not supported and refused when the path is parsed.

A CSV row is a JSON array of its fields (strings), as SageMaker reads one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = ["JSONPath", "JSONPathError"]


class JSONPathError(ValueError):
    """A path that cannot be parsed, or a record it does not fit."""


@dataclass(frozen=True, slots=True)
class _Slice:
    start: int | None
    stop: int | None
    step: int | None


_Selector: TypeAlias = "str | int | _Slice"
"""A member name, an index, or a slice; ``'*'`` alone is written as the wildcard segment."""


@dataclass(frozen=True, slots=True)
class _Segment:
    selectors: tuple[_Selector, ...]
    wildcard: bool = False

    @property
    def multiple(self) -> bool:
        """Whether it selects a list of elements (rather than one value or an object of members)."""
        if self.wildcard:
            return True
        if all(isinstance(s, str) for s in self.selectors):
            return False  # members: one value, or an object of the named members
        return len(self.selectors) > 1 or isinstance(self.selectors[0], _Slice)


_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_SLICE = re.compile(r"(-?\d*)\s*(?::\s*(-?\d*)\s*(?::\s*(-?\d*))?)?")


class JSONPath:
    """A parsed path; :meth:`select` applies it to a record (a parsed JSON value)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.segments: tuple[_Segment, ...] = tuple(_parse(text))

    @property
    def is_root(self) -> bool:
        """``$``: the whole record, so nothing to do."""
        return not self.segments

    def select(self, value: Any) -> Any:
        """The part of ``value`` the path names; :class:`JSONPathError` when it is not there."""
        return _apply(self.segments, value, self.text)

    def __repr__(self) -> str:
        return f"JSONPath({self.text!r})"


def _parse(text: str) -> list[_Segment]:
    path = text.strip()
    if not path.startswith("$"):
        raise JSONPathError(f"JSONPath {text!r} must start with $")
    segments: list[_Segment] = []
    i = 1
    while i < len(path):
        if path.startswith("..", i):
            raise JSONPathError(f"JSONPath {text!r}: recursive descent (..) is not supported")
        if path[i] == ".":
            i += 1
            if path.startswith("*", i):
                segments.append(_Segment((), wildcard=True))
                i += 1
                continue
            match = _NAME.match(path, i)
            if match is None:
                raise JSONPathError(f"JSONPath {text!r}: expected a member name at {i}")
            segments.append(_Segment((match.group(),)))
            i = match.end()
        elif path[i] == "[":
            end, segment = _parse_brackets(path, i + 1, text)
            segments.append(segment)
            i = end
        else:
            raise JSONPathError(f"JSONPath {text!r}: unexpected {path[i]!r} at {i}")
    return segments


def _parse_brackets(path: str, i: int, text: str) -> tuple[int, _Segment]:
    """The selectors of ``[...]`` starting after ``[`` at ``i``; returns the index after ``]``."""
    selectors: list[_Selector] = []
    while True:
        while i < len(path) and path[i] == " ":
            i += 1
        if i >= len(path):
            raise JSONPathError(f"JSONPath {text!r}: unclosed [")
        char = path[i]
        if char == "*":
            selectors.append("*")
            i += 1
        elif char in "'\"":
            close = path.find(char, i + 1)
            if close < 0:
                raise JSONPathError(f"JSONPath {text!r}: unclosed quote at {i}")
            selectors.append(path[i + 1 : close])
            i = close + 1
        elif char == "?" or char == "(":
            raise JSONPathError(
                f"JSONPath {text!r}: filter and script expressions are not supported"
            )
        else:
            match = _SLICE.match(path, i)
            assert match is not None  # the pattern matches the empty string
            if match.end() == i:
                raise JSONPathError(f"JSONPath {text!r}: unexpected {char!r} at {i}")
            start, stop, step = match.groups()
            if ":" in match.group():
                if step is not None and step and int(step) == 0:
                    raise JSONPathError(f"JSONPath {text!r}: a slice step cannot be 0")
                selectors.append(_Slice(_int(start), _int(stop), _int(step)))
            elif start:
                selectors.append(int(start))
            else:
                raise JSONPathError(f"JSONPath {text!r}: unexpected {char!r} at {i}")
            i = match.end()
        while i < len(path) and path[i] == " ":
            i += 1
        if i < len(path) and path[i] == ",":
            i += 1
            continue
        if i < len(path) and path[i] == "]":
            break
        raise JSONPathError(f"JSONPath {text!r}: expected , or ] at {i}")
    if "*" in selectors:
        if len(selectors) > 1:
            raise JSONPathError(f"JSONPath {text!r}: * cannot be combined with other selectors")
        return i + 1, _Segment((), wildcard=True)
    names = [s for s in selectors if isinstance(s, str)]
    if names and len(names) != len(selectors):
        raise JSONPathError(f"JSONPath {text!r}: member names and indices cannot be mixed")
    return i + 1, _Segment(tuple(selectors))


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _apply(segments: Sequence[_Segment], value: Any, text: str) -> Any:
    for n, segment in enumerate(segments):
        if segment.multiple:
            selected = _select_many(segment, value, text)
            rest = segments[n + 1 :]
            return [_apply(rest, item, text) for item in selected] if rest else selected
        value = _select_one(segment, value, text)
    return value


def _select_one(segment: _Segment, value: Any, text: str) -> Any:
    selectors = segment.selectors
    if isinstance(selectors[0], str):
        if not isinstance(value, dict):
            raise JSONPathError(f"{text}: member {selectors[0]!r} of a {_kind(value)}")
        missing = [s for s in selectors if s not in value]
        if missing:
            raise JSONPathError(f"{text}: the record has no member {missing[0]!r}")
        if len(selectors) == 1:
            return value[selectors[0]]
        return {s: value[s] for s in selectors if isinstance(s, str)}
    index = selectors[0]
    assert isinstance(index, int)
    if not isinstance(value, list):
        raise JSONPathError(f"{text}: index {index} of a {_kind(value)}")
    if not -len(value) <= index < len(value):
        raise JSONPathError(f"{text}: index {index} is out of range for {len(value)} elements")
    return value[index]


def _select_many(segment: _Segment, value: Any, text: str) -> list[Any]:
    if segment.wildcard:
        if isinstance(value, list):
            return list(value)
        if isinstance(value, dict):
            return list(value.values())
        raise JSONPathError(f"{text}: * of a {_kind(value)}")
    if not isinstance(value, list):
        raise JSONPathError(f"{text}: indices of a {_kind(value)}")
    out: list[Any] = []
    for selector in segment.selectors:
        if isinstance(selector, _Slice):
            out.extend(value[selector.start : selector.stop : selector.step])
        else:
            assert isinstance(selector, int)
            if not -len(value) <= selector < len(value):
                raise JSONPathError(
                    f"{text}: index {selector} is out of range for {len(value)} elements"
                )
            out.append(value[selector])
    return out


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "JSON object"
    if isinstance(value, list):
        return "JSON array"
    return "JSON " + type(value).__name__.replace("str", "string").replace("NoneType", "null")
