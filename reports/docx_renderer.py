"""The DOCX: the PDF's content with real Word headings (Heading 1/2), real tables and list paragraphs, so a manager
can edit it. Large tables are appended as raw `w:tr` elements: python-docx's `row.cells` walks the whole table,
which makes a 10k-row table quadratic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import BinaryIO

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor

from reports.charts import category_png, trend_png
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

# XML 1.0 forbids most control characters; a case title containing one must not break the document.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
VERDICT_COLORS = {"GO": RGBColor(0x1A, 0x7F, 0x37), "NO-GO": RGBColor(0xC6, 0x28, 0x28)}


# Inside a table cell Word breaks a word wider than the column at any letter; a zero-width space after @ and . (an
# e-mail, a host name) gives it a better place, so "bob@demo.local" wraps as "bob@" / "demo.local".
_BREAK_AFTER = re.compile(r"(?<=[@.])(?=[^\s\d])")


def _clean(value: object) -> str:
    return _XML_ILLEGAL.sub("\ufffd", str(value))


def _cell_text(value: object) -> str:
    return _BREAK_AFTER.sub("\u200b", _clean(value))


def _cell_value(row: dict, key: str) -> str:
    value = row.get(key, "")
    if key in ("status", "previous_status"):
        return STATUS_LABELS.get(str(value), str(value or "–"))
    if key == "mantis_ids":
        return mantis_text(value or ())
    return str(value)


def _mark_header(row) -> None:
    """Repeat the header row on every page and make it bold."""
    properties = row._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    properties.append(header)
    for cell in row.cells:
        for paragraph in cell.paragraphs:
            for run in paragraph.runs:
                run.bold = True


def _table(document, header: Sequence[str], rows: Sequence[Sequence[str]], widths_cm: Sequence[float] | None = None):
    table = document.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, label in zip(table.rows[0].cells, header, strict=True):
        cell.text = _clean(label)
    _mark_header(table.rows[0])
    if widths_cm:
        for cell, width in zip(table.rows[0].cells, widths_cm, strict=True):
            cell.width = Cm(width)
    _append_rows(table, rows, widths_cm)
    return table


def _append_rows(table, rows: Sequence[Sequence[str]], widths_cm: Sequence[float] | None) -> None:
    """Append rows as raw XML (linear); each cell is one paragraph with one run."""
    tbl = table._tbl
    widths = [str(int(Cm(width).twips)) for width in widths_cm] if widths_cm else None
    for values in rows:
        tr = OxmlElement("w:tr")
        for index, value in enumerate(values):
            tc = OxmlElement("w:tc")
            if widths:
                tc_pr = OxmlElement("w:tcPr")
                tc_w = OxmlElement("w:tcW")
                tc_w.set(qn("w:w"), widths[index])
                tc_w.set(qn("w:type"), "dxa")
                tc_pr.append(tc_w)
                tc.append(tc_pr)
            paragraph = OxmlElement("w:p")
            if value:
                run = OxmlElement("w:r")
                text = OxmlElement("w:t")
                text.set(qn("xml:space"), "preserve")
                text.text = _cell_text(value)
                run.append(text)
                paragraph.append(run)
            tc.append(paragraph)
            tr.append(tc)
        tbl.append(tr)


def _page_number_footer(section, caption: str) -> None:
    header = section.header.paragraphs[0]
    header.text = _clean(caption)
    for run in header.runs:
        run.font.size = Pt(8)
        run.font.color.rgb = RGBColor(0x5F, 0x6B, 0x76)
    footer = section.footer.paragraphs[0]
    footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = footer.add_run("Page ")
    run.font.size = Pt(8)
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), "PAGE")
    number = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = "1"
    number.append(text)
    field.append(number)
    footer._p.append(field)


def _breakdown(document, label: str, rows: Sequence[dict]) -> None:
    values = [
        (
            str(row.get("name", "")),
            str(row.get("in_scope", 0)),
            str(row.get("total", 0)),
            str(row.get("not_run", 0)),
            percent(row.get("coverage")),
            str(row.get("pass", 0)),
            str(row.get("fail", 0)),
            str(row.get("pending", 0)),
            percent(row.get("pass_rate")),
        )
        for row in rows
    ]
    header = [label, "In scope", "Executed", "Not run", "Coverage", "Pass", "Fail", "Pending", "Pass rate"]
    _table(document, header, values, [4.2] + [1.6] * 8)


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


def render_docx(content: ReportContent, out: BinaryIO) -> None:
    """Write the report as DOCX to `out`."""
    figures = content.figures
    totals = figures.get("totals", {})
    gate = figures.get("gate", {})
    narrative = content.narrative
    document = Document()
    document.core_properties.title = _clean(content.title)
    document.core_properties.subject = _clean(f"{content.release_candidate} · {content.scope}")
    document.core_properties.author = "Report Platform"
    normal = document.styles["Normal"]
    normal.font.name = "DejaVu Sans"
    normal.font.size = Pt(10)
    section = document.sections[0]
    section.left_margin = section.right_margin = Cm(1.8)
    _page_number_footer(section, f"{content.title} · {content.scope}")

    # Title page
    document.add_paragraph().add_run().add_break()
    document.add_heading("Release quality report", level=0)
    document.add_paragraph(_clean(f"Release candidate {content.release_candidate}"))
    document.add_paragraph(_clean(f"Scope: {content.scope}"))
    document.add_paragraph(_clean(content.edition_label))
    if content.baseline:
        document.add_paragraph(_clean(f"Compared with {content.baseline}"))
    verdict = str(gate.get("verdict", "n/a"))
    verdict_run = document.add_paragraph().add_run(_clean(f"Release gate: {verdict}"))
    verdict_run.bold = True
    verdict_run.font.size = Pt(22)
    if verdict in VERDICT_COLORS:
        verdict_run.font.color.rgb = VERDICT_COLORS[verdict]
    document.add_paragraph(_clean(f"Generated {content.generated_at:%Y-%m-%d %H:%M} UTC by {content.generated_by}"))
    document.add_paragraph(_clean(cover_line(totals)))
    document.add_paragraph(_clean(content.ai_statement)).runs[0].italic = True
    document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)

    # 1. Executive summary
    document.add_heading("1. Executive summary", level=1)
    _table(document, KPI_HEADER, [kpi_values(totals)])
    lines = executive_lines(content)
    short = content.edition == "short"
    document.add_paragraph().add_run(_clean(f"Release gate: {verdict}")).bold = True
    for reason in gate.get("reasons", []):
        document.add_paragraph(_clean(reason), style="List Bullet")
    document.add_heading("Summary", level=2)
    for paragraph in str(narrative.get("summary", "")).split("\n\n"):
        if paragraph.strip():
            document.add_paragraph(_clean(paragraph.strip()))
    document.add_heading("Changes since the baseline", level=2)
    for key in ("delta", "new_failures", "fixed"):
        document.add_paragraph(_clean(lines[key]))
    document.add_heading("Top risks" if short else "Risks", level=2)
    risks = list(narrative.get("risks") or [])
    for risk in risks[:SHORT_RISKS] if short else risks:
        document.add_paragraph(_clean(risk), style="List Bullet")
    if short and len(risks) > SHORT_RISKS:
        document.add_paragraph(f"{len(risks) - SHORT_RISKS} more in the full edition.")
    document.add_heading("Recommendation", level=2)
    document.add_paragraph(_clean(narrative.get("recommendation", "")))
    document.add_paragraph(_clean(content.ai_statement)).runs[0].italic = True
    if short:
        document.save(out)
        return

    # 2. Charts
    document.add_heading("2. Charts", level=1)
    document.add_picture(trend_png(figures.get("trend", [])), width=Cm(16))
    document.add_picture(category_png(figures.get("by_category", [])), width=Cm(16))

    # 3. Breakdown
    document.add_heading("3. Status breakdown", level=1)
    document.add_heading("By category", level=2)
    _breakdown(document, "Category", figures.get("by_category", []))
    document.add_heading("By owner", level=2)
    _breakdown(document, "Owner", figures.get("by_owner", []))
    if len(figures.get("by_suite", [])) > 1:
        document.add_heading("By suite", level=2)
        _breakdown(document, "Suite", figures.get("by_suite", []))

    # 4. Delta
    delta = figures.get("delta", {})
    document.add_heading("4. Changes since the baseline", level=1)
    if not delta.get("baseline"):
        document.add_paragraph("There is no earlier release candidate to compare with.")
    else:
        document.add_paragraph(_clean(f"Compared with {delta['baseline']}."))
        groups = [
            ("New failures", "new_failures"),
            ("Fixed", "fixed"),
            ("Still failing", "still_failing"),
            ("Newly not run", "newly_not_run"),
        ]
        _table(document, [label for label, _key in groups], [[str(len(delta.get(key, []))) for _l, key in groups]])
        keys = ("key", "title", "suite", "owner", "previous_status", "status")
        for label, key in groups:
            rows = delta.get(key, [])
            if rows:
                document.add_heading(f"{label} ({len(rows)})", level=2)
                values = [tuple(_cell_value(row, column) for column in keys) for row in rows]
                _table(
                    document, ["Key", "Title", "Suite", "Owner", "Before", "Now"], values, [2.4, 6, 2.8, 2.4, 1.7, 1.7]
                )

    # 5. Failures
    document.add_heading("5. Failures", level=1)
    failures = content.failures
    document.add_paragraph(_clean(f"{len(failures)} cases fail in {content.release_candidate}."))
    if failures:
        keys = ("key", "title", "suite", "category", "owner", "mantis_ids")
        values = [tuple(_cell_value(row._asdict(), column) for column in keys) for row in failures]
        _table(document, ["Key", "Title", "Suite", "Category", "Owner", "Mantis"], values, [2.4, 6, 2.6, 2.2, 2.2, 1.6])
    document.add_heading("Open Mantis issues", level=2)
    mantis = figures.get("mantis_open", [])
    document.add_paragraph(mantis_text(mantis) if mantis else "None linked to failing cases.")
    flaky = figures.get("flaky", [])
    document.add_heading(f"Flaky cases ({len(flaky)})", level=2)
    if flaky:
        values = [tuple(_cell_value(row, column) for column in ("key", "title", "suite", "history")) for row in flaky]
        _table(document, ["Key", "Title", "Suite", "History"], values, [2.6, 7.4, 3.2, 3.8])
    else:
        document.add_paragraph("No case changed status back and forth in the recent release candidates.")

    # Appendix
    document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    document.add_heading("Appendix: all cases", level=1)
    document.add_paragraph(
        _clean(f"{len(content.cases)} cases with their latest status in {content.release_candidate}.")
    )
    with_suite = len({row.suite for row in content.cases}) > 1
    header = ["Key", "Title", "Category", "Owner", "P", "Status", "Mantis"]
    widths = [2.2, 5.6, 2.2, 2.2, 0.8, 1.6, 1.6]
    if with_suite:
        header.insert(0, "Suite")
        widths = [2.2, 2.0, 4.2, 2.0, 2.0, 0.8, 1.4, 1.4]
    _table(document, header, _case_rows(content.cases, with_suite), widths)
    document.save(out)
