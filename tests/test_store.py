"""Pair discovery in the models folder."""

from __future__ import annotations

import pytest

from app.errors import ModelNotFound
from app.store import ModelStore
from modelwriter import corrupt_copy, write_pair


def test_pairs_by_folder_and_loose_files(tmp_path):
    write_pair(tmp_path / "llava-a", name="a")
    write_pair(tmp_path, name="loose")
    corrupt_copy(tmp_path / "loose.gguf", tmp_path / "broken.gguf", "truncate")
    pairs, problems = ModelStore(tmp_path).scan()
    assert {p.name for p in pairs} == {"llava-a", "loose"}
    loose = next(p for p in pairs if p.name == "loose")
    assert loose.mmproj.name == "loose-mmproj.gguf"
    assert [pr.path.name for pr in problems] == ["broken.gguf"]
    assert "truncated" in problems[0].reason


def test_lm_without_mmproj_is_a_problem(tmp_path):
    lm, mm = write_pair(tmp_path / "x", name="x")
    mm.unlink()
    pairs, problems = ModelStore(tmp_path).scan()
    assert not pairs and "no mmproj" in problems[0].reason


def test_find_names_what_exists(tmp_path):
    write_pair(tmp_path / "llava-a", name="a")
    store = ModelStore(tmp_path)
    assert store.find("llava").name == "llava-a"
    with pytest.raises(ModelNotFound, match="Installed: llava-a"):
        store.find("nope")


def test_default_root_follows_iris_home(iris_home):
    assert ModelStore().root == iris_home / "data" / "models"
