"""A video file as the frames a model sees: sampled evenly in time, each with its timestamp, decoded with PyAV
(which brings its own FFmpeg). The only module that imports av.

Memory stays bounded whatever the file: frames are scaled down inside FFmpeg before Python sees them, at most
max_frames are kept, a known duration is sampled by seeking (a 4-hour file costs as much as a 4-minute one), and
a file without a duration is read from its start for at most MAX_DECODED frames.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from app import config
from app.errors import UnsupportedVideo
from app.images import PreparedImage, prepare_image

logger = logging.getLogger(__name__)

EXTENSIONS = (".mp4", ".m4v", ".webm", ".mov", ".mkv", ".avi", ".gif")
DEFAULT_FPS = 1.0
DEFAULT_MAX_FRAMES = 8
MAX_FRAMES = 64  # what Settings and the CLI accept
FRAME_SIDE = 768  # longest side of a sampled frame: encoders see 224–768 px, and an 8K frame stays in FFmpeg
MAX_DECODED = 3000  # frames decoded at most when a file gives no duration (or cannot seek)
MAX_SIDE = 16_384  # frame sizes beyond any real camera are refused before decoding


@dataclass(frozen=True)
class SampledVideo:
    """The frames sampled from one video, their times in seconds, and what sampling cost."""

    name: str
    frames: list[PreparedImage]
    times: list[float]
    duration: float
    width: int
    height: int
    sample_s: float


def is_video(name: str | Path) -> bool:
    """Whether a file is a video, by its name; a GIF only when it is animated (a still GIF is an image)."""
    text = str(name).lower()
    if not text.endswith(EXTENSIONS):
        return False
    if not text.endswith(".gif"):
        return True
    from PIL import Image

    try:
        with Image.open(name) as img:
            return bool(getattr(img, "is_animated", False))
    except (OSError, ValueError, SyntaxError):
        return False  # the image reader says what is wrong with it


def stamp(seconds: float) -> str:
    """A frame's time as people write it: 0:07, 1:02:03."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def plan(duration: float, fps: float, max_frames: int) -> list[float]:
    """When to take frames: about fps per second, at most max_frames, evenly spread (middle of each slice)."""
    n = max(1, min(max_frames, math.ceil(duration * fps - 1e-9)))
    return [duration * (i + 0.5) / n for i in range(n)]


