"""Image intake: formats accepted, EXIF rotation, transparency, and every refusal naming the file."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.errors import UnsupportedImage
from app.images import prepare_image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_formats_pillow_opens_become_png(tmp_path, fmt):
    p = tmp_path / f"x.{fmt.lower()}"
    Image.new("RGB", (40, 30), (10, 200, 10)).save(p, format=fmt)
    img = prepare_image(p)
    assert img.png.startswith(b"\x89PNG") and (img.width, img.height) == (40, 30)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    got = Image.open(io.BytesIO(prepare_image(p).png)).getpixel((0, 0))
    assert got[0] > 200 and got[2] < 50


def test_exif_rotation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif)
    out = prepare_image(p)
    assert (out.width, out.height) == (20, 40)


def test_transparency_flattened_on_white(tmp_path):
    p = tmp_path / "t.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(p)
    assert Image.open(io.BytesIO(prepare_image(p).png)).getpixel((1, 1)) == (255, 255, 255)


def test_refusals_name_the_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedImage, match="empty.png is empty"):
        prepare_image(empty)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UnsupportedImage, match="notes.txt is not an image"):
        prepare_image(text)
    good = tmp_path / "good.jpg"
    Image.effect_noise((200, 200), 50).convert("RGB").save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:600])
    with pytest.raises(UnsupportedImage, match="cut.jpg is damaged or truncated"):
        prepare_image(cut)


def test_decompression_bomb_refused(tmp_path):
    p = tmp_path / "huge.png"
    Image.new("1", (10_000, 6_000)).save(p)  # 60 megapixels, tiny on disk
    with pytest.raises(UnsupportedImage, match="huge.png is 10000×6000 pixels"):
        prepare_image(p)


def test_identity_is_content_hash(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (10, 10), (1, 2, 3)).save(a)
    Image.new("RGB", (10, 10), (3, 2, 1)).save(b)
    assert prepare_image(a).sha256 != prepare_image(b).sha256
    assert prepare_image(a).sha256 == prepare_image(a.read_bytes()).sha256


def test_slivers_and_huge_sides_are_refused_before_saving():
    import io

    import pytest
    from PIL import Image

    from app.errors import UnsupportedImage
    from app.images import prepare_image

    def png(w, h):
        buf = io.BytesIO()
        Image.new("L", (w, h), 128).save(buf, "PNG")
        return buf.getvalue()

    for w, h in ((1, 20_000), (10, 1_500), (17_000, 200)):
        with pytest.raises(UnsupportedImage, match="Crop it"):
            prepare_image(png(w, h), "sliver.png")
    assert prepare_image(png(20, 2000), "tall.png").height == 2000
