"""Turns whatever image a user gives into clean PNG bytes the engine can feed to the encoder."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from app import config
from app.errors import UnsupportedImage

MAX_PIXELS = 50_000_000
MAX_SIDE = 16_384
MAX_ASPECT = 100


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the model: PNG bytes, their SHA-256 and the original name."""

    png: bytes
    sha256: str
    name: str
    width: int
    height: int


def prepare_image(source: str | Path | bytes, name: str | None = None) -> PreparedImage:
    """Open, orient, flatten and re-encode an image; raise UnsupportedImage naming the file."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        label = name or "pasted image"
    else:
        path = Path(source)
        label = name or path.name
        try:
            # The page takes uploads as large as videos: an image file is checked before it is read.
            size, limit = path.stat().st_size, config.max_upload_bytes()
            if size > limit:
                raise UnsupportedImage(f"{label} is {size / 2**20:.0f} MB; Iris takes images up to "
                                       f"{limit / 2**20:.0f} MB. Shrink it and try again.")
            data = path.read_bytes()
        except FileNotFoundError:
            raise UnsupportedImage(f"{label}: file not found.") from None
        except OSError as exc:
            raise UnsupportedImage(f"{label}: cannot be read ({exc.strerror or exc}).") from None
    if not data:
        raise UnsupportedImage(f"{label} is empty (0 bytes). Pick another image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise UnsupportedImage(
                    f"{label} is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); Iris accepts up to "
                    f"{MAX_PIXELS // 1_000_000} megapixels. Shrink it and try again."
                )
            # Vision encoders resize to a few hundred pixels a side: a longer side than this or a sliver
            # thinner than this leaves them nothing to see (or a zero-sized tile), and the chat would fail.
            if max(w, h) > MAX_SIDE or max(w, h) > MAX_ASPECT * max(1, min(w, h)):
                raise UnsupportedImage(
                    f"{label} is {w}×{h} pixels; Iris takes images up to {MAX_SIDE:,} pixels a side and at most "
                    f"{MAX_ASPECT} times as long as wide. Crop it and try again."
                )
            img.seek(0)  # first frame of an animation
            img.load()
    except UnsupportedImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnsupportedImage(
            f"{label} is too large to open safely (over {MAX_PIXELS // 1_000_000} megapixels). "
            "Shrink it and try again."
        ) from None
    except UnidentifiedImageError:
        raise UnsupportedImage(
            f"{label} is not an image Iris can read. Use PNG, JPEG, WebP, GIF, BMP or TIFF."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedImage(f"{label} is damaged or truncated ({exc}). Pick another copy.") from None
    shown: Image.Image = ImageOps.exif_transpose(img) or img
    img = _flatten(shown)  # type: ignore[assignment]
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    png = buf.getvalue()
    return PreparedImage(png=png, sha256=hashlib.sha256(png).hexdigest(), name=label,
                         width=img.width, height=img.height)


def _flatten(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def plain_image(width: int, height: int, colour: tuple[int, int, int] = (128, 128, 128)) -> PreparedImage:
    """A one-colour image of the given size (for measuring what an image of that size costs a model)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return prepare_image(buf.getvalue(), f"plain-{width}x{height}.png")


def thumbnail_uri(img: PreparedImage, height: int = 56) -> str:
    """A small JPEG of the image as a data: URI, for a preview that needs no file (a video's frames)."""
    import base64

    with Image.open(io.BytesIO(img.png)) as opened:
        small = opened.convert("RGB")
    small.thumbnail((height * 4, height))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
