"""Chart images for the DOCX (Word has no reportlab drawings): pass-rate trend and status by category, as PNG.

The PDF draws the same two charts as vector graphics (reports/pdf_renderer.py); both read the same figures.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageDraw, ImageFont

from reports.content import STATUS_LABELS

WIDTH, SCALE = 900, 1
COLORS = {"pass": (26, 127, 55), "fail": (198, 40, 40), "pending": (176, 136, 0)}
INK, MUTED, RULE, ACCENT = (31, 41, 51), (95, 107, 118), (201, 210, 218), (11, 92, 173)


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(Path(settings.REPORTS_FONT_DIR) / name), size)


def _png(image: Image.Image) -> io.BytesIO:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    out.seek(0)
    return out


def _cut(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def trend_png(trend: Sequence[dict]) -> io.BytesIO:
    height = 340
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    small, title = _font(14), _font(17, bold=True)
    draw.text((10, 8), "Pass rate by release candidate (%)", fill=INK, font=title)
    left, right, top, bottom = 60, WIDTH - 30, 50, height - 50
    for value in range(0, 101, 20):
        y = bottom - (bottom - top) * value / 100
        draw.line((left, y, right, y), fill=RULE)
        draw.text((left - 10, y), str(value), fill=MUTED, font=small, anchor="rm")
    if not trend:
        draw.text((left + 10, (top + bottom) / 2), "No release candidates with runs yet.", fill=MUTED, font=small)
        return _png(image)
    step = (right - left) / max(len(trend), 1)
    points = []
    for index, point in enumerate(trend):
        x = left + step * (index + 0.5)
        rate = point.get("pass_rate")
        y = bottom - (bottom - top) * (rate or 0) / 100
        points.append((x, y))
        draw.text(
            (x, bottom + 8),
            _cut(draw, str(point.get("name", "")), small, int(step) - 4),
            fill=INK,
            font=small,
            anchor="ma",
        )
        label = "–" if rate is None else f"{rate:.1f}"
        draw.text((x, y - 8), label, fill=INK, font=small, anchor="mb")
    if len(points) > 1:
        draw.line(points, fill=ACCENT, width=3)
    for x, y in points:
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=ACCENT)
    return _png(image)


def category_png(categories: Sequence[dict], limit: int = 12) -> io.BytesIO:
    shown = sorted(categories, key=lambda row: (-int(row.get("total", 0)), str(row.get("name", ""))))[:limit]
    bar, gap = 22, 8
    height = 90 + (bar + gap) * max(len(shown), 1)
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    small, title = _font(14), _font(17, bold=True)
    heading = "Status by category" + (f" (largest {limit})" if len(categories) > limit else "")
    draw.text((10, 8), heading, fill=INK, font=title)
    left, right, top = 220, WIDTH - 30, 45
    largest = max((int(row.get("total", 0)) for row in shown), default=0) or 1
    for index, row in enumerate(shown):
        y = top + index * (bar + gap)
        draw.text(
            (left - 8, y + bar / 2),
            _cut(draw, str(row.get("name", "")), small, left - 20),
            fill=INK,
            font=small,
            anchor="rm",
        )
        x = left
        for status in ("pass", "fail", "pending"):
            width = (right - left) * int(row.get(status, 0)) / largest
            if width > 0:
                draw.rectangle((x, y, x + width, y + bar), fill=COLORS[status])
            x += width
        draw.text((x + 6, y + bar / 2), str(row.get("total", 0)), fill=MUTED, font=small, anchor="lm")
    legend_y = height - 30
    x = left
    for status in ("pass", "fail", "pending"):
        draw.rectangle((x, legend_y, x + 14, legend_y + 14), fill=COLORS[status])
        draw.text((x + 20, legend_y + 7), STATUS_LABELS[status], fill=INK, font=small, anchor="lm")
        x += 110
    return _png(image)
