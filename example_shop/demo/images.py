"""Product pictures drawn with Pillow, so the demo needs no download and no assets.

Each picture is a 600×600 JPEG: the category's colour, a simple shape for the
category (a leaf, a cup, a teapot, a vase, a gift box) and the product's initials.
A ``random.Random`` seeded with the UPC varies shade and placement, so the same
product always gets the same picture, byte for byte.
"""

import io
import random

from PIL import Image, ImageDraw, ImageFont

SIZE = 600
INK = (255, 253, 247)

# Background colour and shape per category slug-ish key (see catalogue.CATEGORIES).
STYLES = {
    "green": ((96, 140, 88), "leaf"),
    "oolong": ((139, 84, 50), "cup"),
    "teaware": ((70, 98, 122), "teapot"),
    "ceramics": ((120, 150, 150), "vase"),
    "gifts": ((170, 60, 58), "box"),
}


def initials(title):
    """Up to two capital letters from the title's first words: "Gaiwan, white" → GW."""
    words = [
        w for w in title.replace("&", " ").replace(",", " ").split() if w[0].isalpha()
    ]
    return "".join(w[0].upper() for w in words[:2]) or "LC"


def _shade(colour, rng, spread=18):
    return tuple(max(0, min(255, c + rng.randint(-spread, spread))) for c in colour)


def _draw_shape(draw, shape, box, colour):
    """Draw ``shape`` filling ``box`` (x0, y0, x1, y1) in a pale ``colour``."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if shape == "leaf":
        draw.ellipse((x0 + w * 0.1, y0, x1 - w * 0.1, y1), fill=colour)
        draw.line(
            (x0 + w / 2, y0 + h * 0.05, x0 + w / 2, y1 + h * 0.1), fill=INK, width=6
        )
    elif shape == "cup":
        draw.chord((x0, y0 - h * 0.4, x1, y1), 0, 180, fill=colour)
        draw.rectangle(
            (x0 + w * 0.3, y1 - h * 0.05, x1 - w * 0.3, y1 + h * 0.08), fill=colour
        )
    elif shape == "teapot":
        draw.ellipse((x0 + w * 0.15, y0 + h * 0.2, x1 - w * 0.15, y1), fill=colour)
        draw.ellipse((x0 + w * 0.42, y0, x1 - w * 0.42, y0 + h * 0.25), fill=colour)
        draw.polygon(
            [
                (x0 + w * 0.2, y0 + h * 0.55),
                (x0, y0 + h * 0.3),
                (x0 + w * 0.25, y0 + h * 0.75),
            ],
            fill=colour,
        )
        draw.arc(
            (x1 - w * 0.3, y0 + h * 0.35, x1, y0 + h * 0.8),
            270,
            90,
            fill=colour,
            width=14,
        )
    elif shape == "vase":
        draw.ellipse((x0 + w * 0.1, y0 + h * 0.35, x1 - w * 0.1, y1), fill=colour)
        draw.rectangle(
            (x0 + w * 0.38, y0 + h * 0.05, x1 - w * 0.38, y0 + h * 0.5), fill=colour
        )
        draw.rectangle((x0 + w * 0.3, y0, x1 - w * 0.3, y0 + h * 0.08), fill=colour)
    else:  # box
        draw.rectangle((x0, y0 + h * 0.25, x1, y1), fill=colour)
        draw.rectangle((x0 + w * 0.45, y0 + h * 0.25, x1 - w * 0.45, y1), fill=INK)
        draw.ellipse(
            (x0 + w * 0.25, y0, x0 + w * 0.5, y0 + h * 0.28), outline=colour, width=12
        )
        draw.ellipse(
            (x1 - w * 0.5, y0, x1 - w * 0.25, y0 + h * 0.28), outline=colour, width=12
        )


def render_product_image(upc, title, style_key):
    """Return the JPEG bytes of the demo picture for one product."""
    rng = random.Random(f"lotus-demo-image-{upc}")
    base, shape = STYLES[style_key]
    background = _shade(base, rng)
    image = Image.new("RGB", (SIZE, SIZE), background)
    draw = ImageDraw.Draw(image)

    pale = tuple(min(255, c + 55) for c in background)
    size = rng.randint(230, 290)
    left = rng.randint(60, SIZE - size - 60)
    top = rng.randint(50, 110)
    _draw_shape(draw, shape, (left, top, left + size, top + size), pale)

    font = ImageFont.load_default(size=120)
    draw.text((SIZE / 2, SIZE - 150), initials(title), font=font, fill=INK, anchor="mm")
    small = ImageFont.load_default(size=26)
    draw.text((SIZE / 2, SIZE - 45), "Lotus & Co.", font=small, fill=INK, anchor="mm")

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()
