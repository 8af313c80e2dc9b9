"""Video: frames sampled evenly with their times (PyAV), sent to the real engine as labelled images, stored by
hash with their times, exported and imported; bad videos refused in words; single-image models refused."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fakeengine import FakeEngine
from PIL import Image
from videos import audio_only, moving_square

from app import video
from app.errors import AppError, UnsupportedVideo
from app.services import build_services

RED = (220, 40, 40)


def square_x(png: bytes) -> float:
    """Where the red square's centre is, from 0 (left edge) to 1 (right edge)."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    red = (a[..., 0] > 170) & (a[..., 1] < 110) & (a[..., 2] < 110)
    assert red.sum() > 20, "no red square in the frame"
    return float(np.nonzero(red)[1].mean() / a.shape[1])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {ext: moving_square(d / f"square{ext}", seconds=5, fps=10, colour=RED)
            for ext in (".mp4", ".webm", ".mov", ".mkv", ".gif")}


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".mov", ".mkv", ".gif"])
def test_frames_are_taken_evenly_with_their_times_and_show_the_motion(clips, ext):
    clip = video.sample(clips[ext], fps=1.0, max_frames=8)
    assert clip.times == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert clip.duration == pytest.approx(5.0, abs=0.15)
    xs = [square_x(f.png) for f in clip.frames]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 0.5, xs  # left to right, as filmed
    assert [f.name for f in clip.frames][:2] == [f"square{ext} at 0:00", f"square{ext} at 0:01"]


def test_at_most_max_frames_spread_over_the_whole_video(clips):
    clip = video.sample(clips[".mp4"], fps=4.0, max_frames=4)
    assert clip.times == [0.7, 1.9, 3.2, 4.4]  # the first frame at or after 0.625, 1.875, 3.125, 4.375 s
    assert len({f.sha256 for f in clip.frames}) == 4
    assert video.plan(3600.0, 1.0, 8) == [225.0 + 450.0 * i for i in range(8)]
    assert video.stamp(3725.4) == "1:02:05" and video.stamp(7.9) == "0:07"


def test_long_and_huge_videos_stay_bounded(tmp_path):
    # Four hours at one frame every 10 s: sampling seeks, so it reads a handful of frames, not 1,440.
    long = moving_square(tmp_path / "four-hours.mkv", seconds=4 * 3600, fps=0.1, size=(64, 48))
    clip = video.sample(long, fps=1.0, max_frames=6)
    assert len(clip.frames) == 6 and clip.times[0] == pytest.approx(1200, abs=10) and clip.times[-1] > 13000
    # An 8K frame is scaled down inside FFmpeg: what Python holds is at most FRAME_SIDE a side.
    big = moving_square(tmp_path / "eight-k.mp4", seconds=0.2, fps=10, size=(7680, 4320))
    clip = video.sample(big, max_frames=2)
    assert (clip.width, clip.height) == (7680, 4320)
    assert all(max(f.width, f.height) <= video.FRAME_SIDE for f in clip.frames)


