"""Reading CSV (tfio_handlers.formats.csv.decode, .table, .cells): rows in, typed tensors or examples out.

The SageMaker defects this codec fixes each have a test: the legacy container read only the first
row, the TF Serving container's njs split quoted strings wrongly, and the inference toolkit's
``np.genfromtxt`` dropped the batch dimension of a one-row body.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from codec_support import context, signature
from csv_support import (
    CLASSIFIER,
    CSV,
    CSV_HEADER,
    decode,
)

from tfio_handlers.config import Limits, Settings
from tfio_handlers.context import Context
from tfio_handlers.errors import BadRequest, PayloadTooLarge
from tfio_handlers.formats import csv as csv_codec
from tfio_handlers.formats.csv import table as csv_table
from tfio_handlers.media import parse_media_type
from tfio_handlers.protos import (
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_INT8,
    DT_INT32,
    DT_INT64,
    DT_STRING,
    DT_UINT64,
)

# -- the SageMaker defects ---------------------------------------------------------------------


def test_every_row_is_an_instance_not_only_the_first() -> None:
    body = b"5.1,3.5,1.4,0.2\n4.9,3.0,1.4,0.2\n6.2,3.4,5.4,2.3\n"
    array = decode(body)
    assert array.shape == (3, 4)
    np.testing.assert_array_equal(array[2], np.array([6.2, 3.4, 5.4, 2.3], np.float32))


def test_a_one_row_body_keeps_its_batch_dimension() -> None:
    array = decode(b"1.0,2.0,5.0\n")
    assert array.shape == (1, 3)
    sig = signature({"x": (DT_FLOAT, [-1, 3])})
    assert decode(b"1.0,2.0,5.0", context(sig)).shape == (1, 3)


def test_string_fields_are_split_and_quoted_as_rfc_4180_says() -> None:
    sig = signature({"x": (DT_STRING, [-1, 4])})
    array = decode(b"iris,0.5,1.0,1.5\n", context(sig))
    assert array.tolist() == [[b"iris", b"0.5", b"1.0", b"1.5"]]
    assert decode(b"a,b,c\n", context(signature({"x": (DT_STRING, [-1, 3])}))).tolist() == [
        [b"a", b"b", b"c"]
    ]
    quoted = b'"iris, setosa","say ""hi""","line\nbreak",x\r\n'
    assert decode(quoted, context(sig)).tolist() == [
        [b"iris, setosa", b'say "hi"', b"line\nbreak", b"x"]
    ]


# -- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"1,2\n3,4\n",
        b"1,2\r\n3,4\r\n",
        b"1,2\n3,4",
        b"\xef\xbb\xbf1,2\n3,4\n",
        b"1,2\n\n3,4\n\n\n",
        b"\n1,2\n   \n3,4",
        b'"1","2"\n3,4\n',
        b"1, 2\n3 ,4\n",
        b"1,2\r3,4\r",
    ],
)
def test_line_endings_blank_lines_bom_and_quoted_numbers(body: bytes) -> None:
    np.testing.assert_array_equal(decode(body), np.array([[1, 2], [3, 4]], np.float32))


