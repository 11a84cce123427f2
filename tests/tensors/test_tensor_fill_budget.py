"""The process's budget of filled tensors (``tensors.fill_budget``): what it charges, refuses and
gives back, alone and through :func:`to_ndarray`."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import tfio_handlers.tensors as tensors
from tfio_handlers.config import Settings
from tfio_handlers.errors import PayloadTooLarge, ServerBusy
from tfio_handlers.protos import DT_FLOAT, DT_INT64, DT_STRING, TensorProto
from tfio_handlers.tensors import FillBudget, to_ndarray
from tfio_handlers.tensors.fill_budget import SMALL_FILL_BYTES

MIB = 1024 * 1024


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> FillBudget:
    """A budget of 8 MiB in place of the process's, for this test."""
    fresh = FillBudget(8 * MIB)
    monkeypatch.setattr(tensors, "FILL_BUDGET", fresh)
    return fresh


def fill(dtype: int, elements: int, *values: object) -> TensorProto:
    """A tensor of ``elements`` values given by fewer typed values (TensorFlow's broadcast)."""
    proto = TensorProto(dtype=dtype)
    proto.tensor_shape.dim.add().size = elements
    field = {DT_FLOAT: proto.float_val, DT_INT64: proto.int64_val, DT_STRING: proto.string_val}
    field[dtype].extend(values)  # type: ignore[attr-defined]
    return proto


def test_a_charge_is_taken_and_given_back() -> None:
    budget = FillBudget(4 * MIB)
    charged = budget.charge(3 * MIB, "x")
    assert charged == 3 * MIB and budget.in_use == 3 * MIB
    budget.refund(charged)
    assert budget.in_use == 0


def test_a_fill_over_the_whole_budget_is_413_and_one_that_does_not_fit_now_503() -> None:
    budget = FillBudget(4 * MIB)
    with pytest.raises(PayloadTooLarge) as too_large:
        budget.charge(5 * MIB, "A tensor of shape [5]")
    assert too_large.value.status_code == 413
    assert "TFIO_HANDLERS_MAX_FILL_BYTES" in too_large.value.message
    budget.charge(3 * MIB, "first")
    with pytest.raises(ServerBusy) as busy:
        budget.charge(2 * MIB, "second")
    assert busy.value.status_code == 503
    assert ("retry-after", "1") in busy.value.headers
    assert budget.in_use == 3 * MIB  # the refused charge took nothing


def test_small_fills_are_not_charged() -> None:
    budget = FillBudget(SMALL_FILL_BYTES)
    assert budget.charge(SMALL_FILL_BYTES - 1, "x") == 0
    assert budget.in_use == 0


def test_the_bytes_come_back_when_the_filled_array_and_its_views_are_freed() -> None:
    budget = FillBudget(8 * MIB)
    array = budget.hold(np.empty(2 * MIB // 8), budget.charge(2 * MIB, "x"))
    view = array.reshape(2, -1)[1:]
    del array
    gc.collect()
    assert budget.in_use == 2 * MIB  # the view keeps the filled array alive
    del view
    assert budget.in_use == 0


@pytest.mark.parametrize(
    ("proto", "nbytes"),
    [
        (fill(DT_FLOAT, 2 * MIB, 1.5), 8 * MIB),  # one value repeated
        (fill(DT_FLOAT, 2 * MIB, 1.0, 2.0, 3.0), 8 * MIB),  # the last of several repeated
        (fill(DT_INT64, 1 * MIB), 8 * MIB),  # no values: zeros
        (fill(DT_STRING, 1 * MIB, b"a"), 8 * MIB),  # object pointers
        (fill(DT_STRING, 1 * MIB), 8 * MIB),  # no values: b""
    ],
    ids=["one-value", "last-of-several", "zeros", "strings", "empty-strings"],
)
def test_to_ndarray_charges_a_broadcast_before_it_allocates(
    budget: FillBudget, proto: TensorProto, nbytes: int
) -> None:
    array = to_ndarray(proto)
    assert budget.in_use == nbytes == array.nbytes
    with pytest.raises(ServerBusy):
        to_ndarray(proto)  # the first fill holds the whole budget
    del array
    assert budget.in_use == 0
    to_ndarray(proto)  # and then it fits again


def test_the_broadcast_reads_as_tensorflow_reads_it(budget: FillBudget) -> None:
    array = to_ndarray(fill(DT_FLOAT, 2 * MIB, 1.0, 2.0, 3.0))
    assert array[:3].tolist() == [1.0, 2.0, 3.0]
    assert bool((array[3:] == 3.0).all())
    del array
    strings = to_ndarray(fill(DT_STRING, 1 * MIB, b"a", b"b"))
    assert strings[0] == b"a" and strings[-1] == b"b"


def test_a_value_per_element_and_tensor_content_are_not_charged(budget: FillBudget) -> None:
    values = np.arange(3 * MIB, dtype=np.float32)  # 12 MiB: more than the budget
    written = tensors.to_tensor_proto(values)
    assert written.tensor_content
    assert to_ndarray(written).nbytes == 12 * MIB
    each = TensorProto(dtype=DT_FLOAT)
    each.tensor_shape.dim.add().size = MIB
    each.float_val.extend(np.ones(MIB, np.float32).tolist())
    assert to_ndarray(each).size == MIB
    assert budget.in_use == 0


def test_a_fill_over_the_whole_budget_is_refused_before_anything_is_allocated(
    budget: FillBudget,
) -> None:
    with pytest.raises(PayloadTooLarge, match="TFIO_HANDLERS_MAX_FILL_BYTES"):
        to_ndarray(fill(DT_FLOAT, 3 * MIB, 1.0))  # 12 MiB
    assert budget.in_use == 0


def test_the_setting_reads_its_variable_and_defaults_to_2_gib() -> None:
    assert Settings.from_env({}, load_plugins=False).limits.max_fill_bytes == 2 * 1024 * MIB
    settings = Settings.from_env({"TFIO_HANDLERS_MAX_FILL_BYTES": "1048576"}, load_plugins=False)
    assert settings.limits.max_fill_bytes == MIB
