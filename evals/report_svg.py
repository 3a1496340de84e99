"""Small charts as inline SVG for the evaluation report (evals/report_html.py): grouped bars,
lines and a histogram. Presentation attributes only (no `style` attribute, no script), every
label escaped. Rates are drawn on a fixed 0..1 axis so that charts of different runs compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

# Colour-blind-safe (Okabe-Ito), in the order series are given.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 46  # plot margins, px
Series = Sequence[tuple[str, Sequence[float | None]]]


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _open(width: int, height: int, label: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}">'
    )


def _axis(width: int, height: int, top_value: float, unit: str = "") -> list[str]:
    """The frame and five gridlines from 0 to `top_value`."""
    bottom, plot_h = height - BOTTOM, height - BOTTOM - TOP
    out = []
    for i in range(5):
        value = top_value * i / 4
        y = bottom - plot_h * i / 4
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{width - RIGHT}" y2="{y:.1f}" stroke="#e3e6ec"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{value:g}{unit}</text>'
        )
    out.append(
        f'<line x1="{LEFT}" y1="{bottom}" x2="{width - RIGHT}" y2="{bottom}" stroke="#888"/>'
    )
    return out


def _legend_layout(names: Sequence[str], width: int) -> list[tuple[float, int]]:
    """(x, row) of each name's legend entry, wrapping to a new row at `width`."""
    placed, row, x = [], 0, float(LEFT)
    for name in names:
        step = 22 + 6.5 * len(name)
        if x + step > width and x > LEFT:
            row, x = row + 1, float(LEFT)
        placed.append((x, row))
        x += step
    return placed


def _legend_height(names: Sequence[str], width: int) -> int:
    layout = _legend_layout(names, width)
    return 16 * (layout[-1][1] + 1) if layout else 0


def _legend(names: Sequence[str], width: int, y: float) -> list[str]:
    """A swatch and the name of each series, in its colour, from `y` down."""
    out = []
    for i, (name, (x, row)) in enumerate(zip(names, _legend_layout(names, width), strict=True)):
        base = y + 10 + 16 * row
        out.append(
            f'<rect x="{x:.1f}" y="{base - 9:.1f}" width="10" height="10" fill="{_colour(i)}"/>'
            f'<text x="{x + 14:.1f}" y="{base:.1f}">{escape(name)}</text>'
        )
    return out


def bars(groups: Sequence[str], series: Series, width: int = 340, height: int = 220) -> str:
    """Grouped bars on a 0..1 axis: a group per label, a bar per series (None: no bar)."""
    legend = _legend_height([n for n, _ in series], width)
    total = height + legend
    plot_w, plot_h = width - LEFT - RIGHT, height - BOTTOM - TOP
    out = [_open(width, total, "bar chart"), *_axis(width, height, 1.0)]
    slot = plot_w / max(len(groups), 1)
    bar_w = slot * 0.8 / max(len(series), 1)
    for g, group in enumerate(groups):
        x0 = LEFT + slot * g + slot * 0.1
        for s, (name, values) in enumerate(series):
            value = values[g]
            if value is None:
                continue
            h = plot_h * max(0.0, min(1.0, value))
            out.append(
                f'<rect x="{x0 + bar_w * s:.1f}" y="{height - BOTTOM - h:.1f}" '
                f'width="{bar_w * 0.92:.1f}" height="{h:.1f}" fill="{_colour(s)}">'
                f"<title>{escape(name)} {escape(group)}: {value:g}</title></rect>"
            )
        label = group.replace("_", " ")
        out.append(
            f'<text x="{LEFT + slot * (g + 0.5):.1f}" y="{height - BOTTOM + 14}" '
            f'text-anchor="end" transform="rotate(-25 {LEFT + slot * (g + 0.5):.1f} '
            f'{height - BOTTOM + 14})">{escape(label)}</text>'
        )
    out += _legend([n for n, _ in series], width, height)
    return "".join([*out, "</svg>"])


