"""The formats users download (Q4_0, Q8_0, Q4_K_M) through the real engine: text, images, KV reuse.

Replies are compared as generated token ids with EOS suppressed, so every comparison covers the
same number of real tokens; a check that different images give different ids shows the comparison
can fail.
"""

from __future__ import annotations

from collections import Counter

import gguf
import pytest

from app.chat import Conversation, GenParams, Turn
from app.engine import LlamaCppEngine
from app.images import prepare_image
from modelwriter import PRESETS, write_pair
from replies import ids_of, said

IDS = GenParams(temperature=0.0, max_tokens=8, seed=7, ignore_eos=True)
# The tensor types each file must really hold (gguf-py names), so a silent fallback is caught.
EXPECTED_TYPES = {"q4_0": {"Q4_0"}, "q8_0": {"Q8_0"}, "q4_k_m": {"Q4_K", "Q6_K"}}


@pytest.fixture(scope="module", params=sorted(EXPECTED_TYPES))
def quant_engine(request, tmp_path_factory):
    quant = request.param
    lm, mm = write_pair(tmp_path_factory.mktemp(f"quant-{quant}"), PRESETS[quant], f"test-{quant}")
    eng = LlamaCppEngine()
    eng.load(lm, mm)
    yield quant, lm, eng
    eng.close()


def _ids(engine, conv, params=IDS) -> list[int]:
    text = said(engine.stream_reply(conv, params))
    st = text.stats
    assert len(st.token_ids) == st.completion_tokens == params.max_tokens
    assert isinstance(text, str)
    return ids_of(text)


def _user(text, *paths):
    return Turn("user", text, [prepare_image(p) for p in paths])


def test_file_holds_the_quantization_it_claims(quant_engine):
    quant, lm, _eng = quant_engine
    types = Counter(t.tensor_type.name for t in gguf.GGUFReader(str(lm)).tensors)
    assert EXPECTED_TYPES[quant] <= set(types), types


def test_text_turn(quant_engine):
    _quant, _lm, eng = quant_engine
    ids = _ids(eng, Conversation(turns=[Turn("user", "hello there")]))
    assert ids.stats.image_tokens == 0
    assert len(set(ids)) > 1 or ids[0] not in (0, 1, 2)  # not a stream of control tokens


def test_image_turn_and_images_change_the_answer(quant_engine, images):
    _quant, _lm, eng = quant_engine
    eng.embeddings.clear()
    red = _ids(eng, Conversation(turns=[_user("what colour?", images["red"])]))
    assert red.stats.image_tokens > 0 and red.stats.images_encoded == 1
    blue = _ids(eng, Conversation(turns=[_user("what colour?", images["blue"])]))
    assert red != blue  # what the image holds reaches the logits, so a wrong cache would show


def test_follow_up_with_reuse_equals_fresh_evaluation(quant_engine, images):
    _quant, _lm, eng = quant_engine
    conv = Conversation(turns=[_user("first", images["red"])])
    for follow_up in (None, _user("second", images["blue"]), Turn("user", "third")):
        if follow_up is not None:
            conv.turns.append(follow_up)
        eng.reuse_kv = True
        reused = _ids(eng, conv)
        evaluated = reused.stats.prompt_tokens_evaluated
        total = reused.stats.prompt_tokens
        eng.reuse_kv = False
        fresh = _ids(eng, conv)
        eng.reuse_kv = True
        assert reused == fresh
        if follow_up is not None:
            assert evaluated < total  # only the new tail was evaluated
        eng_text = eng._llama._model.detokenize(reused).decode(errors="replace")
        conv.turns.append(Turn("assistant", eng_text))


def test_guard_state_is_reported(quant_engine):
    from app.backend import cpu_flags
    from app.llamalib import extra_buffers_allowed, system_info

    quant, _lm, eng = quant_engine
    assert eng.model.backend in ("cpu", "cuda", "metal", "other-gpu")
    assert eng.model.extra_buffers is extra_buffers_allowed()
    if quant == "q4_0" and "REPACK = 1" in system_info() and "avx2" in cpu_flags() and eng.model.backend == "cpu":
        assert "CPU_REPACK" in eng.model.weight_buffers  # the faster AVX2 layout is kept where it is safe


def test_extra_buffers_off_gives_the_same_tokens(quant_engine, images, monkeypatch):
    # The AMX guard's path (plain kernels, no repacked weights) must answer like the default path.
    quant, lm, eng = quant_engine
    conv = Conversation(turns=[_user("what colour?", images["red"])])
    eng.reuse_kv = False
    try:
        base = _ids(eng, conv)
        monkeypatch.setenv("IRIS_EXTRA_BUFFERS", "0")
        other = LlamaCppEngine()
        other.load(lm, eng.model.mmproj_path)
        try:
            assert other.model.extra_buffers is False
            # The guard really changed how the weights were loaded: no repacked or AMX layouts.
            assert not {"CPU_REPACK", "AMX"} & set(other.model.weight_buffers), other.model.weight_buffers
            assert other.model.weight_buffers, "llama.cpp's buffer report was not captured"
            other.reuse_kv = False
            plain = _ids(other, conv)
        finally:
            other.close()
    finally:
        eng.reuse_kv = True
    # Repacked and plain kernels round differently; greedy ids on random weights may then part
    # after a few tokens, but the first must agree.
    assert plain[0] == base[0], (quant, base, plain)



def _mapped(path) -> bool:
    with open("/proc/self/maps") as maps:
        return any(line.rstrip().endswith(str(path)) for line in maps)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="needs Linux's /proc")
def test_repacked_weights_are_read_not_mapped_and_answer_the_same(quant_engine, images, monkeypatch):
    # Repacked weights are a copy: keeping the file mapped too would hold the weights twice in RSS.
    quant, lm, eng = quant_engine
    if not {"CPU_REPACK", "AMX"} & set(eng.model.weight_buffers):
        pytest.skip(f"{quant}: no weights repacked on this CPU, so the file stays mapped")
    assert eng.model.mmap is False and not _mapped(lm)
    conv = Conversation(turns=[_user("what colour?", images["red"])])
    eng.reuse_kv = False
    try:
        read = _ids(eng, conv)
        monkeypatch.setenv("IRIS_MMAP", "1")
        other = LlamaCppEngine()
        other.load(lm, eng.model.mmproj_path)
        try:
            assert other.model.mmap is True and _mapped(lm)
            other.reuse_kv = False
            mapped = _ids(other, conv)
        finally:
            other.close()
    finally:
        eng.reuse_kv = True
    assert read == mapped  # the same repacked weights either way: the same tokens
