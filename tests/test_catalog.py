"""Every catalog entry is well-formed: both files per quantization, sizes, handler, licence."""

from __future__ import annotations

import json

import pytest

from app.catalog import load_catalog
from app.config import catalog_path


def test_catalog_loads_with_required_models():
    rec, specs = load_catalog()
    ids = {s.id for s in specs}
    assert len(specs) >= 12
    for needed in ("llava-1.5-7b", "llava-1.5-13b", "llava-1.6-mistral-7b", "llava-1.6-vicuna-7b",
                   "bakllava-1", "moondream2", "nanollava", "minicpm-v-2.6", "qwen2-vl-2b",
                   "qwen2.5-vl-7b", "gemma-3-4b", "smolvlm2-2.2b"):
        assert needed in ids
    assert set(rec) >= {"cpu", "cuda", "metal"}
    assert next(s for s in specs if s.id == "qwen2.5-vl-3b").non_commercial


def test_a_broken_entry_is_named(tmp_path):
    data = json.loads(catalog_path().read_text())
    data["models"][0]["quants"]["Q4_K"]["mmproj"]["sha256"] = "xyz"
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="llava-1.5-7b/Q4_K: bad sha256"):
        load_catalog(bad)
