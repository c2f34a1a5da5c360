#!/usr/bin/python3
"""Makes the small real images tests/image_info_test.cpp reads: one or more per format, written by real
encoders (Pillow, libheif). The files are committed; rerun this only to change them.

Needs Debian's python3-pil and libheif-examples (heif-enc), which the build itself does not.
"""
import io
import os
import subprocess
import tempfile

from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))


def picture(size, mode="RGB"):
    img = Image.new(mode, size)
    px = img.load()
    for y in range(size[1]):
        for x in range(size[0]):
            v = ((x * 7) ^ (y * 13)) & 0xFF
            px[x, y] = (v, (x * 4) & 0xFF, (y * 5) & 0xFF) + ((200,) if mode == "RGBA" else ())
    return img


def save(name, img, **kw):
    img.save(os.path.join(here, name), **kw)


rgb = picture((64, 48))
save("baseline.jpg", rgb, quality=80)
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
save("progressive_exif.jpg", picture((40, 30)), quality=70, progressive=True, exif=exif.tobytes())
save("image.png", rgb)
save("rgba.png", picture((33, 17), "RGBA"))
save("image.gif", rgb.convert("P"))
frames = [picture((20, 10)).convert("P"), picture((20, 10)).rotate(180).convert("P")]
frames[0].save(os.path.join(here, "animated.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
save("lossy.webp", rgb, quality=60)
save("lossless.webp", picture((31, 17)), lossless=True)
save("extended.webp", picture((25, 19), "RGBA"), quality=60, exif=exif.tobytes())
save("image.bmp", picture((12, 9)))
save("image.tiff", picture((16, 12)))
save("small.tiff", picture((10, 6)))
save("image.ico", picture((48, 48), "RGBA"), sizes=[(16, 16), (48, 48)])
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "src.png")
    picture((36, 20)).save(src)
    subprocess.run(["heif-enc", "-A", "-q", "50", "-o", os.path.join(here, "image.avif"), src], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["heif-enc", "-q", "50", "-o", os.path.join(here, "image.heic"), src], check=True,
                   stdout=subprocess.DEVNULL)
with open(os.path.join(here, "image.svg"), "w") as f:
    f.write('<?xml version="1.0"?>\n<!-- a comment -->\n<svg xmlns="http://www.w3.org/2000/svg" '
            'width="120px" height="80">\n<rect width="10" height="10"/>\n</svg>\n')
with open(os.path.join(here, "viewbox.svg"), "w") as f:
    f.write('<svg viewBox="0 0 300.5 150" xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg><!-- end -->')
