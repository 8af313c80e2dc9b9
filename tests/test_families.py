"""Every model family in the catalog through the real engine: load, text, images, KV reuse, snapshots,
the embedding cache and the prompt, on pairs written in each family's own layout (tests/families.py).

Replies are compared as generated token ids with EOS suppressed, so every comparison covers the same
number of real tokens; different images giving different ids shows the comparisons can fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.chat import Conversation, GenParams, Turn
from app.engine import LlamaCppEngine
from app.images import prepare_image
from families import FAMILIES, write_family_pair
from replies import ids_of, said

IDS = GenParams(temperature=0.0, max_tokens=6, seed=7, ignore_eos=True)
CATALOG = json.loads((Path(__file__).parent.parent / "models" / "catalog.json").read_text())["models"]
M = "<__media__>"

# Iris's prompt for one fixed conversation (system, a question with an image, an answer, a follow-up), as each
# family's reference format renders it; for GGUF templates, as the template renders it with llama.cpp's
# convention that an image part becomes the media marker (mtmd adds the image's own tokens around it).
CHATML_TAIL = "<|im_start|>assistant\nred.<|im_end|>\n<|im_start|>user\nand now?<|im_end|>\n<|im_start|>assistant\n"
EXPECTED_PROMPT = {
    "llava-1.5": f"Be brief. USER: {M}\nwhat colour? ASSISTANT: red.</s>USER: and now? ASSISTANT:",
    "llava-1.6": f"Be brief. USER: {M}\nwhat colour? ASSISTANT: red.</s>USER: and now? ASSISTANT:",
    "moondream": f"{M}\n\nQuestion: Be brief.\n\nwhat colour?\n\nAnswer: red.\n\nQuestion: and now?\n\nAnswer:",
    "nanollava": f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{M}\nwhat colour?<|im_end|>\n" + CHATML_TAIL,
    "minicpm-v": f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{M}\nwhat colour?<|im_end|>\n" + CHATML_TAIL,
    "qwen2-vl": f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{M}what colour?<|im_end|>\n" + CHATML_TAIL,
    "qwen2.5-vl": f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{M}what colour?<|im_end|>\n" + CHATML_TAIL,
    "gemma-3": (f"<start_of_turn>user\nBe brief.\n\n{M}what colour?<end_of_turn>\n<start_of_turn>model\nred.<end_of_turn>\n"
                "<start_of_turn>user\nand now?<end_of_turn>\n<start_of_turn>model\n"),
    "smolvlm": (f"<|im_start|>System: Be brief.<end_of_utterance>\nUser: {M}what colour?<end_of_utterance>\n"
                "Assistant: red.<end_of_utterance>\nUser: and now?<end_of_utterance>\nAssistant:"),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def fam(request, tmp_path_factory):
    name = request.param
    lm, mm = write_family_pair(tmp_path_factory.mktemp(f"family-{name}"), name)
    eng = LlamaCppEngine()
    eng.load(lm, mm)
    yield name, eng
    eng.close()


def _ids(engine, conv, session=None) -> list[int]:
    text = said(engine.stream_reply(conv, IDS, session=session))
    st = text.stats
    assert len(st.token_ids) == st.completion_tokens == IDS.max_tokens
    return ids_of(text)


def _user(text, *paths):
    return Turn("user", text, [prepare_image(p) for p in paths])


def test_load_picks_the_catalog_chat_format(fam):
    name, eng = fam
    formats = {m["chat_format"] for m in CATALOG if m["family"] == name}
    assert formats, f"no catalog entry of family {name}"
    assert eng.model.chat_format in formats, (eng.model.chat_format, formats)
    assert eng.model.image_tokens > 0


def test_text_turn(fam):
    _name, eng = fam
    ids = _ids(eng, Conversation(turns=[Turn("user", "hello there")]))
    assert ids.stats.image_tokens == 0
    assert len(set(ids)) > 1 or ids[0] > 2  # not a stream of control tokens


def test_image_turn_and_images_change_the_answer(fam, images):
    _name, eng = fam
    eng.embeddings.clear()
    red = _ids(eng, Conversation(turns=[_user("what colour?", images["red"])]))
    st = red.stats
    assert st.image_tokens > 0 and st.images_encoded >= 1
    blue = _ids(eng, Conversation(turns=[_user("what colour?", images["blue"])]))
    assert red != blue  # what the image holds reaches the logits, so a wrong cache would show


def test_two_images_in_one_message(fam, images):
    name, eng = fam
    conv = Conversation(turns=[_user("compare them", images["red"], images["blue"])])
    if not FAMILIES[name].multi_image:
        assert eng.model.max_images == 1
        return
    assert eng.model.max_images >= 2
    one = eng.count_tokens(Conversation(turns=[_user("compare them", images["red"])]))
    two = eng.count_tokens(conv)
    assert two > one
    ids = _ids(eng, conv)
    assert ids.stats.prompt_tokens == two
    # The second image reaches the logits (exactly equal logits would mean it was dropped).
    one_logits = eng.next_token_logits(Conversation(turns=[_user("compare them", images["red"])]))
    two_logits = eng.next_token_logits(conv)
    assert max(abs(x - y) for x, y in zip(one_logits, two_logits)) > 1e-3


def test_follow_up_with_reuse_equals_fresh_evaluation(fam, images):
    name, eng = fam
    second = (images["blue"], images["red"]) if FAMILIES[name].multi_image else (images["blue"],)
    conv = Conversation(turns=[_user("first", images["red"])])
    for follow_up in (None, _user("second", *second), Turn("user", "third")):
        if follow_up is not None:
            conv.turns.append(follow_up)
        eng.reuse_kv = True
        reused = _ids(eng, conv, session="reuse")
        evaluated, total = reused.stats.prompt_tokens_evaluated, reused.stats.prompt_tokens
        eng.reuse_kv = False
        fresh = _ids(eng, conv, session="reuse")
        eng.reuse_kv = True
        assert reused == fresh, (name, len(conv.turns))
        if follow_up is not None:
            assert evaluated < total  # only the new tail was evaluated
        conv.turns.append(Turn("assistant", eng._llama._model.detokenize(reused).decode(errors="replace")))


def test_conversation_switch_and_back_restores_the_snapshot(fam, images):
    name, eng = fam
    a = Conversation(turns=[_user("about red", images["red"]), Turn("assistant", "ok"), Turn("user", "more?")])
    b = Conversation(turns=[_user("about blue", images["blue"])])
    eng.reuse_kv = False
    fresh = _ids(eng, a)
    eng.reuse_kv = True
    first = _ids(eng, a, session="conv-a")
    assert first == fresh, name
    last = _ids(eng, b, session="conv-b")
    again = _ids(eng, a, session="conv-a")
    st = again.stats
    if FAMILIES[name].lm_arch == "gemma3":
        # The test pair's 16-token sliding window no longer covers the kept prefix's last window, so
        # the engine evaluates A again rather than answer from a truncated cache (as llama-server does).
        assert st.prompt_tokens_evaluated == st.prompt_tokens
    else:
        # Back on A: the snapshot came back, so only the last token is evaluated again.
        assert st.prompt_tokens_evaluated <= 1 + IDS.max_tokens, (name, st.prompt_tokens_evaluated, st.prompt_tokens)
    assert again == first


def test_same_image_in_a_new_conversation_is_not_encoded_again(fam, images):
    name, eng = fam
    eng.embeddings.clear()
    # Text only first, so that no earlier test's image is still in the KV cache.
    last = _ids(eng, Conversation(system="Other.", turns=[Turn("user", "no picture")]), session="cache")
    last = _ids(eng, Conversation(turns=[_user("look", images["red"])]), session="cache")
    encoded = last.stats.images_encoded
    assert encoded >= 1
    # Another conversation in between, so the KV cache no longer holds the image.
    last = _ids(eng, Conversation(system="Other.", turns=[Turn("user", "no picture")]), session="cache")
    cached = _ids(eng, Conversation(system="New.", turns=[_user("again?", images["red"])]), session="cache")
    st = cached.stats
    assert st.images_encoded == 0 and st.images_cached == encoded, (name, st.images_encoded, st.images_cached)
    eng.embeddings.clear()
    eng.reuse_kv = False
    try:
        encoded_again = _ids(eng, Conversation(system="New.", turns=[_user("again?", images["red"])]))
    finally:
        eng.reuse_kv = True
    assert cached == encoded_again  # a cached embedding answers as a fresh encode does


def test_prompt_matches_the_family_template(fam, images):
    name, eng = fam
    conv = Conversation(system="Be brief.", turns=[_user("what colour?", images["red"]), Turn("assistant", "red."),
                                                    Turn("user", "and now?")])
    text, imgs = eng.render(conv)
    assert text == EXPECTED_PROMPT[name]
    assert len(imgs) == 1


def _best_resolution(w: int, h: int, candidates: list[tuple[int, int]]) -> tuple[int, int]:
    """LLaVA-NeXT's select_best_resolution: most of the image kept, then least padding."""
    best, best_fit, best_waste = candidates[0], -1, None
    for cw, ch in candidates:
        scale = min(cw / w, ch / h)
        fit = min(int(w * scale) * int(h * scale), w * h)
        waste = cw * ch - fit
        if fit > best_fit or (fit == best_fit and waste < best_waste):
            best, best_fit, best_waste = (cw, ch), fit, waste
    return best


