"""The chat flow the UI uses, with history, through the real engine on the tiny test model."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat import Conversation, GenParams, Turn, fit_conversation
from app.errors import AppError, NoModelLoaded, ReplyInProgress, TooManyImages
from app.history import History, HistoryDiskFull, StoredMessage
from app.images import prepare_image
from app.services import build_services
from app.settings import Settings, load_settings, save_settings, settings_path


def test_reply_is_saved_with_model_and_stats(services, images):
    cid = services.history.create()
    services.ask(cid, "What colour?", [prepare_image(images["red"])])
    text = "".join(services.reply(cid))
    conv = services.history.get(cid)
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[1].text == text and conv.messages[1].model == "tiny-llava"
    assert conv.messages[1].stats["images_encoded"] == 1
    usage = services.usage(cid)
    assert usage.images == 1 and usage.size == 2048 and usage.used > 16


def test_regenerate_and_edit_keep_the_old_versions(services, images):
    cid = services.history.create()
    services.ask(cid, "first", [prepare_image(images["red"])])
    first = "".join(services.reply(cid))
    services.ask(cid, "second", [])
    second = "".join(services.reply(cid))
    services.params = GenParams(temperature=0.0, max_tokens=5, seed=1)  # another length: another text
    again = "".join(services.regenerate(cid))
    msgs = services.history.get(cid).messages
    assert len(msgs) == 4 and msgs[3].text == again != second and msgs[3].version == (2, 2)
    "".join(services.edit(cid, 0, "first, edited"))
    msgs = services.history.get(cid).messages
    assert [m.role for m in msgs] == ["user", "assistant"] and msgs[0].text == "first, edited"
    assert msgs[0].images and msgs[0].version == (2, 2)  # the image stays with the edited question
    # The first version is still there, with its newest answers, and is answered from it.
    services.switch_version(cid, msgs[0].id, -1)
    msgs = services.history.get(cid).messages
    assert [m.text for m in msgs] == ["first", first, "second", again]
    services.switch_version(cid, msgs[3].id, -1)
    assert services.history.get(cid).messages[3].text == second
    services.ask(cid, "third", [])
    "".join(services.reply(cid))
    assert [t.text for t in services.conversation(cid).turns][:4] == ["first", first, "second", second]


def test_a_stopped_reply_is_kept(services, images):
    services.params = GenParams(temperature=0.0, max_tokens=64, seed=1)
    cid = services.history.create()
    services.ask(cid, "Tell me everything", [prepare_image(images["red"])])
    got = ""
    for delta in services.reply(cid):
        got += delta
        services.engine.stop()
    msgs = services.history.get(cid).messages
    assert msgs[-1].role == "assistant" and msgs[-1].text == got
    assert msgs[-1].stats["finish_reason"] == "stopped"


def test_overflow_drops_the_oldest_turns_and_says_so(models_dir, tiny_pair, tmp_path, images):
    s = build_services(models_dir, with_history=True)
    s.load_options = {"n_ctx": 256}
    s.params = GenParams(temperature=0.0, max_tokens=16, seed=1)
    s.load("tiny-llava")
    try:
        cid = s.history.create()
        filler = "the image is a red square and the colour is red " * 8
        s.history.append(cid, StoredMessage("user", "look", [s.history.save_image(prepare_image(images["red"]))]))
        for i in range(4):
            s.history.append(cid, StoredMessage("assistant", filler))
            s.history.append(cid, StoredMessage("user", f"question {i}"))
        reply = s.reply(cid)
        text = "".join(reply)
        assert "oldest" in reply.notice and "left out" in reply.notice
        assert s.history.get(cid).messages[-1].text == text  # answered, not an error
        assert reply.stats.images_encoded == 1  # the newest image was kept
    finally:
        s.close()
        s.history.close()


def test_no_model_and_too_many_images_are_refused(models_dir, images, services):
    cid = services.history.create()
    with pytest.raises(TooManyImages, match="at most 4 images per message; this one has 5"):
        services.ask(cid, "x", [prepare_image(images["red"])] * 5)
    services.close()
    with pytest.raises(NoModelLoaded, match="Models tab"):
        services.ask(cid, "x", [])


def test_fit_keeps_system_question_and_newest_image(images):
    red = prepare_image(images["red"])
    conv = Conversation("sys", [Turn("user", "a", [red]), Turn("assistant", "b"), Turn("user", "c"),
                                Turn("assistant", "d"), Turn("user", "e")])
    fitted, dropped = fit_conversation(conv, lambda c: 10 * len(c.turns), 30)
    assert dropped == 2 and [t.text for t in fitted.turns] == ["c", "d", "e"]
    assert fitted.turns[0].images == [red] and fitted.system == "sys"
    one, dropped = fit_conversation(conv, lambda c: 1000, 30)
    assert [t.text for t in one.turns] == ["e"] and one.turns[0].images == [red] and dropped == 4
    # A video's frames move with their times.
    video = Conversation("", [Turn("user", "a", [red, red], ["Frame at 0:00:", "Frame at 0:01:"]),
                              Turn("assistant", "b"), Turn("user", "c")])
    moved, _ = fit_conversation(video, lambda c: 10 * len(c.turns), 10)
    assert moved.turns[0].images == [red, red] and moved.turns[0].labels == ["Frame at 0:00:", "Frame at 0:01:"]


def test_settings_are_saved_and_a_damaged_file_is_not_fatal(tmp_path):
    assert load_settings() == Settings()
    save_settings(Settings(temperature=0.7, n_ctx=8192, system_prompt="Be brief."))
    assert load_settings().temperature == 0.7 and load_settings().system_prompt == "Be brief."
    settings_path().write_text("{not json")
    assert load_settings() == Settings() and settings_path().with_suffix(".json.bad").exists()
    assert Settings(temperature=9, max_tokens=1).clamp() == Settings(temperature=2.0, max_tokens=16)


def test_settings_follow_the_user(models_dir):
    s = build_services(models_dir, with_history=True)
    s.update_settings(temperature=0.9, n_gpu_layers=0, n_ctx=1024)
    assert s.params.temperature == 0.9 and s.load_options == {"n_ctx": 1024, "n_gpu_layers": 0}
    again = build_services(models_dir, with_history=True)
    assert again.settings.temperature == 0.9
    s.history.close()
    again.history.close()
    assert isinstance(History, type)


def test_attachment_cost_before_sending_uses_the_engine_figures(engine, images, tmp_path):
    from app.images import prepare_image
    from app.services import Services
    from app.store import ModelStore
    from app.ui import attachment_line

    services = Services(engine=engine, store=ModelStore(tmp_path))
    red, blue = prepare_image(images["red"]), prepare_image(images["blue"])
    cost = services.attachment_cost(None, [red, blue])
    assert cost.per_image == [16, 16] and cost.total == 32 and cost.size == engine.model.n_ctx
    assert attachment_line(cost).startswith("2 images: 16 + 16 = 32 tokens")
    cost.size = 20
    assert "does not fit" in attachment_line(cost)
    assert services.attachment_cost(None, []) is None


def test_a_catalog_model_loads_with_the_catalog_image_limit(tiny_pair, tmp_path):
    import json
    import shutil

    from app.services import build_services
    from app.store import MANIFEST
    from fakeengine import FakeEngine

    d = tmp_path / "models" / "moondream2-F16"
    d.mkdir(parents=True)
    files = []
    for role, src in (("lm", tiny_pair[0]), ("mmproj", tiny_pair[1])):
        shutil.copy(src, d / src.name)
        files.append({"role": role, "file": src.name, "size": src.stat().st_size})
    (d / MANIFEST).write_text(json.dumps({"files": files, "catalog_id": "moondream2", "chat_format": "moondream"}))
    engine = FakeEngine()
    seen = {}
    engine.load = lambda lm, mm, **kw: seen.update(kw) or setattr(engine, "model", object())
    services = build_services(tmp_path / "models", engine=engine)
    services.load(services.store.pairs()[0].name)
    assert seen["max_images"] == 1  # Moondream2 takes one image per message (catalog), not the format default


def test_load_by_path_takes_only_gguf_files_and_tells_nothing_else(tmp_path, tiny_pair):
    import pytest

    from app.errors import AppError
    from app.services import build_services
    from fakeengine import FakeEngine

    services = build_services(tmp_path / "models", engine=FakeEngine())
    (tmp_path / "secret.txt").write_text("x")
    answers = set()
    for probe in (tmp_path / "secret.txt", tmp_path / "missing.gguf", tmp_path, Path("/etc/passwd")):
        with pytest.raises(AppError) as err:
            services.load_files(probe, tiny_pair[1])
        answers.add(str(err.value).replace(probe.name, "NAME"))
    assert len(answers) == 1, answers  # the same words whether the path exists or not
    assert services.load_files(*tiny_pair).name == tiny_pair[0].stem


def test_a_refused_first_question_leaves_no_empty_chat(services, images, tmp_path):
    """ask(None, …) creates the conversation; a question refused at any check leaves nothing behind."""
    (tmp_path / "fake.png").write_bytes(b"not an image")
    too_many = [images["red"]] * (services.engine.model.max_images + 1)
    refusals = [("", []), ("many", too_many), ("bad", [tmp_path / "fake.png"])]
    for text, files in refusals:
        with pytest.raises(AppError):
            services.ask(None, text, files, system="Be brief.")
    assert services.history.list() == []

    def full(*_a, **_k):
        raise HistoryDiskFull("The disk is full.")

    real_append = services.history.append
    services.history.append = full
    with pytest.raises(HistoryDiskFull):
        services.ask(None, "saved?", [images["red"]])
    assert services.history.list() == []
    services.history.append = real_append
    cid = services.ask(None, "What colour?", [images["red"]], system="Be brief.")
    stored = services.history.get(cid)
    assert stored.system == "Be brief." and stored.messages[0].images
    # A second question before the first is answered would take the first one's answer: refused in words.
    with pytest.raises(ReplyInProgress, match="still answering"):
        services.ask(cid, "and now?")
    assert len(services.history.get(cid).messages) == 1
    "".join(services.reply(cid))
    assert services.ask(cid, "and now?") == cid and len(services.history.get(cid).messages) == 3


def test_the_engine_gets_the_asked_image_from_memory(services, images, monkeypatch):
    cid = services.ask(None, "What colour?", [images["red"]])

    def no_disk(sha):
        raise AssertionError("read back from disk")

    monkeypatch.setattr(services.history, "load_image", no_disk)
    conv = services.conversation(cid)
    assert conv.turns[0].images[0].png == prepare_image(images["red"]).png


def test_each_turn_is_tokenized_once_and_answers_as_a_fresh_split(services, images, monkeypatch):
    """Fitting the context and prefill share one mtmd split; the reply is the one a fresh split gives."""
    import app.engine.llama as llama_mod

    splits = []
    real = llama_mod.MtmdPrompt

    class Counted(real):
        def __init__(self, *args, **kwargs):
            splits.append(args[1])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(llama_mod, "MtmdPrompt", Counted)
    services.params = GenParams(temperature=0.0, max_tokens=8, seed=1, ignore_eos=True)
    cid = services.ask(None, "What colour?", [images["red"]])
    "".join(services.reply(cid))
    services.ask(cid, "And the shape?", [images["blue"]])
    splits.clear()
    shared = services.reply(cid)
    "".join(shared)
    assert len(splits) == 1, splits  # fit_conversation counted this prompt; prefill used that split
    conv = services.conversation(cid)
    conv.turns = conv.turns[:3]
    services.engine.reuse_kv = False  # a fresh prefill, tokenized on its own
    fresh = services.engine.stream_reply(conv, services.params)
    "".join(fresh)
    assert len(splits) == 2
    assert shared.stats.token_ids == fresh.stats.token_ids and len(fresh.stats.token_ids) == 8


def test_load_applies_the_current_settings_to_the_model_already_loaded(models_dir):
    from fakeengine import FakeEngine

    engine = FakeEngine()
    loads = []
    real = engine.load
    engine.load = lambda lm, mm, **kw: (loads.append(kw), real(lm, mm, **kw))[1]
    s = build_services(models_dir, engine=engine)
    s.load("tiny-llava")
    s.load("tiny-llava")
    assert len(loads) == 1  # the same settings: nothing to do
    s.load_options = {"n_ctx": 1024, "n_gpu_layers": None}
    s.load("tiny-llava")
    assert len(loads) == 2 and loads[-1]["n_ctx"] == 1024


def test_settings_saved_at_the_same_moment_from_two_places_both_land():
    """A page-open load and a slider (or two tabs) save together: no 'file not found' from a shared temp file."""
    import threading

    failed: list[Exception] = []

    def save_many(t: float) -> None:
        try:
            for _ in range(200):
                save_settings(Settings(temperature=t))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            failed.append(exc)

    temperatures = (0.0, 0.25, 0.5, 0.75)
    threads = [threading.Thread(target=save_many, args=(t,)) for t in temperatures]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == [] and load_settings().temperature in temperatures


def test_switching_back_to_a_version_evaluates_only_what_differs(services, images):
    """Reuse across branches: the shared prefix (with its image) stays in the KV cache; only the rest is evaluated."""
    cid = services.history.create()
    services.ask(cid, "What colour is it?", [prepare_image(images["red"])])
    "".join(services.reply(cid))
    services.params = GenParams(temperature=0.0, max_tokens=5, seed=1)
    "".join(services.regenerate(cid))  # version 2 of the answer is in the cache now
    first = services.history.get(cid).messages[1]
    services.switch_version(cid, first.id, -1)
    assert services.history.get(cid).messages[1].version == (1, 2)
    services.ask(cid, "And its shape?")
    "".join(services.reply(cid))
    stats = services.history.get(cid).messages[-1].stats
    assert stats["images_encoded"] == 0  # the image is in the shared prefix (or the embedding cache)
    assert 0 < stats["prompt_tokens_evaluated"] < stats["prompt_tokens"] - stats["image_tokens"]
