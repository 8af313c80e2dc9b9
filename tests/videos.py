"""Videos the tests make with PyAV: a coloured square moving from left to right on grey, and broken ones."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

CODECS = {".mp4": ("libx264", "yuv420p"), ".mkv": ("libx264", "yuv420p"), ".mov": ("libx264", "yuv420p"),
          ".webm": ("libvpx-vp9", "yuv420p"), ".gif": ("gif", "rgb8")}  # what the PyAV wheels can write


def moving_square(path: Path, seconds: float = 4.0, fps: float = 10, size: tuple[int, int] = (160, 120),
                  colour: tuple[int, int, int] = (220, 30, 30), gop: int = 0,
                  background: tuple[int, int, int] = (128, 128, 128)) -> Path:
    """A square of colour moving left to right across a plain background (grey by default), written with the
    codec its extension implies."""
    import av

    codec, pix = CODECS[path.suffix.lower()]
    w, h = size
    side = max(4, h // 3)
    with av.open(str(path), "w") as out:
        rate = Fraction(fps).limit_denominator(1000)
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        if gop:
            stream.codec_context.gop_size = gop
        frames = max(1, round(seconds * fps))
        for i in range(frames):
            img = np.empty((h, w, 3), dtype=np.uint8)
            img[:] = background
            x = round((w - side) * i / max(frames - 1, 1))
            y = (h - side) // 2
            img[y:y + side, x:x + side] = colour
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An .mp4 that holds only a tone."""
    import av

    rate = 44100
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = samples[start:start + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
