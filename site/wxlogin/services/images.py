"""Uploaded avatars re-encoded: checked by content, bounded before decoding, squared, stripped of metadata.

An upload is untrusted (security.md item 58). Its type comes from its bytes, never its name or its
Content-Type: Pillow opens it only as JPEG (MPO: a camera's JPEG with extra frames), PNG, GIF or WebP, so
SVG, HTML and every other format are refused. Its dimensions are read from the header and bounded
(``MAX_SIDE``, ``MAX_PIXELS``) before a pixel is decoded, with Pillow's own decompression-bomb guard set
to the same bound behind that. Animated images are refused. The one frame is decoded (JPEG at a reduced
scale, which is cheaper), turned upright by its EXIF orientation, cropped to its centre square and
resized to ``SIZE`` x ``SIZE``, then pasted into a new image and saved as a baseline JPEG: nothing of
the original's metadata (EXIF, GPS, ICC, comments, text chunks) is carried over. Runs in a thread:
decoding takes milliseconds to tens of milliseconds, which the event loop must not wait for.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from wxlogin.errors import ImageInvalid

SIZE = 256  # the stored avatar: SIZE x SIZE pixels
MAX_SIDE = 4096  # pixels on either side of an upload
MAX_PIXELS = 4096 * 4096  # an upload's width x height (a 16-megapixel photo fits)
QUALITY = 85
FORMATS = ("JPEG", "PNG", "GIF", "WEBP")  # JPEG's opener hands back an MPO when the file is one
CONCURRENT = 2  # decodes at once per process: a decode holds up to ~64 MiB (4096 x 4096 RGBA)

# Pillow's guard (a warning above MAX_IMAGE_PIXELS, an error above twice that), checked when a file is opened,
# as a second line behind ours; its warning is made an error (Pillow's documented way), process-wide because
# warning filters are not per thread.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated upload is refused, never padded with grey
Image.init()  # register every plugin now (WebP is not among the few Pillow loads first)

_decodes = asyncio.Semaphore(CONCURRENT)


@dataclass(frozen=True)
class Avatar:
    """A re-encoded avatar: JPEG bytes and their SHA-256 (hex), which is its address."""

    jpeg: bytes
    sha256: str


async def reencode(data: bytes) -> Avatar:
    """``reencode_now`` off the event loop, a bounded number at a time."""
    async with _decodes:
        return await asyncio.to_thread(reencode_now, data)


def reencode_now(data: bytes) -> Avatar:
    """The avatar of an upload; ImageInvalid for anything that is not a usable still image."""
    try:
        return _reencode(data)
    except ImageInvalid:
        raise
    except UnidentifiedImageError:
        raise ImageInvalid("not a JPEG, PNG, GIF or WebP image (by its content)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInvalid("more pixels than the bound") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error,
            ZeroDivisionError, MemoryError) as exc:
        # Truncated or corrupt data surfaces as any of these from the decoders.
        raise ImageInvalid(f"cannot decode the image ({type(exc).__name__})") from None


def _reencode(data: bytes) -> Avatar:
    if not data:
        raise ImageInvalid("empty file")
    with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
        width, height = image.size
        # The header's claim, checked before any pixel is decoded: a small file may declare a huge image.
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
            raise ImageInvalid(f"{width}x{height} pixels is over the bound")
        frames = getattr(image, "n_frames", 1)
        if image.format != "MPO" and (getattr(image, "is_animated", False) or frames > 1):
            raise ImageInvalid("an animated image")  # an MPO's extra frames are a camera's previews: ignored
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", (SIZE, SIZE))  # decode at 1/2, 1/4 or 1/8 scale when that is still big enough
        image.load()
        upright = ImageOps.exif_transpose(image)  # the EXIF orientation, applied before EXIF is dropped
        rgb = _flatten(upright)
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.resize((SIZE, SIZE), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
    clean = Image.new("RGB", (SIZE, SIZE))  # a new image: no info, EXIF, ICC profile or text from the upload
    clean.paste(square)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=QUALITY, optimize=False, progressive=False)
    jpeg = out.getvalue()
    return Avatar(jpeg=jpeg, sha256=hashlib.sha256(jpeg).hexdigest())


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, transparent parts on white (a transparent PNG avatar would otherwise turn black)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return image.convert("RGB")
