"""The model process: a kill -9 mid-reply costs the unfinished tokens only, the next question is answered;
a model whose load keeps crashing the process is given up on, in words; replies match the in-process engine."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from app.chat import GenParams
from app.errors import ModelLoadFailed
from app.services import build_services
from app.worker import EngineCrashed


@pytest.fixture
def worker_services(models_dir):
    s = build_services(models_dir, with_history=True, worker=True)
    s.load("tiny-llava")
    s.params = GenParams(temperature=0.0, max_tokens=10, seed=1)
    yield s
    s.close()
    s.history.close()


def test_replies_through_the_process_are_the_in_process_ones(worker_services, models_dir, images):
    s = worker_services
    cid = s.ask(None, "What colour?", [images["red"]])
    far = s.reply(cid)
    "".join(far)
    s.ask(cid, "And the shape?")
    far2 = s.reply(cid)
    "".join(far2)
    assert far2.stats.images_encoded == 0 and far2.stats.prompt_tokens_evaluated < far2.stats.prompt_tokens // 2
    near = build_services(models_dir, with_history=True)
    try:
        near.params = s.params
        near.load("tiny-llava")
        conv = s.conversation(cid)
        conv.turns = conv.turns[:1]
        here = near.engine.stream_reply(conv, s.params)
        "".join(here)
        assert far.stats.completion_tokens == here.stats.completion_tokens == 10
        assert here.text and s.history.get(cid).messages[1].text == here.text  # real text, not two empties
    finally:
        near.close()
        near.history.close()


def test_kill_9_mid_reply_keeps_the_chat_and_the_next_question_is_answered(worker_services, images):
    s = worker_services
    cid = s.ask(None, "What colour?", [images["red"]])
    first = "".join(s.reply(cid))
    s.ask(cid, "Tell me everything")
    s.params = GenParams(temperature=0.0, max_tokens=1900, seed=1, ignore_eos=True)
    got = ""
    with pytest.raises(EngineCrashed, match=r"crashed \(signal 9.*Iris restarted it\. Your conversation is saved"):
        for i, delta in enumerate(s.reply(cid)):
            got += delta
            if i == 3:
                os.kill(s.engine.pid, signal.SIGKILL)
    msgs = s.history.get(cid).messages
    assert [m.role for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[1].text == first and msgs[3].text == got and got
    assert msgs[3].stats["finish_reason"] == "interrupted"
    s.params = GenParams(temperature=0.0, max_tokens=6, seed=1, ignore_eos=True)
    s.ask(cid, "Still there?")
    after = s.reply(cid)
    assert len("".join(after)) > 0 and after.stats.completion_tokens == 6
    assert s.engine.restarts == 1 and s.engine.restart_s is not None


def test_a_load_that_keeps_crashing_is_given_up_on(models_dir, tmp_path, monkeypatch):
    crashy = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-llava", crashy / "crashy")
    for f in (crashy / "crashy").iterdir():
        f.rename(f.with_name(f.name.replace("tiny-llava", "crashy")))
    monkeypatch.setenv("IRIS_TEST_CRASH_LOADING", "crashy")
    s = build_services(crashy, with_history=True, worker=True)
    try:
        with pytest.raises(ModelLoadFailed, match=r"crashed \(signal 11.*while loading crashy.gguf; Iris restarted it"):
            s.load("crashy")
        with pytest.raises(ModelLoadFailed, match="each time it loaded crashy.gguf .2 times., so Iris stopped trying"):
            s.load("crashy")
        with pytest.raises(ModelLoadFailed, match="stopped trying"):
            s.load("crashy")  # not tried a third time
    finally:
        s.close()
        s.history.close()


def test_a_slow_load_can_be_cancelled_and_the_next_one_works(models_dir, monkeypatch):
    import threading
    import time

    monkeypatch.setenv("IRIS_TEST_SLOW_LOADING", "30")
    s = build_services(models_dir, with_history=True, worker=True)
    try:
        failed: list[Exception] = []

        def load() -> None:
            try:
                s.load("tiny-llava")
            except ModelLoadFailed as exc:
                failed.append(exc)

        t = threading.Thread(target=load)
        t.start()
        while not s.engine._loading:
            time.sleep(0.05)
        monkeypatch.setenv("IRIS_TEST_SLOW_LOADING", "0")  # for the process started after the cancel
        assert s.cancel_load()
        t.join(timeout=20)
        assert "was cancelled; no model is loaded" in str(failed[0]) and s.loaded is None
        assert not s.cancel_load()  # nothing loading now
        s.load("tiny-llava")
        s.params = GenParams(temperature=0.0, max_tokens=4, seed=1, ignore_eos=True)
        cid = s.ask(None, "hello")
        reply = s.reply(cid)
        "".join(reply)
        assert reply.stats.completion_tokens == 4
    finally:
        s.close()
        s.history.close()


def test_a_video_through_the_process_keeps_each_frames_time_before_it(worker_services, models_dir, tmp_path):
    from videos import moving_square

    s = worker_services
    clip = moving_square(tmp_path / "clip.mp4", seconds=5, fps=10, size=(96, 64))
    cid = s.ask(None, "What happens?", [clip])
    far = s.reply(cid)
    "".join(far)
    assert far.stats.images_encoded == 5  # more than the 4 images a message may hold: frames are not images
    near = build_services(models_dir, with_history=True)
    try:
        near.load("tiny-llava")
        conv = s.conversation(cid)
        conv.turns = conv.turns[:1]
        # The same prompt on both sides: the frames' times arrive each before its frame.
        assert s.engine.count_tokens(conv) == near.engine.count_tokens(conv) == far.stats.prompt_tokens
        here = near.engine.stream_reply(conv, s.params)
        "".join(here)
        assert here.text and here.text == far.text == s.history.get(cid).messages[1].text
    finally:
        near.close()
        near.history.close()
