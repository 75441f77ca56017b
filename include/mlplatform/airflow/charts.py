"""Line charts as inline SVG for the MLOps page: axes, units, a legend and threshold lines.

Inline SVG keeps the page self-contained (no scripts, no external assets, works offline and
in the UI's iframe) and costs nothing at render time. A chart is one :class:`Chart`: points
per series along month labels, the unit of the y axis, an optional threshold per month
(dashed red) and points to ring in red (``marks``), or a logarithmic y axis (``log_floor``).
Each series is a ``<g class="series" data-series="name">`` (its class set by
``series_class``), so a reader or a test can count the lines; a legend of more than three
entries is laid out in rows under the plot.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 420, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 28, 30, 44
# Ten colours people tell apart (Tableau 10, the threshold red left out), then dashed variants.
COLOURS = (
    "#017cee",
    "#e36209",
    "#2f855a",
    "#805ad5",
    "#d53f8c",
    "#8c564b",
    "#17becf",
    "#bcbd22",
    "#4a5568",
    "#ff9da7",
)
LEGEND_ROW, LEGEND_COLUMN = 14, 150
THRESHOLD_COLOUR = "#c53030"


@dataclass(frozen=True)
class Chart:
    """What one chart shows; ``series`` maps a name to a value per label (``None``: no value)."""

    title: str
    unit: str
    labels: Sequence[str]
    series: Mapping[str, Sequence[float | None]]
    threshold: Sequence[float | None] = field(default_factory=tuple)
    threshold_label: str = "threshold"
    width: int = WIDTH
    series_class: str = "series"
    marks: Mapping[str, Sequence[bool]] = field(default_factory=dict)
    """Points to ring in red, per series and label (a rule's share that jumped)."""
    log_floor: float | None = None
    """Draw the y axis logarithmic, from this value up (for shares that span decades); values
    under it, zero included, sit on the axis."""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _ticks(high: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def _log_ticks(floor: float, high: float) -> list[float]:
    """Decades from ``floor`` to the first at or above ``high``."""
    ticks = [floor]
    while ticks[-1] < high * 1.05 or len(ticks) < 2:
        ticks.append(ticks[-1] * 10)
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _polyline(
    points: list[tuple[float, float]], colour: str, dash: str | None = None, dots: bool = True
) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    marks = (
        "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in points)
        if dots
        else ""
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashed} points="{coords}"/>{marks}'


def _style(n: int) -> tuple[str, str | None]:
    """The colour of the ``n``-th series, dashed once the colours have all been used."""
    return COLOURS[n % len(COLOURS)], (None if n < len(COLOURS) else "2 2")


def render(chart: Chart) -> str:
    """The chart as an ``<svg>`` element, or an empty string with fewer than one value."""
    values = [v for s in chart.series.values() for v in s if v is not None]
    limits = [t for t in chart.threshold if t is not None]
    if not values or not chart.labels:
        return ""
    high = max(values + limits)
    ticks = _log_ticks(chart.log_floor, high) if chart.log_floor else _ticks(high * 1.05)
    bottom, top_value = (ticks[0], ticks[-1]) if chart.log_floor else (0.0, ticks[-1] or 1.0)
    width = chart.width
    entries = len(chart.series) + (1 if limits else 0)
    below = entries > 3  # a long legend goes in rows under the plot
    per_row = max(1, (width - LEFT) // LEGEND_COLUMN)
    legend_h = math.ceil(entries / per_row) * LEGEND_ROW + 6 if below else 0
    height = HEIGHT + legend_h
    plot_w, plot_h = width - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(chart.labels) - 1, 1)

    def x(i: int) -> float:
        return LEFT + (i * step if len(chart.labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        if chart.log_floor:
            span = math.log10(top_value / bottom)
            return TOP + plot_h - math.log10(max(v, bottom) / bottom) / span * plot_h
        return TOP + plot_h - v / top_value * plot_h

    every = max(1, math.ceil(len(chart.labels) / (8 * width / WIDTH)))
    last = len(chart.labels) - 1

    parts = [
        f'<svg class="chart" role="img" aria-label="{_esc(chart.title)} ({_esc(chart.unit)})" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-size="10">',
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="600">{_esc(chart.title)}</text>',
        # y axis: ticks, grid and the unit
        *(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e2e8f0"/>'
            f'<text x="{LEFT - 4}" y="{y(t) + 3:.1f}" text-anchor="end">{_fmt(t)}</text>'
            for t in ticks
        ),
        f'<text class="unit" transform="translate(12 {TOP + plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{_esc(chart.unit)}</text>',
        # x axis: one label per month (thinned to about eight)
        f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#4a5568"/>',
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#4a5568"/>',
        *(
            f'<text x="{x(i):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{_esc(label)}</text>'
            for i, label in enumerate(chart.labels)
            if i == last or (i % every == 0 and last - i >= every)  # the last month always
        ),
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">month</text>',
    ]
    legend: list[tuple[str, str, str | None]] = []
    for n, (name, series) in enumerate(chart.series.items()):
        colour, dash = _style(n)
        points = [(x(i), y(v)) for i, v in enumerate(series) if v is not None]
        if not points:
            continue
        line = _polyline(points, colour, dash)
        marked = chart.marks.get(name, ())
        line += "".join(
            f'<circle class="mark" cx="{x(i):.1f}" cy="{y(v):.1f}" r="5" fill="none" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-width="1.5"/>'
            for i, v in enumerate(series)
            if v is not None and i < len(marked) and marked[i]
        )
        parts.append(f'<g class="{_esc(chart.series_class)}" data-series="{_esc(name)}">{line}</g>')
        legend.append((name, colour, dash))
    threshold = [(x(i), y(t)) for i, t in enumerate(chart.threshold) if t is not None]
    if threshold:
        parts.append(f'<g class="threshold">{_polyline(threshold, THRESHOLD_COLOUR, "6 4", False)}</g>')
        legend.append((chart.threshold_label, THRESHOLD_COLOUR, "6 4"))
    for n, (name, colour, dash) in enumerate(legend):
        if below:
            lx = LEFT + (n % per_row) * LEGEND_COLUMN
            ly = HEIGHT + 2 + (n // per_row) * LEGEND_ROW
        else:
            lx, ly = LEFT + 8 + n * 100, TOP - 2
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{lx}" x2="{lx + 12}" y1="{ly - 3}" y2="{ly - 3}" '
            f'stroke="{colour}" stroke-width="3"{dashed}/>'
            f'<text x="{lx + 16}" y="{ly}">{_esc(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