@pytest.mark.parametrize("size", [(64, 48), (64, 20), (20, 60), (30, 30), (200, 120)])
def test_llava_next_tiling_follows_the_grid_pinpoints(tmp_path_factory, size):
    from PIL import Image

    f = FAMILIES["llava-1.6"]
    lm, mm = write_family_pair(tmp_path_factory.mktemp("tiling"), "llava-1.6")
    img = tmp_path_factory.mktemp("tiling-img") / "img.png"
    Image.new("RGB", size, (200, 120, 40)).save(img)
    pins = list(zip(f.pinpoints[::2], f.pinpoints[1::2]))
    cw, ch = _best_resolution(*size, pins)
    tiles = (cw // f.image_size) * (ch // f.image_size)
    per_tile = (f.image_size // f.patch) ** 2
    eng = LlamaCppEngine()
    eng.load(lm, mm)
    try:
        units = eng.prompt_units(Conversation(turns=[_user("hi", img)]))
        chunks = [u for u in units if isinstance(u, tuple)]
        # An overview of the whole image, then one chunk per tile of the chosen grid; a 1x1 grid is the
        # overview alone (llama.cpp does not repeat it).
        n = 1 if tiles == 1 else 1 + tiles
        assert len(chunks) == n, (size, (cw, ch), chunks)
        assert sum(u[1] for u in chunks) == n * per_tile
        assert eng.image_cost(prepare_image(img)) == n * per_tile
    finally:
        eng.close()


def test_llava_next_mistral_prompt_is_mistral_instruct():
    from app.prompts import mistral_instruct

    conv = Conversation(system="Be brief.", turns=[Turn("user", "what colour?", [object()]), Turn("assistant", "red."),
                                                    Turn("user", "and now?")])
    assert mistral_instruct(conv, M) == (f"[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n{M}\nwhat colour? [/INST] red.</s>"
                                         "[INST] and now? [/INST]")


def test_an_image_the_encoder_cannot_use_is_refused_before_it_is_saved(tmp_path):
    import io

    from PIL import Image

    from app.errors import UnsupportedImage
    from app.history import History
    from app.images import PreparedImage
    from app.services import Services
    from app.store import ModelStore

    lm, mm = write_family_pair(tmp_path / "smol", "smolvlm")
    buf = io.BytesIO()
    Image.new("RGB", (1, 4000), (200, 50, 50)).save(buf, "PNG")
    # Past Iris's own shape limits (built directly): SmolVLM's tiler cannot cut it.
    sliver = PreparedImage(buf.getvalue(), "f" * 64, "sliver.png", 1, 4000)
    eng = LlamaCppEngine()
    eng.load(lm, mm)
    try:
        with pytest.raises(UnsupportedImage, match="cannot use an image of this shape"):
            eng.image_cost(sliver)
        history = History(tmp_path / "h")
        services = Services(engine=eng, store=ModelStore(tmp_path / "models"), history=history)
        services.loaded = object()
        cid = history.create()
        with pytest.raises(UnsupportedImage):
            services.ask(cid, "what is it?", [sliver])
        assert history.get(cid).messages == [] and not history.image_path(sliver.sha256).exists()
        history.close()
    finally:
        eng.close()


def test_a_video_goes_in_as_frames_each_after_its_time(fam, tmp_path):
    from videos import moving_square

    from app.services import frame_labels
    from app.video import sample

    name, eng = fam
    clip = sample(moving_square(tmp_path / "clip.mp4", seconds=3, fps=10, size=(96, 64)), fps=1.0, max_frames=3)
    conv = Conversation(turns=[Turn("user", "what happens?", list(clip.frames), frame_labels(clip.times))])
    text, images = eng.render(conv)
    assert len(images) == 3
    at = [text.index(label) for label in ("Frame at 0:00:", "Frame at 0:01:", "Frame at 0:02:")]
    assert at == sorted(at)  # each time once, in order, before its frame
    eng.embeddings.clear()
    ids = _ids(eng, conv)
    assert ids.stats.images_encoded >= 3 and ids.stats.image_tokens > 0  # LLaVA-1.6 counts each tile
