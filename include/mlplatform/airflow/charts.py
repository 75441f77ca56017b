"""Line charts as inline SVG for the MLOps page: axes, units, a legend and threshold lines.

Inline SVG keeps the page self-contained (no scripts, no external assets, works offline and
in the UI's iframe) and costs nothing at render time. A chart is one :class:`Chart`: points
per series along month labels, the unit of the y axis, an optional threshold per month
(dashed red) and points to ring in red (``marks``), or a logarithmic y axis (``log_floor``).
Each series is a ``<g class="series" data-series="name">`` (its class set by
``series_class``), so a reader or a test can count the lines; a legend of more than three
entries is laid out in rows under the plot. A series may be drawn dashed (``dashed``: an
estimate, not a measurement) and its points may carry a hover title (``titles``).

A :class:`Timeline` is the other kind: which value held each lane over time (which model
version was ``champion``, which ``challenger``), one ``<rect class="tenure">`` per tenure and
one ``<g class="move">`` marker per move, each with a hover title saying who moved it and why;
moves marked ``emphasis`` (rollbacks) are red diamonds, the others dark ticks.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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
ESTIMATE_DASH = "4 3"


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
    dashed: Sequence[str] = ()
    """Series drawn dashed whatever their colour: values estimated, not measured."""
    titles: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    """A hover title per series and label (``None``: none), on the point's dot."""


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


def _dot(x: float, y: float, colour: str, title: str | None) -> str:
    if not title:
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{_esc(title)}</title></circle>'


