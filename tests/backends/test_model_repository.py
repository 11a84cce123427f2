"""Model discovery on disk (no TensorFlow: a SavedModel is faked by an empty saved_model.pb)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfio_handlers.backends.model_repository import (
    ModelSource,
    discover_models,
    find_versions,
    is_saved_model_dir,
    resolve_models,
)
from tfio_handlers.errors import BackendUnavailable


def saved_model(path: Path, text: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / ("saved_model.pbtxt" if text else "saved_model.pb")).write_bytes(b"")
    (path / "variables").mkdir(exist_ok=True)
    return path


def test_is_saved_model_dir(tmp_path: Path) -> None:
    assert not is_saved_model_dir(tmp_path)
    assert is_saved_model_dir(saved_model(tmp_path / "a"))
    assert is_saved_model_dir(saved_model(tmp_path / "b", text=True))
    assert not is_saved_model_dir(tmp_path / "missing")


def test_find_versions(tmp_path: Path) -> None:
    saved_model(tmp_path / "1")
    saved_model(tmp_path / "0010")
    (tmp_path / "3").mkdir()  # numeric but not a SavedModel
    saved_model(tmp_path / "latest")  # a SavedModel but not numeric
    (tmp_path / "7").write_text("a file")
    versions = find_versions(tmp_path)
    assert versions == {1: tmp_path / "1", 10: tmp_path / "0010"}
    assert list(versions) == [1, 10]


def test_find_versions_rejects_two_dirs_for_one_version(tmp_path: Path) -> None:
    saved_model(tmp_path / "1")
    saved_model(tmp_path / "01")
    with pytest.raises(BackendUnavailable, match="two directories for version 1"):
        find_versions(tmp_path)


def test_find_versions_of_missing_dir(tmp_path: Path) -> None:
    assert find_versions(tmp_path / "nope") == {}


def test_model_source_latest(tmp_path: Path) -> None:
    source = ModelSource("m", tmp_path, {1: tmp_path / "1", 12: tmp_path / "12", 3: tmp_path})
    assert source.latest == 12


class TestDiscover:
    def test_bare_saved_model(self, tmp_path: Path) -> None:
        path = saved_model(tmp_path / "half")
        assert discover_models(path) == {"half": ModelSource("half", path, {1: path})}

    def test_numeric_saved_model_dir_takes_parent_name_and_version(self, tmp_path: Path) -> None:
        path = saved_model(tmp_path / "half" / "123")
        assert discover_models(path) == {"half": ModelSource("half", path, {123: path})}

    def test_base_path(self, tmp_path: Path) -> None:
        base = tmp_path / "half"
        saved_model(base / "1")
        saved_model(base / "2")
        models = discover_models(base)
        assert list(models) == ["half"]
        assert models["half"].base_path == base
        assert models["half"].versions == {1: base / "1", 2: base / "2"}
        assert models["half"].latest == 2

    def test_name_override(self, tmp_path: Path) -> None:
        saved_model(tmp_path / "x" / "1")
        assert list(discover_models(tmp_path / "x", name="model")) == ["model"]

    def test_model_root_like_sagemaker(self, tmp_path: Path) -> None:
        root = tmp_path / "model"
        saved_model(root / "export" / "Servo" / "1555")
        saved_model(root / "iris" / "1")
        saved_model(root / "iris" / "2")
        saved_model(root / "bare")
        saved_model(root / ".hidden" / "1")
        saved_model(root / "code" / "1")  # inference.py lives here: never a model
        (root / "code" / "inference.py").write_text("")
        models = discover_models(root)
        assert sorted(models) == ["Servo", "bare", "iris"]
        assert models["Servo"].versions == {1555: root / "export" / "Servo" / "1555"}
        assert models["iris"].latest == 2
        assert models["bare"].versions == {1: root / "bare"}

    def test_a_base_path_is_not_searched_further(self, tmp_path: Path) -> None:
        saved_model(tmp_path / "m" / "1")
        saved_model(tmp_path / "m" / "sub" / "1")
        models = discover_models(tmp_path)
        assert list(models) == ["m"]

    def test_duplicate_names(self, tmp_path: Path) -> None:
        saved_model(tmp_path / "a" / "m" / "1")
        saved_model(tmp_path / "b" / "m" / "1")
        with pytest.raises(BackendUnavailable, match="Two models named 'm'"):
            discover_models(tmp_path)

    def test_nothing_found(self, tmp_path: Path) -> None:
        (tmp_path / "empty" / "deeper").mkdir(parents=True)
        with pytest.raises(BackendUnavailable, match=f"No SavedModel found in {tmp_path}"):
            discover_models(tmp_path)

    def test_not_a_directory(self, tmp_path: Path) -> None:
        with pytest.raises(BackendUnavailable, match="does not exist or is not a directory"):
            discover_models(tmp_path / "nope")

    def test_depth_is_bounded(self, tmp_path: Path) -> None:
        deep = tmp_path
        for level in range(10):
            deep = deep / f"d{level}"
        saved_model(deep / "m" / "1")
        with pytest.raises(BackendUnavailable, match="No SavedModel found"):
            discover_models(tmp_path)


class TestResolve:
    def test_mapping(self, tmp_path: Path) -> None:
        bare = saved_model(tmp_path / "somewhere")
        numbered = saved_model(tmp_path / "other" / "7")
        base = tmp_path / "base"
        saved_model(base / "1")
        saved_model(base / "3")
        models = resolve_models({"a": bare, "b": str(numbered), "c": base})
        assert list(models) == ["a", "b", "c"]
        assert models["a"].versions == {1: bare}
        assert models["b"].versions == {7: numbered}
        assert models["c"].versions == {1: base / "1", 3: base / "3"}
        assert models["c"].name == "c"

    def test_single_path_is_discovered(self, tmp_path: Path) -> None:
        saved_model(tmp_path / "m" / "1")
        assert list(resolve_models(str(tmp_path))) == ["m"]

    def test_missing_path(self, tmp_path: Path) -> None:
        with pytest.raises(
            BackendUnavailable, match=r"Model path .*nope for model 'a' does not exist"
        ):
            resolve_models({"a": tmp_path / "nope"})

    def test_not_a_model(self, tmp_path: Path) -> None:
        (tmp_path / "x" / "m" / "1").mkdir(parents=True)
        with pytest.raises(BackendUnavailable, match="No SavedModel found for model 'a'"):
            resolve_models({"a": tmp_path / "x"})

    def test_empty_name_or_mapping(self, tmp_path: Path) -> None:
        path = saved_model(tmp_path / "m")
        with pytest.raises(BackendUnavailable, match="empty model name"):
            resolve_models({"": path})
        with pytest.raises(BackendUnavailable, match="No models were given"):
            resolve_models({})