def test_bad_videos_are_refused_in_words(clips, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    fake = tmp_path / "notes.mp4"
    fake.write_bytes(b"These are my notes, not a film. " * 200)
    data = clips[".mkv"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) // 2])
    head = tmp_path / "head.mp4"
    head.write_bytes(clips[".mp4"].read_bytes()[:300])
    sound = audio_only(tmp_path / "song.mp4")
    table = {empty: "is empty (0 bytes)", fake: "is not a video Iris can read", cut: "is cut short",
             head: "is not a video Iris can read", sound: "has only sound",
             tmp_path / "gone.mp4": "cannot be read"}
    for path, words in table.items():
        with pytest.raises(UnsupportedVideo, match=re.escape(words)):
            video.sample(path)
    with pytest.raises(UnsupportedVideo, match="between 1 and 64"):
        video.sample(clips[".mp4"], max_frames=0)


def test_files_larger_than_their_limit_are_refused_before_they_are_read(clips, tmp_path, monkeypatch):
    from app.errors import UnsupportedImage
    from app.images import prepare_image

    monkeypatch.setenv("IRIS_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("IRIS_MAX_VIDEO_MB", "1")
    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(UnsupportedImage, match=re.escape("huge.png is 2 MB; Iris takes images up to 1 MB")):
        prepare_image(big)
    film = tmp_path / "long.mp4"
    film.write_bytes(clips[".mp4"].read_bytes() + b"\0" * (2 * 2**20))
    with pytest.raises(UnsupportedVideo, match=re.escape("long.mp4 is 2 MB; Iris takes videos up to 1 MB")):
        video.sample(film)


def test_a_still_gif_is_an_image_and_an_animated_one_a_video(clips, tmp_path):
    still = tmp_path / "still.gif"
    Image.new("RGB", (20, 20), RED).save(still)
    assert not video.is_video(still) and video.is_video(clips[".gif"]) and video.is_video("x.MOV")
    assert not video.is_video("photo.png")


# -- through the services and the real engine (the tiny test pair) ---------------------------------------

def test_a_video_goes_to_the_engine_as_frames_each_after_its_time(services, clips):
    cid = services.ask(None, "What happens?", [clips[".mp4"]])
    stored = services.history.get(cid).messages[0]
    assert stored.frames == [0.5, 1.5, 2.5, 3.5, 4.5] and len(stored.images) == 5
    conv = services.conversation(cid)
    text, images = services.engine.render(conv)
    labelled = re.findall(r"Frame at (\d+:\d\d): (\S+)\n", text)
    assert [t for t, _ in labelled] == ["0:00", "0:01", "0:02", "0:03", "0:04"]
    marker = labelled[0][1]
    assert {m for _, m in labelled} == {marker} and text.count(marker) == 5 and len(images) == 5
    reply = services.reply(cid)
    "".join(reply)
    assert reply.stats.images_encoded == 5
    # The same video again: the frames are the same images, taken from the embedding cache.
    services.ask(cid, "And again?", [clips[".mp4"]])
    again = services.reply(cid)
    "".join(again)
    assert again.stats.images_encoded == 0 and again.stats.images_cached >= 5


def test_an_edited_question_keeps_its_video_frames_and_their_times(services, clips):
    cid = services.ask(None, "What happens?", [clips[".mp4"]])
    "".join(services.reply(cid))
    "".join(services.edit(cid, 0, "Which way does it move?"))
    first = services.history.get(cid).messages[0]
    assert first.text == "Which way does it move?" and first.frames == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert services.engine.render(services.conversation(cid))[0].count("Frame at ") == 5


def test_the_chat_shows_a_videos_frames_as_one_strip_with_their_times(services, clips):
    import json as _json

    from app.ui.views import conversation_view

    cid = services.ask(None, "What happens?", [clips[".mp4"]])
    shown = conversation_view(services, cid)
    strip = shown.messages[0]["content"]["frames"]
    assert [t for _, t in strip] == ["0:00", "0:01", "0:02", "0:03", "0:04"]
    assert all(Path(p).exists() for p, _ in strip)
    assert shown.messages[1]["content"] == "What happens?" and shown.stored_at == [0, 0]
    data = _json.loads(re.search(r'data-map="([^"]*)"', shown.map).group(1).replace("&quot;", '"'))
    assert data["frames"] == [[0, [f"video frame at 0:0{k}" for k in range(5)]]] and data["alts"] == []


def test_a_video_is_exported_and_imported_with_its_frame_times(services, clips, tmp_path):
    cid = services.ask(None, "Watch this", [clips[".webm"]])
    "".join(services.reply(cid))
    data = services.history.export_json(cid)
    assert data["messages"][0]["frames"] == [0.5, 1.5, 2.5, 3.5, 4.5]
    back = services.history.import_json(json.loads(json.dumps(data)))
    assert services.history.get(back).messages[0].frames == [0.5, 1.5, 2.5, 3.5, 4.5]
    bad = json.loads(json.dumps(data))
    bad["messages"][0]["frames"] = [0.5, "soon"]
    with pytest.raises(AppError, match="frame times"):
        services.history.import_json(bad)
    with zipfile.ZipFile(services.history.export_markdown(cid, tmp_path)) as zf:
        md = zf.read("conversation.md").decode()
    assert "![frame at 0:00](images/" in md and md.count("![frame at") == 5


def test_the_context_decides_how_many_frames_go(services, clips):
    services.update_settings(video_max_frames=5, max_tokens=2048 - 64 - 16 * 3)
    cost = services.attachment_cost(None, [clips[".mp4"]])
    assert cost.video == "square.mp4" and len(cost.per_image) == 3 and cost.times == [0.5, 2.5, 4.5]
    services.update_settings(max_tokens=4096)
    with pytest.raises(UnsupportedVideo, match="Not even one frame"):
        services.ask(None, "What happens?", [clips[".mp4"]])
    assert services.history.list() == []  # nothing saved


def test_the_line_under_the_box_shows_the_frames_their_times_and_cost(services, clips, tmp_path):
    from app.ui.views import attachment_line

    odd = tmp_path / "<i>clip<i>.mp4"
    odd.write_bytes(clips[".mp4"].read_bytes())
    cost = services.attachment_cost(None, [odd])
    assert len(cost.thumbs) == 5 and all(t.startswith("data:image/jpeg;base64,") for t in cost.thumbs)
    line = attachment_line(cost)
    assert line.count('<img src="data:image/jpeg;base64,') == 5 and 'alt="video frame at 0:03"' in line
    assert "5 frames at 0:00, 0:01, 0:02, 0:03, 0:04" in line and "5 × 16 = 80 tokens" in line
    assert "<i>clip" not in line  # a file's name is shown as text


def test_a_server_gets_each_frames_time_as_text_before_it(clips):
    from app.chat import Conversation, Turn
    from app.openai_format import conversation_messages
    from app.services import frame_labels

    clip = video.sample(clips[".mp4"], max_frames=2)
    conv = Conversation(turns=[Turn("user", "What happens?", list(clip.frames), frame_labels(clip.times))])
    parts = conversation_messages(conv)[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert [p["text"] for p in parts if p["type"] == "text"] == ["Frame at 0:01:", "Frame at 0:03:", "What happens?"]


def test_a_video_with_images_or_a_second_video_is_refused(services, clips, images):
    with pytest.raises(UnsupportedVideo, match="message of its own"):
        services.ask(None, "Both?", [clips[".mp4"], images["red"]])
    with pytest.raises(UnsupportedVideo, match="message of its own"):
        services.ask(None, "Both?", [clips[".mp4"], clips[".mkv"]])


def test_a_single_image_model_names_the_models_that_can_watch(models_dir, clips):
    engine = FakeEngine(["-"])
    s = build_services(models_dir, engine=engine, with_history=True)
    s.load("tiny-llava")
    engine.model.max_images = 1
    with pytest.raises(UnsupportedVideo, match="takes one image per message") as err:
        s.ask(None, "What happens?", [clips[".mp4"]])
    assert "Qwen2.5-VL" in str(err.value) and "Moondream" not in str(err.value)


# -- the command line, and the demo model (trained on single pictures) ---------------------------------------

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"
DEMO_LM, DEMO_MM = DEMO / "iris-demo-shapes.gguf", DEMO / "iris-demo-shapes-mmproj.gguf"


def iris(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, IRIS_HOME=str(home))
    env.pop("IRIS_RAISE_ERRORS", None)
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(not DEMO_LM.exists(), reason="the demo model has not been trained (training/train.py)")
@pytest.mark.parametrize(("name", "rgb"), [("red", (220, 40, 40)), ("blue", (40, 80, 220)),
                                           ("yellow", (240, 210, 30))])
def test_the_demo_model_tells_the_colour_of_the_square_in_a_video(tmp_path, iris_home, name, rgb):
    clip = moving_square(tmp_path / f"{name}.mp4", seconds=4, fps=10, size=(224, 224), colour=rgb,
                         background=(225, 225, 225))
    r = iris("ask", "--lm", str(DEMO_LM), "--mmproj", str(DEMO_MM), "--video", str(clip), "--frames", "3",
             "--fps", "1", "--temperature", "0", "--max-tokens", "12", "--stats", "What colour is the square?",
             home=iris_home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"The square is {name}."
    assert f"3 frames of {name}.mp4 (0:04 long) at 0:00, 0:02, 0:03" in r.stderr and "(3 img)" in r.stderr


def test_the_command_line_refuses_a_bad_video_before_loading_a_model(tmp_path, iris_home):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a film")
    r = iris("ask", "--lm", str(tmp_path / "none.gguf"), "--mmproj", str(tmp_path / "none-mmproj.gguf"),
             "--video", str(fake), "What happens?", home=iris_home)
    assert r.returncode != 0 and "holiday.mp4 is not a video Iris can read" in r.stderr
    assert "Traceback" not in r.stderr
