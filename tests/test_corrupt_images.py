"""Corrupt and unusual images: skipped and reported at import, or accepted and converted to
8-bit RGB for the models; never a crash, never gigabytes allocated for a lying header."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from scenesift.io.common import MAX_IMAGE_PIXELS, ImageProblem, probe_image
from scenesift.io.csv_folder import read_csv_folder
from scenesift.models.backbones import Preprocessing
from scenesift.models.images import ImageLoadError, load_pixels, make_loader
from scenesift.taxonomy import default_taxonomy

PRE = Preprocessing(size=(32, 32))
RED = (200, 30, 60)

# PIL warns (and does not fail) between its own limit and ours: these headers are meant to lie.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, so that its header can claim anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "JPEG")
    return data[: len(data) // 2]


def palette_png() -> bytes:
    im = Image.new("P", (12, 10), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    return encoded(im, "PNG")


#: name -> (bytes, size when it can be used else None, the reason it is skipped or the
#: RGB colour of its pixels once loaded, and the tolerance of that colour)
CASES: dict[str, tuple] = {
    "truncated.jpg": (truncated_jpeg(), None, "corrupt"),
    "empty.jpg": (b"", None, "empty file"),
    "text.jpg": (b"just some text, not an image", None, "not an image"),
    # a PNG header claiming 100000 x 100000 (40 GB decoded) over a few bytes of data
    "huge_header.png": (png_bytes(100_000, 100_000, 8, 2, b"\0" * 64), None, "absurd dimensions"),
    # 12000 x 12000: under PIL's own hard limit, over ours
    "big_header.png": (png_bytes(12_000, 12_000, 8, 0, b"\0" * 64), None, "absurd dimensions"),
    "png_named.jpg": (encoded(Image.new("RGB", (10, 6), RED), "PNG"), (10, 6), RED, 0),
    "jpeg_named.png": (encoded(Image.new("RGB", (10, 6), RED), "JPEG", quality=95),
                       (10, 6), RED, 6),
    "cmyk.jpg": (encoded(Image.new("CMYK", (16, 8), (0, 170, 150, 55)), "JPEG", quality=95),
                 (16, 8), Image.new("CMYK", (1, 1), (0, 170, 150, 55)).convert("RGB")
                 .getpixel((0, 0)), 6),
    "grey16.png": (encoded(Image.fromarray(np.full((6, 8), 0x8123, np.uint16)), "PNG"),
                   (8, 6), (0x81, 0x81, 0x81), 0),
    "rgb48.png": (png_bytes(4, 4, 16, 2, (b"\0" + b"\x80\x00\x40\xff\x20\x00" * 4) * 4),
                  (4, 4), (0x80, 0x40, 0x20), 0),
    "palette.png": (palette_png(), (12, 10), (10, 200, 30), 0),
    "grey_alpha.png": (encoded(Image.new("LA", (8, 8), (90, 128)), "PNG"), (8, 8), (90,) * 3, 0),
    "rgba.png": (encoded(Image.new("RGBA", (8, 8), (*RED, 0)), "PNG"), (8, 8), RED, 0),
    "grey.jpg": (encoded(Image.new("L", (8, 8), 77), "JPEG", quality=95), (8, 8), (77,) * 3, 3),
}  # fmt: skip
BAD = [name for name, case in CASES.items() if case[1] is None]
GOOD = [name for name, case in CASES.items() if case[1] is not None]


def write_cases(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, *_) in CASES.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_cases(tmp_path_factory.mktemp("odd_images"))


@pytest.fixture
def no_big_decode(monkeypatch):
    """Fail the test if PIL starts decoding an image over the pixel limit."""
    load = ImageFile.ImageFile.load

    def guarded(self):
        assert self.width * self.height <= MAX_IMAGE_PIXELS, f"decoding {self.size}"
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", guarded)


@pytest.mark.parametrize("name", BAD)
def test_unusable_images_are_a_reported_problem_at_probe(images, name, no_big_decode):
    with pytest.raises(ImageProblem, match=CASES[name][2]):
        probe_image(images / name)


@pytest.mark.parametrize("name", GOOD)
def test_decodable_images_of_any_mode_or_extension_are_accepted(images, name):
    assert probe_image(images / name) == CASES[name][1]


def test_the_header_alone_is_checked_without_verify(images, no_big_decode):
    assert probe_image(images / "truncated.jpg", verify=False) == (64, 48)
    for name in ("huge_header.png", "big_header.png", "empty.jpg"):
        with pytest.raises(ImageProblem):
            probe_image(images / name, verify=False)


def test_not_a_file_and_impossible_names_are_problems_too(images):
    (images / "folder.jpg").mkdir(exist_ok=True)
    with pytest.raises(ImageProblem, match="not a file"):
        probe_image(images / "folder.jpg")
    with pytest.raises(ImageProblem, match="not a valid file name"):
        probe_image(images / "nul\0.jpg")
    with pytest.raises(ImageProblem, match="missing"):
        probe_image(images / "absent.jpg")


def test_an_import_skips_and_reports_the_unusable_and_keeps_the_rest(tmp_path, no_big_decode):
    folder = write_cases(tmp_path / "images")
    tags = folder / "tags.csv"
    tags.write_text("image,night\n" + "".join(f"{name},1\n" for name in CASES))
    batch = read_csv_folder(tags, default_taxonomy())
    assert {f.name: (f.width, f.height) for f in batch.frames} == {
        name: CASES[name][1] for name in GOOD
    }
    skipped = {Path(path).name: reason for path, reason in batch.report.skipped_images}
    assert sorted(skipped) == sorted(BAD)
    for name in BAD:
        assert CASES[name][2] in skipped[name]
    assert batch.report.frames == len(GOOD)


@pytest.mark.parametrize("name", GOOD)
def test_models_get_8bit_rgb_of_whatever_decodes(images, name):
    _, _, colour, tolerance = CASES[name]
    pixels = load_pixels(images / name, PRE)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    centre = pixels[16, 16].astype(int)
    assert np.abs(centre - np.array(colour)).max() <= tolerance, (centre, colour)


@pytest.mark.parametrize("name", BAD)
def test_models_get_a_load_error_naming_the_file_for_the_rest(images, name, no_big_decode):
    with pytest.raises(ImageLoadError, match=name) as info:
        load_pixels(images / name, PRE)
    if "header" in name:
        assert "absurd dimensions" in info.value.reason


def test_the_loader_batches_images_of_mixed_modes(images):
    batches = list(make_loader([images / name for name in GOOD], PRE, batch_size=4))
    assert sum(len(b.index) for b in batches) == len(GOOD)
    assert all(b.images.shape[1:] == (3, 32, 32) for b in batches)
