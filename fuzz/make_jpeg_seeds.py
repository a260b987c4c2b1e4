#!/usr/bin/env python3
"""Writes the seed JPEGs of the jpeg_decoder fuzz target into
seeds/jpeg_decoder/: tiny pictures (a few hundred bytes each) encoded by
Pillow's libjpeg-turbo in every layout the decoders must handle or refuse.
Needs Pillow >= 10.2 (for keep_rgb; pip install pillow); the committed
seeds were made with Pillow 13.0. Run from fuzz/: python3 make_jpeg_seeds.py"""
import io
import os

from PIL import Image

OUT = "seeds/jpeg_decoder"


def picture(width, height):
    """A deterministic RGB picture with gradients and a sharp diagonal edge,
    so every block has AC coefficients and the chroma varies."""
    img = Image.new("RGB", (width, height))
    img.putdata([((x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1),
                  255 if x > y else (x * y) % 256)
                 for y in range(height) for x in range(width)])
    return img


def save(name, img, **options):
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", **options)
    with open(f"{OUT}/{name}", "wb") as f:
        f.write(buffer.getvalue())


os.makedirs(OUT, exist_ok=True)
rgb = picture(21, 13)  # partial blocks and partial MCUs on both axes
save("baseline_420", rgb, quality=75, subsampling=2)
save("baseline_422", rgb, quality=75, subsampling=1)
save("baseline_444", rgb, quality=90, subsampling=0)
save("greyscale", rgb.convert("L"), quality=75)
save("optimized_huffman", rgb, quality=60, subsampling=2, optimize=True)
save("restart_markers", picture(40, 24), quality=75, subsampling=2, restart_marker_blocks=1)
save("progressive", rgb, quality=75, subsampling=2, progressive=True)
# Four components with an Adobe marker (inverted CMYK, as Photoshop writes).
save("cmyk_adobe", rgb.convert("CMYK"), quality=75)
# Three components stored as RGB (Adobe transform 0), no YCbCr conversion.
save("rgb_adobe", rgb, quality=75, keep_rgb=True)
