"""The Python-side checks that keep malformed GGUF files away from llama.cpp."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.errors import BadModelFile, ModelMismatch
from app.ggufinfo import check_pair, read_gguf
from modelwriter import Shape, corrupt_copy, write_lm, write_mmproj, write_pair


def test_reads_the_pair(tiny_pair):
    pair = check_pair(*tiny_pair)
    assert pair.lm.n_embd == 64 and pair.lm.architecture == "llama"
    assert pair.mmproj.projector_type == "mlp" and pair.mmproj.out_width == 64
    assert pair.lm.chat_template and "USER" in pair.lm.chat_template


@pytest.mark.parametrize("how,words", [
    ("truncate", "truncated"), ("empty", "empty"), ("garbage", "not a GGUF"),
])
def test_damaged_files_are_refused(tiny_pair, tmp_path, how, words):
    bad = corrupt_copy(tiny_pair[0], tmp_path / f"{how}.gguf", how)
    with pytest.raises(BadModelFile, match=words):
        read_gguf(bad)


def test_width_mismatch_names_both_numbers(tmp_path):
    lm = write_lm(tmp_path / "lm96.gguf", Shape(n_embd=96, n_head=4))
    mm = write_mmproj(tmp_path / "mm64.gguf", Shape(n_embd=64))
    with pytest.raises(ModelMismatch, match=r"expects a 64-wide model; the LM .* is 96-wide"):
        check_pair(lm, mm)


def test_swapped_files_are_explained(tiny_pair):
    with pytest.raises(ModelMismatch, match="swapped"):
        check_pair(tiny_pair[1], tiny_pair[0])


def test_two_lms_are_refused(tiny_pair):
    with pytest.raises(BadModelFile, match="language model, not a vision projector"):
        check_pair(tiny_pair[0], tiny_pair[0])


def _strip(src, dst, drop_key=None, drop_tensor=None):
    """Copy a GGUF without one key or one tensor, using gguf's reader and writer."""
    import gguf

    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name == drop_key:
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, field.contents(), vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, field.contents(), vtype)
    for t in r.tensors:
        if t.name == drop_tensor:
            continue
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return dst


@pytest.mark.parametrize("tensor", ["mm.2.weight", "mm.2.bias", "v.position_embd.weight",
                                    "v.blk.0.attn_q.weight"])
def test_tensors_whose_absence_segfaults_llama_cpp_are_required(tiny_pair, tmp_path, tensor):
    bad = _strip(tiny_pair[1], tmp_path / "mm.gguf", drop_tensor=tensor)
    with pytest.raises(BadModelFile, match=tensor.replace(".", r"\.")):
        check_pair(tiny_pair[0], bad)


@pytest.mark.parametrize("key,which", [
    ("clip.vision.feed_forward_length", 1), ("clip.projector_type", 1),
    ("clip.vision.image_mean", 1), ("llama.context_length", 0),
    ("llama.attention.layer_norm_rms_epsilon", 0),
])
def test_missing_required_keys_are_named(tiny_pair, tmp_path, key, which):
    bad = _strip(tiny_pair[which], tmp_path / "x.gguf", drop_key=key)
    args = [tiny_pair[0], tiny_pair[1]]
    args[which] = bad
    with pytest.raises(BadModelFile, match=key.replace(".", r"\.")):
        check_pair(*args)


def test_writer_refuses_shapes_that_crash_llama_cpp():
    with pytest.raises(ValueError, match="even-sized heads"):
        replace(Shape(), n_head=3).validate()
    with pytest.raises(ValueError, match="v_heads"):
        replace(Shape(), v_heads=3).validate()


def test_pinpoints_are_seen(tmp_path):
    _, mm = write_pair(tmp_path, Shape(pinpoints=True), "nxt")
    assert check_pair(tmp_path / "nxt.gguf", mm).mmproj.has_pinpoints
