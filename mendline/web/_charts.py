"""The dashboard's charts, drawn on the server as inline SVG: a sparkline, a line chart of a
few series, stacked-free bar charts and uptime bars. No JavaScript, nothing to download, and
an htmx fragment carries its chart with it. Every label is escaped; each point has a
``<title>`` the browser shows on hover."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

__all__ = ["PALETTE", "bar_chart", "line_chart", "sparkline", "uptime_bars"]

#: Series colours, in order (readable on the light background, told apart in greyscale too).
PALETTE = ("#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c")


def sparkline(
    values: Sequence[float], *, width: int = 120, height: int = 24, label: str = ""
) -> Markup:
    """A small bar sparkline of ``values`` (oldest first), scaled to its own maximum."""
    n = len(values)
    if n == 0:
        return Markup("")
    top = max(values) or 1
    bar = width / n
    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(label)}">'
    ]
    for i, value in enumerate(values):
        h = 0 if value <= 0 else max(1.0, value / top * (height - 1))
        parts.append(
            f'<rect x="{i * bar:.2f}" y="{height - h:.2f}" width="{max(bar - 0.5, 0.5):.2f}"'
            f' height="{h:.2f}" fill="{PALETTE[0]}"><title>{_num(value)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    series: Mapping[str, Sequence[float | None]],
    labels: Sequence[str],
    *,
    width: int = 1000,
    height: int = 200,
    unit: str = "",
) -> Markup:
    """A line chart: one line per named series over the x ``labels`` (a None is a gap), with
    a legend, the y axis from 0 to the maximum, and the first and last x labels. It fills its
    box's width: drawn 1000 wide, its labels stay about their size on a page's width."""
    n = len(labels)
    if n == 0 or not series:
        return Markup('<p class="muted">No data yet.</p>')
    left, bottom, top_pad = 44, 18, 8
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    top = max((v for vs in series.values() for v in vs if v is not None), default=0.0) or 1.0
    step = plot_w / max(n - 1, 1)

    def y(value: float) -> float:
        return top_pad + plot_h - value / top * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%"'
        f' preserveAspectRatio="none" role="img">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 4}" y2="{top_pad + plot_h}"'
        ' stroke="#bbb"/>',
        f'<text x="{left - 4}" y="{top_pad + 8}" text-anchor="end" font-size="10"'
        f' fill="#666">{_num(top)}{escape(unit)}</text>',
        f'<text x="{left - 4}" y="{top_pad + plot_h}" text-anchor="end" font-size="10"'
        ' fill="#666">0</text>',
        f'<text x="{left}" y="{height - 4}" font-size="10" fill="#666">{escape(labels[0])}</text>',
        f'<text x="{width - 4}" y="{height - 4}" text-anchor="end" font-size="10"'
        f' fill="#666">{escape(labels[-1])}</text>',
    ]
    for index, (name, values) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        for run in _runs(values):
            points = " ".join(f"{left + i * step:.1f},{y(v):.1f}" for i, v in run)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
            for i, v in run:
                parts.append(
                    f'<circle cx="{left + i * step:.1f}" cy="{y(v):.1f}" r="2" fill="{colour}">'
                    f"<title>{escape(name)} {escape(labels[i])}: {_num(v)}{escape(unit)}"
                    "</title></circle>"
                )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="legend-item"><svg width="10" height="10"><rect width="10" height="10"'
        f' fill="{PALETTE[i % len(PALETTE)]}"/></svg> {escape(name)}</span>'
        for i, name in enumerate(series)
    )
    return Markup("".join(parts) + f'<div class="legend">{legend}</div>')


def bar_chart(
    values: Sequence[float],
    labels: Sequence[str],
    *,
    width: int = 640,
    height: int = 140,
    unit: str = "",
) -> Markup:
    """Vertical bars of ``values`` under their x ``labels`` (first and last printed)."""
    n = len(values)
    if n == 0:
        return Markup('<p class="muted">No data yet.</p>')
    bottom = 16
    plot_h = height - bottom
    top = max(values) or 1
    bar = width / n
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img">']
    for i, value in enumerate(values):
        h = 0 if value <= 0 else max(1.0, value / top * (plot_h - 2))
        parts.append(
            f'<rect x="{i * bar:.2f}" y="{plot_h - h:.2f}" width="{max(bar - 1, 0.5):.2f}"'
            f' height="{h:.2f}" fill="{PALETTE[0]}"><title>{escape(labels[i])}:'
            f" {_num(value)}{escape(unit)}</title></rect>"
        )
    parts.append(
        f'<text x="0" y="{height - 3}" font-size="10" fill="#666">{escape(labels[0])}</text>'
        f'<text x="{width}" y="{height - 3}" text-anchor="end" font-size="10"'
        f' fill="#666">{escape(labels[-1])}</text></svg>'
    )
    return Markup("".join(parts))


def uptime_bars(
    days: Sequence[tuple[str, float | None]], *, width: int = 540, height: int = 28
) -> Markup:
    """One bar per day, oldest first, given as (label, uptime 0..1 or None for no data):
    green when whole, amber below 99.9 %, red below 99 %, grey without data."""
    n = len(days)
    if n == 0:
        return Markup("")
    bar = width / n
    parts = [
        f'<svg class="uptime" viewBox="0 0 {width} {height}" width="100%" height="{height}"'
        ' role="img">'
    ]
    for i, (label, up) in enumerate(days):
        if up is None:
            colour, text = "#ced4da", "no data"
        else:
            colour = "#2b8a3e" if up >= 0.999 else "#e67700" if up >= 0.99 else "#c92a2a"
            text = f"{up * 100:.2f} %"
        parts.append(
            f'<rect x="{i * bar:.2f}" y="0" width="{max(bar - 1.5, 0.5):.2f}" height="{height}"'
            f' rx="1" fill="{colour}"><title>{escape(label)}: {text}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """The series split at its gaps, each run as (index, value) pairs."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, value))
    if current:
        runs.append(current)
    return runs


def _num(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
