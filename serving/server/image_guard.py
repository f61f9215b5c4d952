"""Check encoded images by their header before TensorFlow decodes them.

A PNG of 100,000 x 100,000 pixels compresses to a few kilobytes and would need 30 GB to decode; the
header says so, so such images (and bytes that are no image at all) are refused up front.
"""

from __future__ import annotations

import io
import warnings

from serving.server.status import invalid_argument

DECODABLE = ("PNG", "JPEG", "GIF", "BMP")  # what tf.io.decode_image reads
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def is_image_input(name: str) -> bool:
    """Whether a string input carries encoded images (by TF Serving's `_bytes` and `image` naming)."""
    lowered = name.lower()
    return "image" in lowered or lowered.endswith("_bytes")


def check_image(data: bytes, where: str, max_pixels: int, max_side: int) -> tuple[int, int]:
    """Return (width, height) of an encoded image, or raise INVALID_ARGUMENT saying why it is refused."""
    from PIL import Image, UnidentifiedImageError

    if not data.startswith(SIGNATURES):
        preview = data[:8]
        raise invalid_argument(
            f"{where} is not a PNG, JPEG, GIF or BMP image ({len(data)} bytes starting {preview!r}); "
            "send the encoded image file's bytes"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about big images; the limits below decide
            with Image.open(io.BytesIO(data)) as image:  # reads the header only, no pixel data
                width, height, kind = image.width, image.height, image.format
    except Image.DecompressionBombError as error:  # PIL's own, higher, limit: the same refusal
        raise invalid_argument(
            f"{where} is over the limit of {max_pixels} pixels ({error}): downscale it before sending"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise invalid_argument(
            f"{where}: unreadable image header ({error}); send a valid PNG or JPEG"
        ) from error
    if kind not in DECODABLE:
        raise invalid_argument(f"{where} is a {kind} image; only {', '.join(DECODABLE)} can be decoded")
    if width > max_side or height > max_side or width * height > max_pixels:
        raise invalid_argument(
            f"{where} is {width}x{height} pixels, over the limit of {max_pixels} pixels and {max_side} "
            "per side (MURA images are about 512 px): downscale it before sending"
        )
    return width, height
