"""Fuzzing the image probe and the models' loader with damaged image files: a skipped image
(ImageProblem) or a load error naming the file (ImageLoadError), never another exception,
and never a decode of more pixels than the limit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageFile
from strategies import FUZZ, event

from scenesift.io.common import MAX_IMAGE_PIXELS, ImageProblem, probe_image
from scenesift.models.backbones import Preprocessing
from scenesift.models.images import ImageLoadError, load_pixels

PRE = Preprocessing(size=(32, 32))


def _encoded(mode: str, fmt: str, **kw) -> bytes:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (8, 8), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


SEEDS = {
    "rgb.jpg": _encoded("RGB", "JPEG"),
    "grey.jpg": _encoded("L", "JPEG"),
    "cmyk.jpg": _encoded("CMYK", "JPEG"),
    "rgb.png": _encoded("RGB", "PNG"),
    "palette.png": _encoded("P", "PNG"),
    "la.png": _encoded("LA", "PNG"),
    "grey16.png": _encoded("I;16", "PNG"),
    "rgb.gif": _encoded("RGB", "GIF"),
    "rgb.bmp": _encoded("RGB", "BMP"),
    "rgb.tif": _encoded("RGB", "TIFF"),
}


@st.composite
def damaged_images(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "flip", "set", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[pos:]
        elif not data:
            break
        elif op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":  # often a size field: 0x00 or 0xff bytes claim absurd dimensions
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    # the extension does not always match the content
    suffix = draw(st.sampled_from([name.rsplit(".", 1)[1], "jpg", "png"]))
    return f"image.{suffix}", bytes(data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    load = ImageFile.ImageFile.load

    def guarded(self):
        assert self.width * self.height <= MAX_IMAGE_PIXELS, f"decoding {self.size}"
        return load(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ImageFile.ImageFile, "load", guarded)
        yield tmp_path_factory.mktemp("fuzz_images")


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # corrupt TIFF tags
@FUZZ
@given(case=damaged_images())
def test_damaged_images_are_skipped_or_decoded_never_a_crash(folder, case):
    name, data = case
    path = folder / name
    path.write_bytes(data)
    try:
        width, height = probe_image(path)
    except ImageProblem:
        event("probe: skipped")
    else:
        event("probe: accepted")
        assert width * height <= MAX_IMAGE_PIXELS
    try:
        pixels = load_pixels(path, PRE)
    except ImageLoadError as e:
        assert e.path == str(path)
        event("load: error")
    else:
        assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
        event("load: decoded")
