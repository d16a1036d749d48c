"""Unicode fonts for the PDF: DejaVu (Debian's fonts-dejavu-core), registered once per process.

The base-14 PDF fonts only cover Latin-1; names in test data can be anything (CJK, Cyrillic, emoji-free symbols),
so every string is drawn with a TrueType font that covers them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.conf import settings
from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

REGULAR = "DejaVuSans"
BOLD = "DejaVuSans-Bold"
FONT_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}


class FontsMissing(RuntimeError):
    pass


@cache
def register_fonts() -> tuple[str, str]:
    """Register DejaVu Sans (regular, bold) with reportlab and return their names."""
    directory = Path(settings.REPORTS_FONT_DIR)
    for name, filename in FONT_FILES.items():
        path = directory / filename
        if not path.exists():
            raise FontsMissing(f"{path} is missing: install Debian's fonts-dejavu-core or set REPORTS_FONT_DIR.")
        pdfmetrics.registerFont(TTFont(name, str(path)))
    addMapping(REGULAR, 0, 0, REGULAR)
    addMapping(REGULAR, 1, 0, BOLD)
    addMapping(REGULAR, 0, 1, REGULAR)
    addMapping(REGULAR, 1, 1, BOLD)
    return REGULAR, BOLD
