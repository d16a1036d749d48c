"""The PDF and DOCX renderers on content built in memory: sections, numbers, escaping, Unicode, fallback notice."""

from __future__ import annotations

import io

import pytest
from docx import Document
from pypdf import PdfReader

from reports.docx_renderer import render_docx
from reports.pdf_renderer import render_pdf
from tests.reports.samples import HOSTILE_OWNER, HOSTILE_TITLE, sample_content

SECTIONS = [
    "Executive summary",
    "Charts",
    "Status breakdown",
    "Changes since the baseline",
    "Failures",
    "Appendix: all cases",
]


def _pdf_text(content) -> tuple[str, PdfReader]:
    out = io.BytesIO()
    render_pdf(content, out)
    reader = PdfReader(io.BytesIO(out.getvalue()))
    return "\n".join(page.extract_text() for page in reader.pages), reader


def _docx(content) -> Document:
    out = io.BytesIO()
    render_docx(content, out)
    return Document(io.BytesIO(out.getvalue()))


def _docx_text(document) -> str:
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    return "\n".join(parts)


@pytest.fixture(scope="module")
def content():
    return sample_content(60)


@pytest.fixture(scope="module")
def pdf(content):
    return _pdf_text(content)


@pytest.fixture(scope="module")
def docx_document(content):
    return _docx(content)


def test_it_writes_every_pdf_section_with_the_figures(pdf, content):
    text, reader = pdf
    for section in SECTIONS:
        assert section in text
    totals = content.figures["totals"]
    assert "Release quality report" in reader.pages[0].extract_text()
    assert "Release gate: NO-GO" in reader.pages[0].extract_text()
    summary_page = reader.pages[1].extract_text()
    for value in (totals["total"], totals["pass"], totals["fail"], totals["pending"]):
        assert str(value) in summary_page
    assert f"{totals['pass_rate']:.1f} %" in summary_page
    assert "Pass rate 70.0 % is below 95 %" in text
    assert "Hold the release until the new failures are fixed." in text
    assert "offline-model-1" in text and "$0.0123" in text
    assert "1003, 1013" in text  # open Mantis ids


def test_it_numbers_pages_and_repeats_the_header(pdf):
    _text, reader = pdf
    assert len(reader.pages) >= 6
    last = reader.pages[-1].extract_text()
    assert f"Page {len(reader.pages)}" in last
    assert "Release report RC-3 <beta> · All suites" in last


def test_it_prints_html_in_names_as_text_in_the_pdf(pdf):
    text, _reader = pdf
    # Paragraph markup would have swallowed the tags; escaped, they are printed as written.
    assert "<b>Bold</b> & <script>alert(1)</script>" in text
    assert "Ünïcödé Ωμέγα Привет" in text
    assert "Zoë <i>O'Brien</i>" in text
    assert "Flaky & <odd>" in text


def test_it_embeds_a_unicode_font(pdf):
    _text, reader = pdf
    embedded = set()
    for page in reader.pages[:3]:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is not None and "/FontFile2" in descriptor.get_object():
                embedded.add(str(font["/BaseFont"]).split("+")[-1])
    # TrueType subsets embedded in the file: the text renders the same on a machine without these fonts.
    assert {"DejaVuSans", "DejaVuSans-Bold"} <= embedded


def test_it_lists_every_case_in_the_appendix(content):
    text, _reader = _pdf_text(content)
    appendix = text[text.index("Appendix: all cases") :]
    for row in content.cases:
        assert row.key in appendix


def test_it_writes_real_word_headings_and_tables(docx_document, content):
    headings = {p.text: p.style.name for p in docx_document.paragraphs if p.style.name.startswith("Heading")}
    for number, section in enumerate(SECTIONS[:5], start=1):
        assert headings[f"{number}. {section}"] == "Heading 1"
    assert headings["Appendix: all cases"] == "Heading 1"
    assert headings["Summary"] == "Heading 2" and headings["Risks"] == "Heading 2"
    appendix = docx_document.tables[-1]
    assert [cell.text for cell in appendix.rows[0].cells][:3] == ["Suite", "Key", "Title"]
    assert len(appendix.rows) == len(content.cases) + 1
    assert appendix.rows[0]._tr.trPr is not None  # header row repeats on every page


def test_it_puts_the_same_figures_and_narrative_in_the_docx(docx_document, content):
    text = _docx_text(docx_document)
    totals = content.figures["totals"]
    kpi = docx_document.tables[0]
    assert [cell.text for cell in kpi.rows[1].cells] == [
        str(totals["in_scope"]),
        str(totals["total"]),
        "0",
        "100.0 %",
        str(totals["pass"]),
        str(totals["fail"]),
        str(totals["pending"]),
        f"{totals['pass_rate']:.1f} %",
    ]
    assert "Release gate: NO-GO" in text
    assert "The RC is not ready: the pass rate is 70.0 %." in text
    assert "Payments failures cluster in one owner." in text
    assert HOSTILE_TITLE in text and HOSTILE_OWNER in text
    assert "offline-model-1" in text and "$0.0123" in text
    pictures = docx_document.inline_shapes
    assert len(pictures) == 2  # pass-rate trend and status by category


def test_it_says_so_when_the_ai_narrative_was_unavailable():
    content = sample_content(12, source="fallback")
    text, _reader = _pdf_text(content)
    assert "AI narrative unavailable (AI quota exceeded)" in text
    assert "generated from the figures without AI" in text
    assert "AI narrative unavailable (AI quota exceeded)" in _docx_text(_docx(content))


def test_it_survives_control_characters_in_names():
    content = sample_content(5)
    content.cases[0] = content.cases[0]._replace(title="bell\x07 and NUL\x00 inside")
    document = _docx(content)
    assert "bell\ufffd and NUL\ufffd inside" in _docx_text(document)
    text, _reader = _pdf_text(content)
    assert "Appendix: all cases" in text


def test_it_renders_an_empty_scope_without_failing():
    content = sample_content(0)
    content.figures["delta"]["baseline"] = ""
    text, _reader = _pdf_text(content)
    assert "There is no earlier release candidate to compare with." in text
    assert "0 cases fail" in text
    assert "There is no earlier release candidate" in _docx_text(_docx(content))