def sample(path: str | Path, fps: float = DEFAULT_FPS, max_frames: int = DEFAULT_MAX_FRAMES,
           name: str | None = None) -> SampledVideo:
    """The video's frames at plan()'s times; raise UnsupportedVideo naming the file and what to do."""
    import av  # here, not at import time: the rest of Iris starts without it

    path = Path(path)
    label = name or path.name
    if not 0 < fps <= 30:
        raise UnsupportedVideo(f"Frames per second must be between 0 and 30 (not {fps:g}).")
    if not 1 <= max_frames <= MAX_FRAMES:
        raise UnsupportedVideo(f"The number of frames must be between 1 and {MAX_FRAMES} (not {max_frames}).")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnsupportedVideo(f"{label}: cannot be read ({exc.strerror or exc}).") from None
    if size == 0:
        raise UnsupportedVideo(f"{label} is empty (0 bytes). Pick another video.")
    if size > config.max_video_bytes():
        raise UnsupportedVideo(f"{label} is {size / 2**20:,.0f} MB; Iris takes videos up to "
                               f"{config.max_video_bytes() / 2**20:,.0f} MB (IRIS_MAX_VIDEO_MB). Cut it shorter "
                               "and try again.")
    started = time.perf_counter()
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                kind = "only sound" if container.streams.audio else "no pictures"
                raise UnsupportedVideo(f"{label} has {kind}: there is no video track to look at.")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
            if width > MAX_SIDE or height > MAX_SIDE:
                raise UnsupportedVideo(f"{label} is {width}×{height} pixels a frame; Iris takes video up to "
                                       f"{MAX_SIDE:,} pixels a side.")
            duration = _duration(container, stream)
            stream.thread_type = "AUTO"
            if duration:
                times = plan(duration, fps, max_frames)
                picked = _by_seeking(container, stream, times)
            else:
                picked = _from_start(container, stream, fps, max_frames)
    except UnsupportedVideo:
        raise
    except _Truncated as cut:
        raise UnsupportedVideo(f"{label} is cut short: its pictures stop at {stamp(cut.args[0])} of the "
                               f"{stamp(duration)} it claims. Pick a complete copy.") from None
    except (av.error.InvalidDataError, av.error.EOFError):
        raise UnsupportedVideo(f"{label} is not a video Iris can read (or it is damaged). "
                               "Use MP4, WebM, MOV, MKV or an animated GIF.") from None
    except (av.error.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise UnsupportedVideo(f"{label} could not be decoded ({exc}). It may be truncated; "
                               "pick another copy.") from None
    if not picked:
        raise UnsupportedVideo(f"{label} has no frames that can be decoded; it may be truncated. "
                               "Pick another copy.")
    frames = [prepare_image(png, f"{label} at {stamp(t)}") for t, png in picked]
    elapsed = time.perf_counter() - started
    logger.info("sampled %d frames from %s (%.1f s long) in %.2f s", len(frames), label, duration or 0, elapsed)
    return SampledVideo(label, frames, [round(t, 2) for t, _ in picked], duration or picked[-1][0],
                        width, height, elapsed)


def _duration(container: object, stream: object) -> float:
    """Seconds, from the stream or the container; 0.0 when the file does not say."""
    d = getattr(stream, "duration", None)
    tb = getattr(stream, "time_base", None)
    if d and tb:
        return float(d * tb)
    cd = getattr(container, "duration", None)
    return float(cd) / 1_000_000 if cd and cd > 0 else 0.0


def _png(frame: object) -> bytes:
    """A decoded frame as PNG bytes, scaled inside FFmpeg to FRAME_SIDE at most."""
    w, h = frame.width, frame.height  # type: ignore[attr-defined]
    scale = min(1.0, FRAME_SIDE / max(w, h, 1))
    img = frame.reformat(width=max(2, round(w * scale)), height=max(2, round(h * scale)),  # type: ignore[attr-defined]
                         format="rgb24").to_image()
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _time(frame: object, stream: object) -> float | None:
    t = getattr(frame, "time", None)
    if t is None and getattr(frame, "pts", None) is not None:
        t = float(frame.pts * stream.time_base)  # type: ignore[attr-defined]
    return t


def _by_seeking(container: object, stream: object, times: list[float]) -> list[tuple[float, bytes]]:
    """For each time, the first frame at or after it (the last one decoded when the file ends early)."""
    out: list[tuple[float, bytes]] = []
    start = float(getattr(stream, "start_time", 0) or 0) * float(stream.time_base or 0)  # type: ignore[attr-defined]
    for target in times:
        try:
            container.seek(int((start + target) / stream.time_base), stream=stream,  # type: ignore[attr-defined]
                           backward=True, any_frame=False)
        except Exception:  # noqa: BLE001 - a file that cannot seek is read from its start instead
            logger.info("seek failed; reading from the start")
            container.seek(0)  # type: ignore[attr-defined]
            # plan()'s first time is half a slice: the same spacing from the start.
            return _from_start(container, stream, 1 / (2 * times[0]) if times[0] > 0 else DEFAULT_FPS, len(times))
        last, reached = None, False
        for n, frame in enumerate(container.decode(stream)):  # type: ignore[attr-defined]
            last = frame
            t = _time(frame, stream)
            if t is None or t - start >= target - 1e-3 or n >= MAX_DECODED:
                reached = True
                break
        end = _time(last, stream) if last is not None else None
        if not reached and (end is None or end - start < target - 0.5):
            raise _Truncated(max(0.0, (end or start) - start))  # the pictures stop before the file says it ends
        if last is not None:
            out.append((max(0.0, (end if end is not None else start + target) - start), _png(last)))
    return out


class _Truncated(Exception):
    """The frames stop at this many seconds, before the length the file gives."""


def _from_start(container: object, stream: object, fps: float, max_frames: int) -> list[tuple[float, bytes]]:
    """Frames about 1/fps apart from the start, for files that give no duration."""
    out: list[tuple[float, bytes]] = []
    next_t = 0.0
    for n, frame in enumerate(container.decode(stream)):  # type: ignore[attr-defined]
        if n >= MAX_DECODED or len(out) >= max_frames:
            break
        t = _time(frame, stream)
        t = n / 25 if t is None else t  # a frame without a time: assume 25 frames a second
        if t >= next_t:
            out.append((t, _png(frame)))
            next_t = t + 1 / fps
    return out