def lines(labels: Sequence[str], series: Series, width: int = 520, height: int = 240) -> str:
    """A line per series over the labels, on a 0..1 axis; a point for each value."""
    legend = _legend_height([n for n, _ in series], width)
    plot_w, plot_h = width - LEFT - RIGHT, height - BOTTOM - TOP
    out = [_open(width, height + legend, "line chart"), *_axis(width, height, 1.0)]
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return LEFT + (step * i if len(labels) > 1 else plot_w / 2)

    for s, (name, values) in enumerate(series):
        points = [
            (x(i), height - BOTTOM - plot_h * max(0.0, min(1.0, v)), v)
            for i, v in enumerate(values)
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{_colour(s)}" stroke-width="2"/>'
            )
        out += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{_colour(s)}">'
            f"<title>{escape(name)}: {v:g}</title></circle>"
            for px, py, v in points
        ]
    for i, label in enumerate(labels):
        out.append(
            f'<text x="{x(i):.1f}" y="{height - BOTTOM + 14}" '
            f'text-anchor="{_anchor(i, len(labels))}">'
            f"{escape(_short(label))}<title>{escape(label)}</title></text>"
        )
    out += _legend([n for n, _ in series], width, height)
    return "".join([*out, "</svg>"])


def _anchor(i: int, n: int) -> str:
    """Labels at the ends of an axis are drawn inwards, so that none is cut off."""
    if n > 1 and i == 0:
        return "start"
    return "end" if n > 1 and i == n - 1 else "middle"


def _short(label: str, at_most: int = 22) -> str:
    return label if len(label) <= at_most else "..." + label[-(at_most - 3) :]


def histogram(
    values: Sequence[float],
    marks: Sequence[tuple[str, float]] = (),
    bins: int = 12,
    width: int = 340,
    height: int = 220,
) -> str:
    """Counts of `values` in `bins` equal bins from 0 to the largest; `marks`: labelled
    vertical lines (the percentiles)."""
    plot_w, plot_h = width - LEFT - RIGHT, height - BOTTOM - TOP
    top = max(values, default=0.0) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int(v / top * bins), bins - 1)] += 1
    most = max(counts) or 1
    out = [_open(width, height, "histogram"), *_axis(width, height, float(most))]
    bar_w = plot_w / bins
    for i, count in enumerate(counts):
        h = plot_h * count / most
        low, high = top * i / bins, top * (i + 1) / bins
        out.append(
            f'<rect x="{LEFT + bar_w * i:.1f}" y="{height - BOTTOM - h:.1f}" '
            f'width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
            f"<title>{low:.0f}-{high:.0f} ms: {count}</title></rect>"
        )
    for n, i in enumerate((0, bins // 2, bins)):
        out.append(
            f'<text x="{LEFT + bar_w * i:.1f}" y="{height - BOTTOM + 14}" '
            f'text-anchor="{_anchor(n, 3)}">'
            f"{top * i / bins:.0f}</text>"
        )
    for m, (name, value) in enumerate(marks):
        mx = LEFT + plot_w * min(value / top, 1.0)
        out.append(
            f'<line x1="{mx:.1f}" y1="{TOP}" x2="{mx:.1f}" y2="{height - BOTTOM}" '
            f'stroke="{PALETTE[5]}" stroke-dasharray="4 3"/>'
            + (
                f'<text x="{mx - 3:.1f}" y="{TOP + 10 + 12 * m}" text-anchor="end">'
                if mx > LEFT + plot_w / 2
                else f'<text x="{mx + 3:.1f}" y="{TOP + 10 + 12 * m}">'
            )
            + f"{escape(name)} {value:g}</text>"
        )
    out.append(f'<text x="{LEFT}" y="{height - 8}">ms; {len(values)} questions</text>')
    return "".join([*out, "</svg>"])
