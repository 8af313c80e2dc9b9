"""The engine through the real llama-cpp-python on random-weight LLaVA-1.5 files (never a mock)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from app.chat import Conversation, GenParams, Turn
from app.engine import LlamaCppEngine, auto_gpu_layers, select_chat_format
from app.errors import BadModelFile, ContextTooLong, ModelMismatch, TooManyImages
from app.ggufinfo import LMSummary, MMProjSummary
from app.images import prepare_image
from modelwriter import Shape, corrupt_copy, write_lm, write_pair
from replies import said

GREEDY = GenParams(temperature=0.0, max_tokens=12, seed=7)


def ask(engine, conv, params=GREEDY):
    return said(engine.stream_reply(conv, params))


def user(text, *paths):
    return Turn("user", text, [prepare_image(p) for p in paths])


def test_text_only_turn(engine):
    out = ask(engine, Conversation(turns=[Turn("user", "hello there")]))
    st = out.stats
    assert st.image_tokens == 0 and st.images_encoded == 0
    assert 1 <= st.completion_tokens <= GREEDY.max_tokens + 3  # multibyte hold-back, see research note
    assert st.finish_reason in ("length", "end")
    assert isinstance(out, str)


def test_one_image_reports_its_tokens_and_encode_time(engine, images):
    engine.embeddings.clear()
    engine.reuse_kv = False
    try:
        last = ask(engine, Conversation(turns=[user("what is this?", images["red"])]))
    finally:
        engine.reuse_kv = True
    st = last.stats
    assert st.image_tokens == 16 and st.images_encoded == 1
    assert st.image_encode_s > 0 and st.ttft_s > 0
    assert st.prompt_tokens > st.image_tokens
    assert st.device_lm == "CPU" and st.device_mmproj == "CPU"


def test_two_images_in_one_turn(engine, images):
    last = ask(engine, Conversation(turns=[user("compare", images["red"], images["blue"])]))
    assert last.stats.image_tokens == 32


def test_images_in_two_turns_only_encode_the_new_one(engine, images):
    engine.embeddings.clear()
    conv = Conversation(turns=[user("first", images["red"])])
    first = ask(engine, conv)
    conv.turns += [Turn("assistant", first), user("and now?", images["blue"])]
    last = ask(engine, conv)
    st = last.stats
    assert st.image_tokens == 32
    assert st.images_encoded == 1  # the red image is still in the KV cache
    assert st.prompt_tokens_evaluated < st.prompt_tokens


def test_same_size_images_differ_by_content(engine, images):
    engine.embeddings.clear()
    a = ask(engine, Conversation(turns=[user("what colour?", images["red"])]), replace(GREEDY, max_tokens=24))
    b = ask(engine, Conversation(turns=[user("what colour?", images["blue"])]), replace(GREEDY, max_tokens=24))
    assert b.stats.images_encoded == 1  # blue was not mistaken for the cached red
    assert a != b


def test_streaming_yields_several_deltas(engine):
    deltas = list(engine.stream_reply(Conversation(turns=[Turn("user", "count")]),
                                      replace(GREEDY, max_tokens=20)))
    assert len([d for d in deltas if d]) >= 2


def test_stop_from_another_thread_ends_within_a_token_then_engine_is_ready(engine):
    conv = Conversation(turns=[Turn("user", "tell me a long story")])
    got_after_stop = 0
    stopped = False
    reply = engine.stream_reply(conv, replace(GREEDY, max_tokens=400))
    for i, _delta in enumerate(reply):
        if stopped:
            got_after_stop += 1
        if i == 2:
            t = threading.Thread(target=engine.stop)
            t.start()
            t.join()
            stopped = True
    assert stopped and got_after_stop <= 1
    assert reply.stats.finish_reason == "stopped"
    assert reply.stats.completion_tokens < 20
    out = ask(engine, Conversation(turns=[Turn("user", "again")]))
    assert out.stats.finish_reason in ("length", "end") and isinstance(out, str)


def test_too_many_images_are_refused_and_engine_stays_usable(engine, images):
    conv = Conversation(turns=[user("many", *[images["red"]] * 5)])
    with pytest.raises(TooManyImages, match="at most 4 images per message; this message has 5"):
        last = ask(engine, conv)
    last = ask(engine, Conversation(turns=[Turn("user", "still there?")]))


def test_context_overflow_is_refused_with_numbers(engine):
    with pytest.raises(ContextTooLong, match=r"needs \d+ tokens .* holds 2048"):
        last = ask(engine, Conversation(turns=[Turn("user", "word " * 3000)]))
    last = ask(engine, Conversation(turns=[Turn("user", "fine")]))


def test_auto_selects_llava15_and_renders_vicuna_correctly(engine, images):
    assert engine.model.chat_format == "llava-1-5"
    text, imgs = engine.render(Conversation(turns=[
        user("What is it?", images["red"]), Turn("assistant", "A red square."), Turn("user", "Sure?")]))
    assert text.endswith("USER: <__media__>\nWhat is it? ASSISTANT: A red square.</s>USER: Sure? ASSISTANT:")
    assert "USER: USER" not in text and len(imgs) == 1


def test_explicit_generic_mtmd_handler_uses_the_files_template(tiny_pair, images):
    eng = LlamaCppEngine()
    try:
        eng.load(*tiny_pair, chat_format="mtmd")
        text, _ = eng.render(Conversation(system="Be brief.", turns=[user("hi", images["red"])]))
        assert text == "Be brief.\nUSER: <__media__>hi\nASSISTANT: "
        last = ask(eng, Conversation(turns=[user("hi", images["red"])]))
        assert last.stats.image_tokens == 16
    finally:
        eng.close()


def test_llava16_selected_from_pinpoints(tmp_path):
    lm, mm = write_pair(tmp_path, Shape(pinpoints=True), "nxt")
    eng = LlamaCppEngine()
    try:
        assert eng.load(lm, mm).chat_format == "llava-1-6"
    finally:
        eng.close()


@pytest.mark.parametrize("ptype,arch,name,tmpl,expected", [
    ("mlp", "llama", "llava", None, "llava-1-5"),
    ("mlp", "phi2", "moondream2", None, "moondream"),
    ("mlp", "qwen2", "nanollava", None, "nanollava"),
    ("mlp", "llama", "Llama-3 8B Instruct", None, "llama-3-vision-alpha"),
    ("resampler", "qwen2", "minicpm", "t", "minicpm-v-2.6"),
    ("qwen2.5vl_merger", "qwen2vl", "qwen", "t", "qwen2.5-vl"),
    ("gemma3", "gemma3", "gemma", "t", "mtmd"),
    ("qwen2vl_merger", "qwen2vl", "qwen2-vl", "t", "mtmd"),
])
def test_chat_format_selection_table(ptype, arch, name, tmpl, expected):
    lm = LMSummary(arch, 64, 2, 2048, tmpl, name)
    mm = MMProjSummary(ptype, 64, 32, 8, False, "mm")
    assert select_chat_format(lm, mm) == expected


def test_unknown_model_without_template_asks_for_a_format():
    from app.errors import ModelLoadFailed

    with pytest.raises(ModelLoadFailed, match="Choose a chat format"):
        select_chat_format(LMSummary("gemma3", 64, 2, 2048, None, "g"),
                           MMProjSummary("gemma3", 64, 32, 8, False, "m"))


def test_gpu_layer_choice():
    assert auto_gpu_layers(False, "cpu", 10**9, 32, None) == 0
    assert auto_gpu_layers(True, "metal", 10**9, 32, None) == -1
    assert auto_gpu_layers(True, "cuda", 4 * 10**9, 32, 80 * 2**30) == -1
    assert 0 < auto_gpu_layers(True, "cuda", 8 * 10**9, 32, 5 * 2**30) < 32


@pytest.mark.parametrize("how", ["truncate", "empty", "garbage"])
def test_bad_lm_files_are_refused_before_llama_cpp(tiny_pair, tmp_path, how):
    bad = corrupt_copy(tiny_pair[0], tmp_path / "bad.gguf", how)
    eng = LlamaCppEngine()
    with pytest.raises(BadModelFile):
        eng.load(bad, tiny_pair[1])
    assert eng.model is None


def test_mismatched_pair_is_refused_and_old_model_survives(tiny_pair, tmp_path):
    lm = write_lm(tmp_path / "wide.gguf", Shape(n_embd=128, n_head=4))
    eng = LlamaCppEngine()
    try:
        eng.load(*tiny_pair)
        with pytest.raises(ModelMismatch, match="64-wide model; the LM .* is 128-wide"):
            eng.load(lm, tiny_pair[1])
        assert eng.model is not None  # checks run before the resident model is closed
        last = ask(eng, Conversation(turns=[Turn("user", "hi")]))
    finally:
        eng.close()


def test_load_unload_load(tiny_pair):
    eng = LlamaCppEngine()
    eng.load(*tiny_pair)
    first = ask(eng, Conversation(turns=[Turn("user", "hi")]))
    eng.unload()
    assert eng.model is None
    eng.load(*tiny_pair)
    assert ask(eng, Conversation(turns=[Turn("user", "hi")])) == first
    eng.close()


def test_no_model_loaded_is_a_clear_error():
    from app.errors import NoModelLoaded

    with pytest.raises(NoModelLoaded, match="Pick a model"):
        list(LlamaCppEngine().stream_reply(Conversation(turns=[Turn("user", "hi")])))


def test_stop_strings_are_held_back_until_known():
    from app.engine import _held_back

    assert _held_back("the answer US", ["USER:"]) == 2
    assert _held_back("the answer", ["USER:"]) == 0
    assert _held_back("a </", ["</s>", "USER:"]) == 2


# -- cache bounds (reuse against fresh evaluation: tests/test_reuse.py) ------------------------------------


def test_caches_stay_within_their_bounds(engine, images):
    engine.sessions.clear()
    engine.sessions.max_bytes = 1  # too small for any snapshot
    try:
        last = said(engine.stream_reply(Conversation(turns=[user("x", images["red"])]), GREEDY, session="p"))
        last = said(engine.stream_reply(Conversation(turns=[user("y", images["blue"])]), GREEDY, session="q"))
        assert engine.sessions.bytes == 0
    finally:
        engine.sessions.max_bytes = 1024**3
    cache = engine.embeddings
    limit, cache.max_bytes = cache.max_bytes, 0
    try:
        cache.clear()
        last = ask(engine, Conversation(turns=[user("z", images["red"])]))
        assert cache.bytes == 0
    finally:
        cache.max_bytes = limit




def test_weights_are_mapped_only_where_no_copy_is_made(monkeypatch):
    from app.engine.llama import map_weights

    monkeypatch.delenv("IRIS_MMAP", raising=False)
    assert map_weights(extra=True, ngl=0, n_layer=32) is False    # CPU with repacking: read once
    assert map_weights(extra=False, ngl=0, n_layer=32) is True    # plain kernels run from the mapping
    assert map_weights(extra=True, ngl=-1, n_layer=32) is True    # all on the GPU (Metal: zero-copy)
    assert map_weights(extra=True, ngl=32, n_layer=32) is True
    assert map_weights(extra=True, ngl=20, n_layer=32) is False   # CPU layers repacked
    monkeypatch.setenv("IRIS_MMAP", "1")
    assert map_weights(extra=True, ngl=0, n_layer=32) is True