def test_ragged_rows_name_the_line() -> None:
    with pytest.raises(BadRequest, match=r"CSV line 3: the row has 2 fields, expected 3"):
        decode(b"1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(BadRequest, match=r"CSV line 2: the row has 4 fields, expected 3"):
        decode(b'1,2,"3"\n4,5,6,7\n')
    with pytest.raises(
        BadRequest, match=r"CSV line 3: the row has 3 fields, expected 2 as the head"
    ):
        decode(b"a,b\n1,2\n3,4,5\n", media_type=CSV_HEADER)
    # Balanced raggedness: the total field count is right, every row is checked.
    with pytest.raises(BadRequest, match=r"CSV line 1: .* 3 fields|CSV line 2: the row has 5"):
        decode(b"1,2,3\n4,5,6,7,8\n9,10\n")


def test_bad_cells_name_line_and_column() -> None:
    with pytest.raises(BadRequest, match=r"CSV line 2, column 3: 'x' is not a number"):
        decode(b"1,2,3\n4,5,x\n", context(signature({"v": (DT_FLOAT, [-1, 3])})))
    with pytest.raises(BadRequest, match=r"CSV line 1, column 2: an empty field is not a number"):
        decode(b"1,,3\n", context(signature({"v": (DT_FLOAT, [-1, 3])})))
    sig = signature({"a": (DT_FLOAT, [-1]), "b": (DT_INT64, [-1])})
    with pytest.raises(
        BadRequest, match=r"line 3, column 2 \('b'\): '1.5' is not a whole number for input 'b'"
    ):
        decode(b"a,b\n1,2\n3,1.5\n", context(sig), CSV_HEADER)
    with pytest.raises(BadRequest, match=r"line 1, column 1: '300' is out of range \[-128, 127\]"):
        decode(b"300\n", context(signature({"v": (DT_INT8, [-1])})))
    with pytest.raises(BadRequest, match=r"'1e39' is out of range for input 'v' \(DT_FLOAT\)"):
        decode(b"1e39\n", context(signature({"v": (DT_FLOAT, [-1])})))


def test_cells_are_typed_by_the_signature() -> None:
    big = 2**53 + 1
    assert decode(
        f"{big}\n-5\n".encode(), context(signature({"v": (DT_INT64, [-1])}))
    ).tolist() == [
        big,
        -5,
    ]
    unsigned = decode(b"18446744073709551615\n", context(signature({"v": (DT_UINT64, [-1])})))
    assert unsigned.dtype == np.uint64 and int(unsigned[0]) == 2**64 - 1
    doubles = decode(b"0.1\n", context(signature({"v": (DT_DOUBLE, [-1])})))
    assert doubles.dtype == np.float64 and doubles[0] == 0.1
    bools = decode(b"true,FALSE,1,0\n", context(signature({"v": (DT_BOOL, [-1, 4])})))
    assert bools.tolist() == [[True, False, True, False]]
    assert decode(b"nan,inf,-inf\n").tolist()[0][1:] == [np.inf, -np.inf]
    with pytest.raises(BadRequest, match="is not a boolean"):
        decode(b"yes\n", context(signature({"v": (DT_BOOL, [-1])})))


def test_without_a_signature_numbers_are_float32_and_text_makes_strings() -> None:
    assert decode(b"1,2\n").dtype == np.float32
    strings = decode(b"a,1\nb,2\n")
    assert strings.dtype == object and strings.tolist() == [[b"a", b"1"], [b"b", b"2"]]


def test_header_names_the_inputs_of_a_multi_input_signature() -> None:
    sig = signature({"name": (DT_STRING, [-1]), "x": (DT_FLOAT, [-1, 2]), "n": (DT_INT32, [-1, 1])})
    value = decode(b'x,name,x,n\n1,"a,b",2,7\n3,c,4,8\n', context(sig), CSV_HEADER)
    assert set(value) == {"name", "x", "n"}
    assert value["name"].tolist() == [b"a,b", b"c"]
    np.testing.assert_array_equal(value["x"], np.array([[1, 2], [3, 4]], np.float32))
    assert value["n"].dtype == np.int32 and value["n"].shape == (2, 1)


def test_header_errors() -> None:
    sig = signature({"a": (DT_FLOAT, [-1]), "b": (DT_FLOAT, [-1])})
    with pytest.raises(BadRequest, match="send a header row"):
        decode(b"1,2\n", context(sig))
    with pytest.raises(BadRequest, match="column 'c' is not an input"):
        decode(b"a,c\n1,2\n", context(sig), CSV_HEADER)
    with pytest.raises(BadRequest, match="no column for input 'b'"):
        decode(b"a\n1\n", context(sig), CSV_HEADER)
    with pytest.raises(BadRequest, match="must be 'present' or 'absent'"):
        decode(b"1\n", media_type=parse_media_type("text/csv; header=maybe"))


def test_single_input_ignores_header_names_and_no_signature_header_gives_a_dict() -> None:
    sig = signature({"x": (DT_FLOAT, [-1, 2])})
    assert decode(b"sepal,petal\n1,2\n", context(sig), CSV_HEADER).shape == (1, 2)
    value = decode(b"a,b\n1,2\n", media_type=CSV_HEADER)
    assert set(value) == {"a", "b"} and value["a"].tolist() == [1.0]
    empty = decode(b"a,b\n", context(sig), CSV_HEADER)
    assert empty.shape == (0, 2)


@pytest.mark.parametrize(
    ("shape", "body", "expected"),
    [
        ([-1], b"1\n2\n", (2,)),
        (None, b"1\n2\n", (2,)),
        (None, b"1,2\n", (1, 2)),
        ([-1, -1], b"1\n2\n", (2, 1)),
        ([-1, 2, 2], b"1,2,3,4\n", (1, 2, 2)),
        ([-1, -1, 2], b"1,2,3,4,5,6\n", (1, 3, 2)),
        ([-1, -1, -1], b"1,2,3\n", (1, 3)),
        ([], b"7\n", ()),
    ],
)
def test_the_shape_rule(shape: list[int] | None, body: bytes, expected: tuple[int, ...]) -> None:
    assert decode(body, context(signature({"x": (DT_FLOAT, shape)}))).shape == expected


@pytest.mark.parametrize(
    ("shape", "body", "message"),
    [
        ([-1], b"1,2\n", "one value per instance"),
        ([-1, 3], b"1,2\n", r"does not take 2 values per row"),
        ([-1, 2, 2], b"1,2,3\n", r"does not take 3 values per row"),
        ([], b"1\n2\n", "is a scalar"),
    ],
)
def test_the_shape_rule_errors(shape: list[int], body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode(body, context(signature({"x": (DT_FLOAT, shape)})))


def test_empty_bodies() -> None:
    for body in (b"", b"\n\n", b"  \r\n", b"\xef\xbb\xbf"):
        with pytest.raises(BadRequest, match="empty"):
            decode(body)


def test_bad_quoting_is_a_400() -> None:
    with pytest.raises(BadRequest, match="CSV line 1"):
        decode(b'a"b,"c\n', context(signature({"x": (DT_STRING, [-1, 2])})))


def test_other_charsets() -> None:
    sig = signature({"x": (DT_STRING, [-1])})
    latin = parse_media_type("text/csv; charset=latin-1")
    assert decode("café\n".encode("latin-1"), context(sig), latin).tolist() == ["café".encode()]
    utf16 = parse_media_type("text/csv; charset=utf-16")
    assert decode("1,2\n".encode("utf-16"), media_type=utf16).tolist() == [[1.0, 2.0]]
    with pytest.raises(BadRequest, match="not valid utf-8"):
        decode(b"\xff\xfe,1\n", context(signature({"x": (DT_STRING, [-1, 2])})))


# -- classify and regress ----------------------------------------------------------------------


def test_classify_without_header_is_the_legacy_inputs_feature() -> None:
    examples = decode(b"5.1,3.5\n4.9,3.0\n", context(CLASSIFIER))
    assert examples == [{"inputs": [5.1, 3.5]}, {"inputs": [4.9, 3.0]}]
    assert decode(b"a,b\n", context(CLASSIFIER)) == [{"inputs": [b"a", b"b"]}]
    with pytest.raises(BadRequest, match="mixes numbers and text"):
        decode(b"iris,0.5\n", context(CLASSIFIER))


def test_classify_with_header_names_features_and_skips_empty_cells() -> None:
    body = b"age,city,tag,tag,w\n35,Paris,a,b,1.5\n,Rome,c,,2\n"
    examples = decode(body, context(CLASSIFIER), CSV_HEADER)
    assert examples == [
        {"age": [35], "city": [b"Paris"], "tag": [b"a", b"b"], "w": [1.5]},
        {"city": [b"Rome"], "tag": [b"c"], "w": [2.0]},
    ]
    # Typed as TF Serving types JSON example values: integer literals are int64 features.
    assert type(examples[0]["age"][0]) is int and type(examples[1]["w"][0]) is float
    method = Context(method="regress")
    regress = decode(b"x,k,m,m\n1.0,2,3,4.5\n", method, CSV_HEADER)
    assert regress == [{"x": [1.0], "k": [2], "m": [3.0, 4.5]}]
    assert type(regress[0]["k"][0]) is int and type(regress[0]["m"][0]) is float


# -- limits ------------------------------------------------------------------------------------


def test_limits() -> None:
    small = Settings(limits=Limits(max_body_bytes=10))
    with pytest.raises(PayloadTooLarge):
        csv_codec.decode_csv(b"1,2,3,4,5,6\n", CSV, Context(settings=small))
    few = Settings(limits=Limits(max_elements=5))
    with pytest.raises(PayloadTooLarge, match="over the limit of 5"):
        csv_codec.decode_csv(b"1,2,3\n4,5,6\n", CSV, Context(settings=few))
    with pytest.raises(PayloadTooLarge, match="over the limit of 5"):
        csv_codec.decode_csv(b'"1",2,3\n4,5,6\n', CSV, Context(settings=few))
    short = Settings(limits=Limits(max_string_bytes=4))
    sig = signature({"x": (DT_STRING, [-1])})
    with pytest.raises(PayloadTooLarge, match="over the limit of 4 bytes"):
        csv_codec.decode_csv(
            b"abcdefgh\n", CSV, Context(settings=short, signature_defs={"serving_default": sig})
        )


def test_long_quoted_fields_are_not_cut_by_the_csv_module_default_limit() -> None:
    sig = signature({"x": (DT_STRING, [-1])})
    text = "x" * 200_000
    assert decode(f'"{text}"\n'.encode(), context(sig)).tolist() == [text.encode()]


# -- the fast path -----------------------------------------------------------------------------


@pytest.fixture(params=["simdjson", "orjson", "json"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each JSON reader the fast path may use."""
    name = request.param
    if name == "simdjson":
        pytest.importorskip("simdjson")
        chosen = csv_table._simdjson_loader()
    else:
        if name == "json":
            monkeypatch.setitem(sys.modules, "orjson", None)
        else:
            pytest.importorskip("orjson")
        chosen = csv_table._generic_loader()
    assert chosen is not None
    monkeypatch.setattr(csv_table, "_LOADERS", [chosen])
    return str(name)


def test_fast_path_agrees_with_the_exact_path(loader: str) -> None:
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(50, 9)).astype(np.float32)
    body = ("\n".join(",".join(map(str, row)) for row in matrix.tolist()) + "\n").encode()
    fast = decode(body)
    quoted = b'"' + body[: body.index(b",")] + b'"' + body[body.index(b",") :]
    exact = decode(quoted)
    np.testing.assert_array_equal(fast, matrix)
    np.testing.assert_array_equal(exact, matrix)
    ints = decode(b"1,-2\n3,4\n", context(signature({"v": (DT_INT64, [-1, 2])})))
    assert ints.dtype == np.int64 and ints.tolist() == [[1, -2], [3, 4]]


@pytest.mark.parametrize(
    "body",
    [b"1,true\n", b"1,null\n", b"[1],2\n", b"[],[1,2]\n", b"{},1\n", b"1,2,\n", b"1e400,2\n"],
)
def test_fast_path_never_accepts_json_that_is_not_csv_numbers(loader: str, body: bytes) -> None:
    if body == b"1e400,2\n":  # finite text beyond float64: a 400 on every path, never inf
        with pytest.raises(BadRequest, match=r"'1e400' is out of range"):
            decode(body)
        return
    with pytest.raises(BadRequest):
        decode(body, context(signature({"v": (DT_FLOAT, [-1, 2])})))


def test_fast_path_row_checks(loader: str) -> None:
    with pytest.raises(BadRequest, match="CSV line 2: the row has 1 fields, expected 2"):
        decode(b"1,2\n3\n4,5,6\n")
    with pytest.raises(BadRequest, match=r"line 2, column 1: '300' is out of range"):
        decode(b"1\n300\n", context(signature({"v": (DT_INT8, [-1])})))
    with pytest.raises(BadRequest, match="is not a whole number"):
        decode(b"1\n2.5\n", context(signature({"v": (DT_INT32, [-1])})))


def test_big_numeric_body_decodes_exactly() -> None:
    """A 300x784 body (the fast path's territory) gives the very values; its speed against
    np.genfromtxt is measured in benchmarks/, not here."""
    matrix = np.random.default_rng(0).random((300, 784), dtype=np.float32)
    body = ("\n".join(",".join(map(str, row)) for row in matrix.tolist()) + "\n").encode()
    ctx = context(signature({"x": (DT_FLOAT, [-1, 784])}))
    np.testing.assert_array_equal(decode(body, ctx), matrix)
