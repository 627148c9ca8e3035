"""Plain PDF documents for the client: a title, then labelled lines and sections, one
A4 column (reportlab: no browser, no system library). The JSON beside each is the
authoritative form; the PDF is for people and filing."""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

__all__ = ["Line", "document_pdf"]

# A line: (label, text); a label alone with text "" is a section heading.
Line = tuple[str, str]
_MARGIN, _LEADING, _WIDTH_CHARS = 72, 14, 100


def document_pdf(title: str, lines: Sequence[Line]) -> bytes:
    buffer = BytesIO()
    pdf = Canvas(buffer, pagesize=A4, invariant=True)  # the same bytes for the same input
    pdf.setTitle(title)
    y = A4[1] - _MARGIN
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(_MARGIN, y, title)
    y -= _LEADING
    for label, text in lines:
        for row, bold in _rows(label, text):
            y -= _LEADING
            if y < _MARGIN:
                pdf.showPage()
                y = A4[1] - _MARGIN
            pdf.setFont("Helvetica-Bold" if bold else "Helvetica", 10)
            pdf.drawString(_MARGIN, y, row)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _rows(label: str, text: str) -> list[tuple[str, bool]]:
    """A heading, or ``label: text`` wrapped to the column."""
    if not text:
        return [("", False), (label, True)]
    words, rows, row = f"{label}: {text}".split(), [], ""
    for word in words:
        if row and len(row) + 1 + len(word) > _WIDTH_CHARS:
            rows.append(row)
            row = "    " + word
        else:
            row = f"{row} {word}" if row else word
    return [(r, False) for r in [*rows, row]]
