"""``Runner.run`` executes a signature's function op directly (``savedmodel._Direct``): the same outputs
and errors as the full ``ConcreteFunction`` call, the full call whenever a gradient tape watches,
and a fall back to it if the direct call ever fails for a reason other than the model's own."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tfio_handlers.backends import savedmodel  # noqa: E402
from tfio_handlers.errors import HTTPError  # noqa: E402


def _numpy(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in outputs.items()}


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    got, want = _numpy(got), _numpy(want)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert got[name].shape == want[name].shape, name
        if want[name].dtype == object:  # strings: compare the bytes, not the pointers
            assert got[name].tolist() == want[name].tolist(), name
        else:
            assert got[name].tobytes() == want[name].tobytes(), name


def _refuse_full_call(runner: savedmodel.Runner, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the full ``_call_flat`` path fail loudly; returns the list its calls are counted in."""
    calls: list[int] = []
    original = runner.function._call_flat

    def counted(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(runner.function, "_call_flat", counted)
    return calls


@pytest.fixture(scope="module")
def iris(iris_model: Path) -> savedmodel.Servable:
    return savedmodel.load_servable("iris", 1, iris_model)


@pytest.fixture(scope="module")
def multi(multi_input_model: Path) -> savedmodel.Servable:
    return savedmodel.load_servable("multi_input", 1, multi_input_model)


IRIS_ROWS = np.array([[6.4, 3.2, 4.5, 1.5], [5.1, 3.5, 1.4, 0.2]], np.float32)
MULTI_FEEDS = {
    "a": np.array([[1.5, 2.0], [3.0, -4.25]], np.float32),
    "b": np.array([7, -2], np.int64),
    "c": np.array([b"x", "é".encode()], object),
}
ECHO_FEEDS = {
    "f32": np.array([1.5, -0.0], np.float32),
    "f64": np.array([1e-300, np.pi]),
    "f16": np.array([0.1, 65504], np.float16),
    "i32": np.array([-(2**31), 7], np.int32),
    "i64": np.array([2**62, -1], np.int64),
    "u8": np.array([0, 255], np.uint8),
    "flag": np.array([True, False]),
    "text": np.array([b"\x00\xff", b""], object),
}


@pytest.mark.parametrize(
    ("which", "signature", "feeds"),
    [
        ("iris", "predict", {"inputs": IRIS_ROWS}),
        ("multi", "serving_default", MULTI_FEEDS),
        ("multi", "echo", ECHO_FEEDS),
        # a view that is not contiguous, and a list: converted as convert_to_tensor converts them
        ("iris", "predict", {"inputs": np.asfortranarray(IRIS_ROWS)[:, ::-1]}),
        ("iris", "predict", {"inputs": IRIS_ROWS.tolist()}),
    ],
)
def test_run_skips_the_full_call_with_the_same_outputs(
    which: str,
    signature: str,
    feeds: dict[str, np.ndarray],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = request.getfixturevalue(which).runners[signature]
    assert runner.direct is not None
    want = runner.function(**feeds)  # the keyword call: TensorFlow's own full path
    calls = _refuse_full_call(runner, monkeypatch)
    _same(runner.run(feeds), want)
    assert calls == []
    assert runner.direct is not None


def test_the_input_is_copied(multi: savedmodel.Servable) -> None:
    """The tensor does not share the request's buffer (``convert_to_tensor`` copies too): an
    identity's output keeps its values when the array fed is changed afterwards."""
    runner = multi.runners["echo"]
    feeds = {name: value.copy() for name, value in ECHO_FEEDS.items()}
    got = runner.run(feeds)
    feeds["f32"][:] = 7
    feeds["u8"][:] = 7
    assert np.asarray(got["f32_out"]).tolist() == ECHO_FEEDS["f32"].tolist()
    assert np.asarray(got["u8_out"]).tolist() == ECHO_FEEDS["u8"].tolist()


def test_a_watching_gradient_tape_gets_the_full_call(
    iris: savedmodel.Servable, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = iris.runners["predict"]
    want = runner.run({"inputs": IRIS_ROWS})
    calls = _refuse_full_call(runner, monkeypatch)
    with tf.GradientTape():
        got = runner.run({"inputs": IRIS_ROWS})
    _same(got, want)
    assert calls == [1]
    assert runner.direct is not None


def test_an_op_error_reads_as_on_the_full_call(iris: savedmodel.Servable) -> None:
    runner = iris.runners["serving_default"]  # classify: parses serialized Examples
    assert runner.direct is not None
    garbage = {"inputs": np.array([b"\xff not an Example"], object)}
    with pytest.raises(HTTPError) as direct:
        runner.run(garbage)
    full = dataclasses.replace(runner, direct=None)
    with pytest.raises(HTTPError) as undirected:
        full.run(garbage)
    assert (direct.value.status, direct.value.message) == (
        undirected.value.status,
        undirected.value.message,
    )
    assert direct.value.status == 400


def test_a_failing_direct_call_falls_back_for_good(iris: savedmodel.Servable) -> None:
    runner = dataclasses.replace(iris.runners["predict"])
    want = runner.run({"inputs": IRIS_ROWS})
    assert runner.direct is not None
    # an output more than the op returns: zip(strict=True) raises ValueError
    runner.direct = dataclasses.replace(
        runner.direct, output_names=[*runner.direct.output_names, "extra"]
    )
    _same(runner.run({"inputs": IRIS_ROWS}), want)
    assert runner.direct is None
    assert runner.flat


def test_functions_it_cannot_read_run_the_full_call() -> None:
    assert savedmodel._direct(lambda **kw: kw, 1) is None
