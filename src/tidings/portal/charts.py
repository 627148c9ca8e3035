"""Charts as SVG written on the server: a person reads them at a glance, they need no
script, and their colours come from the portal's stylesheet (classes, no inline style,
which the Content-Security-Policy would refuse). A bar chart is a few rectangles; a
charting library would bring a script or inline styles for that."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

BAR_HEIGHT, GAP, LABEL_WIDTH, WIDTH = 22, 8, 120, 480


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    kind: str = ""  # a CSS class: the bar's colour (delivered, failed, …)


_ROW = Markup(
    '<g class="bar {kind}"><text x="{label_x}" y="{text_y}" class="label">{label}</text>'
    '<rect x="{bar_x}" y="{y}" width="{length}" height="{height}" rx="3"/>'
    '<text x="{value_x}" y="{text_y}" class="value">{value}</text></g>')
_CHART = Markup('<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
                'aria-label="{title}"><title>{title}</title>{rows}</svg>')


def bar_chart(bars: Sequence[Bar], *, title: str) -> Markup:
    """Horizontal bars, each labelled with its name and its value; an accessible
    ``<svg role="img">`` whose title says what it shows. Every text is escaped by
    ``Markup.format``."""
    height = max(len(bars), 1) * (BAR_HEIGHT + GAP)
    top = max((bar.value for bar in bars), default=0) or 1
    span = WIDTH - LABEL_WIDTH - 60
    rows = []
    for i, bar in enumerate(bars):
        y = i * (BAR_HEIGHT + GAP)
        length = round(span * bar.value / top) if bar.value else 0
        rows.append(_ROW.format(kind=bar.kind, label_x=LABEL_WIDTH - 8, text_y=y + 16,
                                label=bar.label, bar_x=LABEL_WIDTH, y=y, length=length,
                                height=BAR_HEIGHT, value_x=LABEL_WIDTH + length + 6,
                                value=f"{bar.value:,}"))
    return _CHART.format(width=WIDTH, height=height, title=title, rows=Markup("").join(rows))