def _polyline(
    points: list[tuple[float, float]],
    colour: str,
    dash: str | None = None,
    dots: bool = True,
    titles: Sequence[str | None] = (),
) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    marks = (
        "".join(_dot(x, y, colour, titles[n] if n < len(titles) else None) for n, (x, y) in enumerate(points))
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
        if name in chart.dashed:
            dash = ESTIMATE_DASH
        points = [(x(i), y(v)) for i, v in enumerate(series) if v is not None]
        if not points:
            continue
        titled = chart.titles.get(name, ())
        titles = [titled[i] if i < len(titled) else None for i, v in enumerate(series) if v is not None]
        line = _polyline(points, colour, dash, titles=titles)
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


# -- timelines ----------------------------------------------------------------------------------
LANE_HEIGHT, LANE_GAP = 22, 8


@dataclass(frozen=True)
class Tenure:
    """What held a lane from ``start`` until ``end`` (``None``: still holds it)."""

    lane: str
    label: str
    start: datetime
    end: datetime | None
    title: str = ""


@dataclass(frozen=True)
class Move:
    """A change of a lane at ``at``: ``kind`` names it (its CSS class), ``title`` says who and why."""

    lane: str
    at: datetime
    kind: str
    title: str = ""
    emphasis: bool = False  # drawn apart (a rollback)


@dataclass(frozen=True)
class Timeline:
    """Lanes over time, top to bottom in ``lanes`` order, up to ``now``."""

    title: str
    lanes: Sequence[str]
    tenures: Sequence[Tenure]
    moves: Sequence[Move]
    now: datetime
    width: int = WIDTH


def _time_ticks(start: datetime, end: datetime, count: int = 4) -> list[tuple[datetime, str]]:
    """``count + 1`` evenly spaced times with labels: dates, or hours within three days."""
    span = end - start
    fmt = "%Y-%m-%d" if span.total_seconds() >= 3 * 86400 else "%m-%d %H:%M"
    return [(start + span * i / count, (start + span * i / count).strftime(fmt)) for i in range(count + 1)]


def render_timeline(timeline: Timeline) -> str:
    """The timeline as an ``<svg>`` element, or an empty string without a tenure."""
    if not timeline.tenures:
        return ""
    start = min(t.start for t in timeline.tenures)
    end = max([timeline.now, *(t.end or t.start for t in timeline.tenures), *(m.at for m in timeline.moves)])
    if end <= start:  # one move at the very moment of ``now``: show a day
        end = start + timedelta(days=1)
    width, lane_left = timeline.width, LEFT + 40
    plot_w = width - lane_left - RIGHT
    height = TOP + len(timeline.lanes) * (LANE_HEIGHT + LANE_GAP) + BOTTOM - 10

    def x(when: datetime) -> float:
        return lane_left + (when - start) / (end - start) * plot_w

    def lane_y(lane: str) -> float:
        return TOP + timeline.lanes.index(lane) * (LANE_HEIGHT + LANE_GAP)

    colours: dict[str, str] = {}
    for t in timeline.tenures:
        colours.setdefault(t.label, COLOURS[len(colours) % len(COLOURS)])
    axis_y = TOP + len(timeline.lanes) * (LANE_HEIGHT + LANE_GAP)
    parts = [
        f'<svg class="chart timeline" role="img" aria-label="{_esc(timeline.title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-size="10">',
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="600">{_esc(timeline.title)}</text>',
        *(
            f'<text class="lane" x="{lane_left - 4}" y="{lane_y(lane) + LANE_HEIGHT / 2 + 3:.1f}" '
            f'text-anchor="end">{_esc(lane)}</text>'
            for lane in timeline.lanes
        ),
        f'<line x1="{lane_left}" x2="{width - RIGHT}" y1="{axis_y}" y2="{axis_y}" stroke="#4a5568"/>',
        *(
            f'<line x1="{x(when):.1f}" x2="{x(when):.1f}" y1="{TOP}" y2="{axis_y}" stroke="#e2e8f0"/>'
            f'<text x="{x(when):.1f}" y="{axis_y + 14}" text-anchor="{"end" if when == end else "middle"}">'
            f"{_esc(label)}</text>"
            for when, label in _time_ticks(start, end)
        ),
        f'<text x="{lane_left + plot_w / 2:.0f}" y="{axis_y + 28}" text-anchor="middle">time (UTC)</text>',
    ]
    for t in timeline.tenures:
        if t.lane not in timeline.lanes:
            continue
        left, right = x(t.start), x(t.end or end)
        top = lane_y(t.lane)
        title = f"<title>{_esc(t.title)}</title>" if t.title else ""
        parts.append(
            f'<g class="tenure" data-lane="{_esc(t.lane)}" data-label="{_esc(t.label)}">'
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(right - left, 2):.1f}" height="{LANE_HEIGHT}" '
            f'fill="{colours[t.label]}" fill-opacity="0.75" stroke="#fff">{title}</rect>'
            + (
                f'<text x="{left + 3:.1f}" y="{top + LANE_HEIGHT / 2 + 3:.1f}" '
                f'style="fill: #fff">{_esc(t.label)}</text>'
                if right - left > 18
                else ""
            )
            + "</g>"
        )
    for m in timeline.moves:
        if m.lane not in timeline.lanes:
            continue
        cx, top = x(m.at), lane_y(m.lane)
        title = f"<title>{_esc(m.title)}</title>" if m.title else ""
        if m.emphasis:  # a red diamond straddling the lane
            cy, r = top + LANE_HEIGHT / 2, 7
            shape = (
                f'<polygon points="{cx:.1f},{cy - r:.1f} {cx + r:.1f},{cy:.1f} {cx:.1f},{cy + r:.1f} '
                f'{cx - r:.1f},{cy:.1f}" fill="{THRESHOLD_COLOUR}" stroke="#fff">{title}</polygon>'
            )
        else:
            shape = (
                f'<rect x="{cx - 1.5:.1f}" y="{top - 3:.1f}" width="3" height="{LANE_HEIGHT + 6}" '
                f'fill="#1a202c">{title}</rect>'
            )
        parts.append(
            f'<g class="move {_esc(m.kind)}" data-lane="{_esc(m.lane)}" '
            f'data-kind="{_esc(m.kind)}">{shape}</g>'
        )
    parts.append("</svg>")
    return "".join(parts)
