"""The process's budget of filled tensors (``tensors.fill_budget``): what it charges, refuses and
gives back, alone and through :func:`to_ndarray`."""

from __future__ import annotations

import contextlib
import gc
import threading

import numpy as np
import pytest

import tfio_handlers.tensors as tensors
from tfio_handlers.config import Settings
from tfio_handlers.errors import PayloadTooLarge, ServerBusy
from tfio_handlers.protocol.arrays import PredictArrays
from tfio_handlers.protos import DT_FLOAT, DT_INT64, DT_STRING, PredictRequest, TensorProto
from tfio_handlers.tensors import FillBudget, fill_budget, fills_of_one_request, to_ndarray

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


def test_every_fill_is_charged_however_small(budget: FillBudget) -> None:
    array = to_ndarray(fill(DT_FLOAT, 4, 1.0))
    assert budget.in_use == 16
    del array
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
        # references, and the bytes TensorFlow's tensor will copy for each repeat of the last
        (fill(DT_STRING, MIB // 2, b"a", b"12345678"), MIB // 2 * 8 + (MIB // 2 - 2) * 8),
        (fill(DT_STRING, 1 * MIB), 8 * MIB),  # no values: b""
    ],
    ids=["one-value", "last-of-several", "zeros", "strings", "empty-strings"],
)
def test_to_ndarray_charges_a_broadcast_before_it_allocates(
    budget: FillBudget, proto: TensorProto, nbytes: int
) -> None:
    array = to_ndarray(proto)
    assert budget.in_use == nbytes
    with pytest.raises(ServerBusy):
        to_ndarray(proto)  # the first fill holds (nearly) the whole budget
    del array
    assert budget.in_use == 0
    to_ndarray(proto)  # and then it fits again


def test_a_string_fill_is_charged_for_the_copies_tensorflow_makes(budget: FillBudget) -> None:
    """A 2 MiB string repeated 8 times: a 64-byte array of references, but 16 MiB in TensorFlow."""
    with pytest.raises(PayloadTooLarge):
        to_ndarray(fill(DT_STRING, 8, b"x" * (2 * MIB)))
    assert budget.in_use == 0


def predict_request(**inputs: TensorProto) -> PredictRequest:
    request = PredictRequest()
    for alias, proto in inputs.items():
        request.inputs[alias].CopyFrom(proto)
    return request


def test_the_fills_of_one_request_count_together(budget: FillBudget) -> None:
    """Many fills, each well under the budget, that together exceed it: the request could never be
    answered, so 413 (not 503), and what it filled so far is given back at once."""
    gc.disable()  # nothing may depend on the collector
    try:
        small = {f"x{i}": fill(DT_FLOAT, MIB // 2, 1.0) for i in range(5)}  # 2 MiB each
        with pytest.raises(PayloadTooLarge, match="other filled tensors"):
            PredictArrays.from_message(predict_request(**small))
        assert budget.in_use == 0
        read = PredictArrays.from_message(predict_request(**dict(list(small.items())[:4])))
        assert budget.in_use == 8 * MIB  # four fit
        del read
        assert budget.in_use == 0
    finally:
        gc.enable()


def test_only_other_requests_fills_make_a_fill_wait(budget: FillBudget) -> None:
    held = to_ndarray(fill(DT_FLOAT, MIB, 1.0))  # another request's 4 MiB
    read: dict[str, object] = {}
    with fills_of_one_request(read):
        mine = to_ndarray(fill(DT_FLOAT, MIB // 2, 1.0))  # 2 MiB: fits beside it
        with pytest.raises(ServerBusy):
            to_ndarray(fill(DT_FLOAT, MIB // 2 + 1, 1.0))  # would fit alone: wait for the other
        with pytest.raises(PayloadTooLarge):
            to_ndarray(fill(DT_FLOAT, 3 * MIB // 2 + 1, 1.0))  # with mine over 8 MiB: never
    del held, mine
    assert budget.in_use == 0


def test_a_request_that_fails_on_a_later_input_gives_back_its_fills_at_once(
    budget: FillBudget,
) -> None:
    malformed = TensorProto(dtype=DT_FLOAT)
    malformed.tensor_shape.dim.add().size = 2
    malformed.tensor_content = b"\0" * 3
    gc.disable()
    try:
        with pytest.raises(Exception, match="tensor parsing error: z"):
            PredictArrays.from_message(predict_request(a=fill(DT_FLOAT, MIB, 1.0), z=malformed))
        assert budget.in_use == 0
    finally:
        gc.enable()


def test_a_refund_by_the_collector_during_a_refused_charge_does_not_hang(
    budget: FillBudget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filled array held by a garbage cycle is freed by whichever allocation next runs the
    collector, and its finalizer refunds: also while a charge is refusing and builds its error
    (here an error that runs the collector as it is made)."""

    class Collecting(ServerBusy):
        def __init__(self, *args: object, **kwargs: object) -> None:
            gc.collect()
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fill_budget, "ServerBusy", Collecting)

    class Holder:
        pass

    def scenario() -> None:
        holder = Holder()
        holder.self = holder  # type: ignore[attr-defined]
        holder.array = to_ndarray(fill(DT_FLOAT, 3 * MIB // 2, 1.0))  # type: ignore[attr-defined]
        del holder  # garbage now, but only the collector frees a cycle
        with contextlib.suppress(ServerBusy):
            budget.charge(4 * MIB, "x")

    gc.disable()
    try:
        worker = threading.Thread(target=scenario, daemon=True)
        worker.start()
        worker.join(10)
    finally:
        gc.enable()
    assert not worker.is_alive(), "the charge hung"
    assert budget.in_use == 0


def test_the_broadcast_reads_as_tensorflow_reads_it(budget: FillBudget) -> None:
    array = to_ndarray(fill(DT_FLOAT, 2 * MIB, 1.0, 2.0, 3.0))
    assert array[:3].tolist() == [1.0, 2.0, 3.0]
    assert bool((array[3:] == 3.0).all())
    del array
    strings = to_ndarray(fill(DT_STRING, MIB // 2, b"a", b"b"))
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
