"""The PDF: reportlab platypus (title page, executive summary, charts, tables, appendix), DejaVu fonts.

Every string from the data goes through `_text` (escaped for Paragraph markup, so `<b>` in a case title is shown,
not interpreted) or into a plain table cell (drawn literally). The appendix is cut into page-sized tables, which
keeps the layout linear in the number of cases (one giant table is split again and again at every page break).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import BinaryIO
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from reports.content import (
    KPI_HEADER,
    SHORT_RISKS,
    STATUS_LABELS,
    CaseRow,
    ReportContent,
    cover_line,
    executive_lines,
    kpi_values,
    mantis_text,
    percent,
)
from reports.fonts import register_fonts

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm
BODY_WIDTH = PAGE_WIDTH - 2 * MARGIN
LARGE_TABLE = 150  # rows above which a case table is drawn as plain rows (linear) instead of wrapped cells
INK = colors.HexColor("#1f2933")
MUTED = colors.HexColor("#5f6b76")
ACCENT = colors.HexColor("#0b5cad")
RULE = colors.HexColor("#c9d2da")
STRIPE = colors.HexColor("#f3f6f9")
HEADER_FILL = colors.HexColor("#e4ebf2")
STATUS_COLORS = {
    "pass": colors.HexColor("#1a7f37"),
    "fail": colors.HexColor("#c62828"),
    "pending": colors.HexColor("#b08800"),
}
VERDICT_COLORS = {"GO": STATUS_COLORS["pass"], "NO-GO": STATUS_COLORS["fail"]}


def _text(value: object) -> str:
    """Data → Paragraph markup: escaped, so names containing HTML are printed as written."""
    return escape(str(value))


_BREAK_AFTER = re.compile(r"(?<=[@.])(?=\S)")  # break opportunities inside a word: after @ and . (e-mails, hosts)


def _wrapped(value: object, width: float, font: str, size: float) -> str:
    """Paragraph markup of a cell whose lines break only between words or after `@` / `.`, never inside a word
    (reportlab would otherwise cut a word that is wider than the column at any letter: "bob@demo.l / ocal").
    Lines are measured here and joined with <br/>; a single piece wider than the column is left to reportlab."""
    text = str(value)
    if len(text) * size * 1.05 <= width and "\n" not in text:  # no DejaVu glyph is wider than 1.05 em: one line
        return _text(text)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            pieces = _BREAK_AFTER.split(word) if stringWidth(word, font, size) > width else [word]
            for index, piece in enumerate(pieces):
                glue = " " if line and index == 0 else ""
                if line and stringWidth(line + glue + piece, font, size) > width:
                    lines.append(line)
                    line = piece
                else:
                    line += glue + piece
        lines.append(line)
    return "<br/>".join(_text(line) for line in lines)


def _fit(value: str, width: float, font: str, size: float) -> str:
    """Cut a plain cell to its column width with an ellipsis (measured only when it could overflow)."""
    if len(value) * size * 1.05 <= width:  # no DejaVu glyph is wider than 1.05 em: certainly fits
        return value
    if stringWidth(value, font, size) <= width:
        return value
    low, high = 0, len(value)
    while low < high:
        middle = (low + high + 1) // 2
        if stringWidth(value[:middle] + "…", font, size) <= width:
            low = middle
        else:
            high = middle - 1
    return value[:low] + "…"


class _Styles:
    def __init__(self) -> None:
        regular, bold = register_fonts()
        self.regular, self.bold = regular, bold
        self.body = ParagraphStyle(
            "body", fontName=regular, bulletFontName=regular, fontSize=10, leading=14, textColor=INK, spaceAfter=6
        )
        self.small = ParagraphStyle("small", parent=self.body, fontSize=8, leading=10.5, textColor=MUTED)
        self.cell = ParagraphStyle("cell", parent=self.body, fontSize=8, leading=10, spaceAfter=0)
        self.h1 = ParagraphStyle(
            "h1",
            parent=self.body,
            fontName=bold,
            fontSize=17,
            leading=22,
            spaceBefore=4,
            spaceAfter=10,
            textColor=ACCENT,
        )
        self.h2 = ParagraphStyle(
            "h2", parent=self.body, fontName=bold, fontSize=12.5, leading=16, spaceBefore=10, spaceAfter=6
        )
        self.title = ParagraphStyle(
            "title",
            parent=self.body,
            fontName=bold,
            fontSize=28,
            leading=34,
            alignment=TA_CENTER,
            spaceAfter=18,
            textColor=ACCENT,
        )
        self.subtitle = ParagraphStyle(
            "subtitle", parent=self.body, fontSize=14, leading=20, alignment=TA_CENTER, spaceAfter=6
        )
        self.centered = ParagraphStyle("centered", parent=self.body, alignment=TA_CENTER)
        self.bullet = ParagraphStyle("bullet", parent=self.body, leftIndent=12, bulletIndent=2, spaceAfter=3)
        self.grid = TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), regular, 8),
                ("FONT", (0, 0), (-1, 0), bold, 8),
                ("TEXTCOLOR", (0, 0), (-1, -1), INK),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4ebf2")),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, ACCENT),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
        )


class _ReportDocument(BaseDocTemplate):
    def __init__(self, out: BinaryIO, content: ReportContent, on_page: Callable[[int], None] | None) -> None:
        super().__init__(
            out,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN + 6 * mm,
            bottomMargin=MARGIN + 4 * mm,
            title=content.title,
            author="Report Platform",
            subject=f"{content.release_candidate} · {content.scope}",
        )
        self.content = content
        self.on_page = on_page
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body")
        self.addPageTemplates(
            [
                PageTemplate(id="title", frames=[frame], onPage=self._footer),
                PageTemplate(id="body", frames=[frame], onPage=self._header_and_footer),
            ]
        )

    def _footer(self, canvas, document) -> None:
        regular, _bold = register_fonts()
        canvas.saveState()
        canvas.setFont(regular, 8)
        canvas.setFillColor(MUTED)
        canvas.drawCentredString(PAGE_WIDTH / 2, MARGIN, f"Page {document.page}")
        canvas.restoreState()
        if self.on_page is not None:
            self.on_page(document.page)

    def _header_and_footer(self, canvas, document) -> None:
        regular, _bold = register_fonts()
        canvas.saveState()
        canvas.setFont(regular, 8)
        canvas.setFillColor(MUTED)
        top = PAGE_HEIGHT - MARGIN
        left = _fit(f"{self.content.title} · {self.content.scope}", BODY_WIDTH * 0.7, regular, 8)
        canvas.drawString(MARGIN, top, left)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top, self.content.generated_at.strftime("%Y-%m-%d %H:%M UTC"))
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, top - 3, PAGE_WIDTH - MARGIN, top - 3)
        canvas.restoreState()
        self._footer(canvas, document)


def _kpi_table(styles: _Styles, totals: dict) -> Table:
    header, values = KPI_HEADER, kpi_values(totals)
    table = Table([header, values], colWidths=[BODY_WIDTH / len(header)] * len(header))
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), styles.regular, 9),
                ("TEXTCOLOR", (0, 0), (-1, 0), MUTED),
                ("FONT", (0, 1), (-1, 1), styles.bold, 14),
                ("LEADING", (0, 1), (-1, 1), 18),
                ("TEXTCOLOR", (4, 1), (4, 1), STATUS_COLORS["pass"]),
                ("TEXTCOLOR", (5, 1), (5, 1), STATUS_COLORS["fail"]),
                ("TEXTCOLOR", (6, 1), (6, 1), STATUS_COLORS["pending"]),
                ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                ("INNERGRID", (0, 0), (-1, -1), 0.25, RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    return table


def _breakdown_table(styles: _Styles, label: str, rows: Sequence[dict]) -> Table:
    data = [[label, "In scope", "Executed", "Not run", "Coverage", "Pass", "Fail", "Pending", "Pass rate"]]
    name_width = BODY_WIDTH - 8 * 44
    for row in rows:
        data.append(
            [
                Paragraph(_wrapped(row.get("name", ""), name_width - 6, styles.regular, 8), styles.cell),
                str(row.get("in_scope", 0)),
                str(row.get("total", 0)),
                str(row.get("not_run", 0)),
                percent(row.get("coverage")),
                str(row.get("pass", 0)),
                str(row.get("fail", 0)),
                str(row.get("pending", 0)),
                percent(row.get("pass_rate")),
            ]
        )
    widths = [name_width] + [44] * 8
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(styles.grid)
    table.setStyle(TableStyle([("ALIGN", (1, 0), (-1, -1), "RIGHT")]))
    return table


def _cell_value(row: dict, key: str) -> str:
    value = row.get(key, "")
    if key in ("status", "previous_status"):
        return STATUS_LABELS.get(str(value), str(value or "–"))
    if key == "mantis_ids":
        return mantis_text(value or ())
    return str(value)


def _case_table(styles: _Styles, rows: Sequence[dict], columns: Sequence[tuple[str, str, float]]) -> Flowable:
    """A table of case dicts; `columns` is (heading, key, width) — widths are fractions of the body width.

    Up to LARGE_TABLE rows the cells wrap (Paragraphs); longer tables are drawn as plain rows (linear time)."""
    header = [heading for heading, _key, _width in columns]
    widths = [width * BODY_WIDTH for _h, _k, width in columns]
    if len(rows) > LARGE_TABLE:
        values = [tuple(_cell_value(row, key) for _h, key, _w in columns) for row in rows]
        return RowsTable(header, values, widths, font=styles.regular, bold=styles.bold)
    data: list[list] = [header]
    for row in rows:
        data.append(
            [
                Paragraph(_wrapped(_cell_value(row, key), width - 6, styles.regular, 8), styles.cell)
                for (_h, key, _w), width in zip(columns, widths, strict=True)
            ]
        )
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(styles.grid)
    return table


def _trend_chart(styles: _Styles, trend: Sequence[dict]) -> Drawing:
    drawing = Drawing(BODY_WIDTH, 190)
    drawing.add(String(0, 178, "Pass rate by release candidate (%)", fontName=styles.bold, fontSize=9))
    points = [(str(point.get("name", "")), point.get("pass_rate")) for point in trend]
    if not points:
        drawing.add(String(0, 90, "No release candidates with runs yet.", fontName=styles.regular, fontSize=9))
        return drawing
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, BODY_WIDTH - 60, 135
    chart.data = [[value if value is not None else 0 for _name, value in points]]
    chart.categoryAxis.categoryNames = [name[:14] for name, _value in points]
    chart.categoryAxis.labels.fontName = styles.regular
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.angle = 30 if len(points) > 6 else 0
    chart.categoryAxis.labels.boxAnchor = "ne" if len(points) > 6 else "n"
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 20
    chart.valueAxis.labels.fontName = styles.regular
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.visibleGrid = True
    chart.valueAxis.gridStrokeColor = RULE
    chart.lines[0].strokeColor = ACCENT
    chart.lines[0].strokeWidth = 2
    chart.joinedLines = 1
    chart.lineLabelFormat = "%.1f"
    chart.lineLabels.fontName = styles.regular
    chart.lineLabels.fontSize = 7
    drawing.add(chart)
    return drawing


def _category_chart(styles: _Styles, categories: Sequence[dict], limit: int = 12) -> Drawing:
    shown = sorted(categories, key=lambda row: (-int(row.get("total", 0)), str(row.get("name", ""))))[:limit]
    height = 60 + 18 * max(len(shown), 1)
    drawing = Drawing(BODY_WIDTH, height + 20)
    title = "Status by category" + (f" (largest {limit})" if len(categories) > limit else "")
    drawing.add(String(0, height + 8, title, fontName=styles.bold, fontSize=9))
    if not shown:
        drawing.add(String(0, height / 2, "No cases in scope.", fontName=styles.regular, fontSize=9))
        return drawing
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 120, 30, BODY_WIDTH - 140, height - 40
    rows = list(reversed(shown))
    chart.data = [[int(row.get(status, 0)) for row in rows] for status in ("pass", "fail", "pending")]
    chart.categoryAxis.categoryNames = [_fit(str(row.get("name", "")), 110, styles.regular, 7) for row in rows]
    chart.categoryAxis.style = "stacked"
    chart.categoryAxis.labels.fontName = styles.regular
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = styles.regular
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.barSpacing = 2
    for index, status in enumerate(("pass", "fail", "pending")):
        chart.bars[index].fillColor = STATUS_COLORS[status]
        chart.bars[index].strokeColor = None
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = 120, 12
    legend.fontName, legend.fontSize = styles.regular, 7
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.deltax = 70
    legend.colorNamePairs = [(STATUS_COLORS[s], STATUS_LABELS[s]) for s in ("pass", "fail", "pending")]
    drawing.add(legend)
    return drawing


class RowsTable(Flowable):
    """Fixed-height rows of plain text drawn straight on the canvas; splits between rows, header on every page.

    The appendix of a 10k-case suite has 80k cells: a platypus `Table` styles and measures every cell again at
    each page break; this draws each cell once (cut to its column with an ellipsis), so time is linear.
    """

    def __init__(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        *,
        font: str,
        bold: str,
        size: float = 7.5,
        start: int = 0,
        end: int | None = None,
    ) -> None:
        super().__init__()
        self.header, self.rows, self.widths = header, rows, widths
        self.font, self.bold, self.size = font, bold, size
        self.row_height = size + 3.2
        self.start, self.end = start, len(rows) if end is None else end

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self.width = sum(self.widths)
        self.height = self.row_height * (self.end - self.start + 1)
        return self.width, self.height

    def split(self, available_width: float, available_height: float) -> list:
        fitting = int(available_height // self.row_height) - 1
        if fitting < 1 or self.start + fitting >= self.end:
            return []
        cut = self.start + fitting
        options = {"font": self.font, "bold": self.bold, "size": self.size}
        return [
            RowsTable(self.header, self.rows, self.widths, start=self.start, end=cut, **options),
            RowsTable(self.header, self.rows, self.widths, start=cut, end=self.end, **options),
        ]

    def draw(self) -> None:
        canvas = self.canv
        height = self.row_height
        limits = [width - 6 for width in self.widths]
        offsets = [sum(self.widths[:index]) + 3 for index in range(len(self.widths))]
        top = self.height
        canvas.setFillColor(HEADER_FILL)
        canvas.rect(0, top - height, self.width, height, stroke=0, fill=1)
        for index in range(self.start, self.end):
            if (index - self.start) % 2:
                canvas.setFillColor(STRIPE)
                canvas.rect(0, top - height * (index - self.start + 2), self.width, height, stroke=0, fill=1)
        canvas.setStrokeColor(ACCENT)
        canvas.setLineWidth(0.8)
        canvas.line(0, top - height, self.width, top - height)
        text = canvas.beginText()
        text.setFillColor(INK)
        text.setFont(self.bold, self.size)
        baseline = top - height + 2.2
        for offset, label in zip(offsets, self.header, strict=True):
            text.setTextOrigin(offset, baseline)
            text.textOut(label)
        text.setFont(self.font, self.size)
        for position, index in enumerate(range(self.start, self.end), start=2):
            baseline = top - height * position + 2.2
            for offset, limit, value in zip(offsets, limits, self.rows[index], strict=True):
                if value:
                    text.setTextOrigin(offset, baseline)
                    text.textOut(_fit(value, limit, self.font, self.size))
        canvas.drawText(text)


def _case_rows(cases: Sequence[CaseRow], with_suite: bool) -> list[tuple[str, ...]]:
    rows = []
    for row in cases:
        values = (
            row.key,
            row.title,
            row.category,
            row.owner,
            f"P{row.priority}",
            STATUS_LABELS.get(row.status, row.status),
            mantis_text(row.mantis_ids),
        )
        rows.append((row.suite, *values) if with_suite else values)
    return rows


def _appendix_table(styles: _Styles, cases: Sequence[CaseRow], with_suite: bool) -> RowsTable:
    columns = [("Key", 0.12), ("Title", 0.36 if with_suite else 0.50), ("Category", 0.12), ("Owner", 0.12)]
    columns += [("P", 0.035), ("Status", 0.075), ("Mantis", 0.07)]
    if with_suite:
        columns.insert(0, ("Suite", 0.14))
    total = sum(width for _name, width in columns)
    widths = [width / total * BODY_WIDTH for _name, width in columns]
    header = [name for name, _width in columns]
    return RowsTable(header, _case_rows(cases, with_suite), widths, font=styles.regular, bold=styles.bold)


def _title_page(styles: _Styles, content: ReportContent) -> list:
    figures = content.figures
    gate = figures.get("gate", {})
    verdict = str(gate.get("verdict", ""))
    verdict_style = ParagraphStyle(
        "verdict", parent=styles.title, fontSize=30, textColor=VERDICT_COLORS.get(verdict, INK), spaceBefore=24
    )
    lines = [
        Spacer(1, 120),
        Paragraph("Release quality report", styles.title),
        Paragraph(f"Release candidate <b>{_text(content.release_candidate)}</b>", styles.subtitle),
        Paragraph(f"Scope: {_text(content.scope)}", styles.subtitle),
        Paragraph(_text(content.edition_label), styles.subtitle),
    ]
    if content.baseline:
        lines.append(Paragraph(f"Compared with {_text(content.baseline)}", styles.subtitle))
    lines += [
        Paragraph(f"Release gate: {_text(verdict or 'n/a')}", verdict_style),
        Spacer(1, 40),
        Paragraph(
            f"Generated {content.generated_at:%Y-%m-%d %H:%M} UTC by {_text(content.generated_by)}", styles.centered
        ),
        Paragraph(_text(cover_line(figures.get("totals", {}))), styles.centered),
        Spacer(1, 24),
        Paragraph(_text(content.ai_statement), styles.small),
        NextPageTemplate("body"),
        PageBreak(),
    ]
    return lines


def _executive_summary(styles: _Styles, content: ReportContent) -> list:
    """One page: verdict and reasons, coverage and pass rate, the narrative, new failures and fixed against the
    baseline, top risks and the recommendation (never empty: the narrative falls back to the figures)."""
    narrative = content.narrative
    lines = executive_lines(content)
    short = content.edition == "short"
    story: list = [Paragraph("1. Executive summary", styles.h1), _kpi_table(styles, content.figures.get("totals", {}))]
    story.append(Spacer(1, 8))
    story.append(Paragraph(f"<b>Release gate: {_text(lines['verdict'])}</b>", styles.body))
    for reason in lines["reasons"]:
        story.append(Paragraph(_text(reason), styles.bullet, bulletText="•"))
    story.append(Paragraph("Summary", styles.h2))
    for paragraph in str(narrative.get("summary", "")).split("\n\n"):
        if paragraph.strip():
            story.append(Paragraph(_text(paragraph.strip()), styles.body))
    story.append(Paragraph("Changes since the baseline", styles.h2))
    for key in ("delta", "new_failures", "fixed"):
        story.append(Paragraph(_text(lines[key]), styles.body))
    story.append(Paragraph("Top risks" if short else "Risks", styles.h2))
    risks = list(narrative.get("risks") or [])
    for risk in risks[:SHORT_RISKS] if short else risks:
        story.append(Paragraph(_text(risk), styles.bullet, bulletText="•"))
    if short and len(risks) > SHORT_RISKS:
        story.append(Paragraph(f"{len(risks) - SHORT_RISKS} more in the full edition.", styles.small))
    story.append(Paragraph("Recommendation", styles.h2))
    story.append(Paragraph(_text(narrative.get("recommendation", "")), styles.body))
    story.append(Paragraph(_text(content.ai_statement), styles.small))
    return story


def _delta_section(styles: _Styles, content: ReportContent) -> list:
    delta = content.figures.get("delta", {})
    story: list = [CondPageBreak(120), Paragraph("4. Changes since the baseline", styles.h1)]
    baseline = delta.get("baseline") or ""
    if not baseline:
        story.append(Paragraph("There is no earlier release candidate to compare with.", styles.body))
        return story
    story.append(Paragraph(f"Compared with {_text(baseline)}.", styles.body))
    groups = [
        ("New failures", "new_failures"),
        ("Fixed", "fixed"),
        ("Still failing", "still_failing"),
        ("Newly not run", "newly_not_run"),
    ]
    counts = Table(
        [[label for label, _key in groups], [str(len(delta.get(key, []))) for _label, key in groups]],
        colWidths=[BODY_WIDTH / 4] * 4,
    )
    counts.setStyle(styles.grid)
    counts.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER"), ("FONT", (0, 1), (-1, 1), styles.bold, 12)]))
    story += [counts, Spacer(1, 6)]
    columns = [
        ("Key", "key", 0.13),
        ("Title", "title", 0.37),
        ("Suite", "suite", 0.16),
        ("Owner", "owner", 0.12),
        ("Before", "previous_status", 0.11),
        ("Now", "status", 0.11),
    ]
    for label, key in groups:
        rows = delta.get(key, [])
        if rows:
            story.append(Paragraph(f"{label} ({len(rows)})", styles.h2))
            story.append(_case_table(styles, rows, columns))
    return story


def render_pdf(content: ReportContent, out: BinaryIO, *, on_page: Callable[[int], None] | None = None) -> None:
    """Write the report as PDF to `out`: the short edition is the cover and the one-page executive summary, the
    full edition adds charts, breakdowns, changes, failures and the appendix. `on_page(n)` is called as pages are
    laid out (progress)."""
    styles = _Styles()
    figures = content.figures
    story: list = _title_page(styles, content)
    story += _executive_summary(styles, content)
    if content.edition == "short":
        _ReportDocument(out, content, on_page).build(story)
        return

    story += [CondPageBreak(260), Paragraph("2. Charts", styles.h1)]
    story.append(_trend_chart(styles, figures.get("trend", [])))
    story.append(Spacer(1, 10))
    story.append(_category_chart(styles, figures.get("by_category", [])))

    story += [PageBreak(), Paragraph("3. Status breakdown", styles.h1)]
    story += [Paragraph("By category", styles.h2), _breakdown_table(styles, "Category", figures.get("by_category", []))]
    story += [Paragraph("By owner", styles.h2), _breakdown_table(styles, "Owner", figures.get("by_owner", []))]
    if len(figures.get("by_suite", [])) > 1:
        story += [Paragraph("By suite", styles.h2), _breakdown_table(styles, "Suite", figures.get("by_suite", []))]

    story += _delta_section(styles, content)

    flaky = figures.get("flaky", [])
    story += [CondPageBreak(120), Paragraph("5. Failures", styles.h1)]
    failures = content.failures
    story.append(Paragraph(f"{len(failures)} cases fail in {_text(content.release_candidate)}.", styles.body))
    if failures:
        rows = [row._asdict() for row in failures]
        columns = [
            ("Key", "key", 0.13),
            ("Title", "title", 0.37),
            ("Suite", "suite", 0.15),
            ("Category", "category", 0.13),
            ("Owner", "owner", 0.11),
            ("Mantis", "mantis_ids", 0.11),
        ]
        story.append(_case_table(styles, rows, columns))
    mantis = figures.get("mantis_open", [])
    story.append(Paragraph("Open Mantis issues", styles.h2))
    story.append(Paragraph(_text(mantis_text(mantis)) if mantis else "None linked to failing cases.", styles.body))
    story.append(Paragraph(f"Flaky cases ({len(flaky)})", styles.h2))
    if flaky:
        columns = [("Key", "key", 0.15), ("Title", "title", 0.45), ("Suite", "suite", 0.2), ("History", "history", 0.2)]
        story.append(_case_table(styles, flaky, columns))
    else:
        story.append(Paragraph("No case changed status back and forth in the recent release candidates.", styles.body))

    story += [PageBreak(), Paragraph("Appendix: all cases", styles.h1)]
    story.append(
        Paragraph(
            f"{len(content.cases)} cases with their latest status in {_text(content.release_candidate)}.",
            styles.body,
        )
    )
    with_suite = len({row.suite for row in content.cases}) > 1
    story.append(_appendix_table(styles, content.cases, with_suite))
    _ReportDocument(out, content, on_page).build(story)
