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


def _install(root, name="m-Q4"):
    import json

    lm, mm = write_pair(root / name, name="m")
    files = [{"role": "lm", "file": lm.name, "size": lm.stat().st_size},
             {"role": "mmproj", "file": mm.name, "size": mm.stat().st_size}]
    (root / name / "iris-model.json").write_text(json.dumps(
        {"catalog_id": "m", "display_name": "M", "quant": "Q4", "chat_format": "llava-1-5", "files": files}))
    return lm, mm


def test_catalog_install_is_read_from_its_record_and_checked(tmp_path):
    lm, _ = _install(tmp_path)
    [pair] = ModelStore(tmp_path).pairs()
    assert (pair.name, pair.catalog_id, pair.label, pair.chat_format) == ("m-Q4", "m", "M Q4", "llava-1-5")
    with open(lm, "ab") as fh:
        fh.write(b"x")
    pairs, problems = ModelStore(tmp_path).scan()
    assert not pairs and "incomplete or damaged install" in problems[0].reason


def test_remove_deletes_only_the_pairs_files(tmp_path):
    write_pair(tmp_path / "mine", name="mine")
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    _install(tmp_path)
    store = ModelStore(tmp_path)
    store.remove("mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    store.remove("m")  # a catalog id names its one install
    assert not (tmp_path / "m-Q4").exists() and store.pairs() == []
    with pytest.raises(ModelNotFound):
        store.remove("m")


def test_a_pair_that_does_not_fit_is_refused_with_the_engines_reason(tmp_path):
    from modelwriter import Shape, write_lm, write_mmproj

    (tmp_path / "odd").mkdir()
    write_lm(tmp_path / "odd" / "odd.gguf", Shape(n_embd=128))
    write_mmproj(tmp_path / "odd" / "odd-mmproj.gguf", Shape(n_embd=64))
    pairs, problems = ModelStore(tmp_path).scan()
    assert not pairs
    assert "expects a 64-wide model" in problems[0].reason and "128-wide" in problems[0].reason


def test_the_bundled_demo_is_listed_last_labelled_and_cannot_be_removed(tmp_path):
    from app.errors import AppError

    write_pair(tmp_path / "models" / "mine", name="mine")
    write_pair(tmp_path / "demo", name="iris-demo-shapes")
    store = ModelStore(tmp_path / "models", demo_dir=tmp_path / "demo")
    pairs = store.pairs()
    assert [p.name for p in pairs] == ["mine", "iris-demo-shapes"]
    assert pairs[1].is_demo and "shapes and colours" in pairs[1].label and pairs[1].chat_format == "llava-1-5"
    with pytest.raises(AppError, match="part of Iris"):
        store.remove("iris-demo-shapes")
