"""Charts drawn on the server as SVG: no script, nothing fetched, printable, and readable with styles off.

Each chart carries its title for screen readers (`role="img"`, `<title>`); the page shows the same figures in a
table beside it, so nothing is said by the chart or by colour alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 16, 40


def trend(title: str, labels: Sequence[str], *series: tuple[str, Sequence[float | None]]) -> Markup:
    """A line chart of scores (0-100 scale, the axis from just under the lowest value) over `labels`; each series
    is (name, values), a gap where a value is None."""
    values = [v for _, points in series for v in points if v is not None]
    low = max(0.0, (min(values) // 10) * 10 - 10) if values else 0.0
    high = 100.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels) - 1)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low or 1))

    parts = [_open(title)]
    for tick in range(int(low), 101, 10):
        at = y(tick)
        parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at:.1f}" y2="{at:.1f}" '
                     f'stroke-opacity="0.3"/><text x="{LEFT - 6}" y="{at + 4:.1f}" text-anchor="end">{tick}</text>')
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            anchor = "end" if i == len(labels) - 1 and len(labels) > 1 else "middle"  # the last label stays inside
            parts.append(f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}">'
                         f'{escape(label)}</text>')
    for index, (name, points) in enumerate(series):
        runs: list[list[str]] = [[]]
        for i, value in enumerate(points):
            if value is None:
                runs.append([])
                continue
            runs[-1].append(f"{LEFT + i * step:.1f},{y(value):.1f}")
            parts.append(f'<circle cx="{LEFT + i * step:.1f}" cy="{y(value):.1f}" r="3" '
                         f'class="point"><title>{escape(name)} {escape(labels[i])}: {value:.2f}</title></circle>')
        kind = "line second" if index else "line"
        parts.extend(f'<polyline class="{kind}" points="{" ".join(run)}"/>' for run in runs if len(run) > 1)
        parts.append(f'<text x="{LEFT + 8 + index * 160}" y="{HEIGHT - 6}">{"—" if index == 0 else "- -"} '
                     f'{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bars(title: str, items: Sequence[tuple[str, float]], *, flagged: frozenset[str] = frozenset()) -> Markup:
    """Horizontal bars of scores (0-100), one a row; a flagged row (不合格, 预警) is drawn in the warning colour
    and its label marked with ▲."""
    row = 22
    height = TOP + row * len(items) + 8
    label_w = 150
    plot_w = WIDTH - label_w - RIGHT - 40
    parts = [_open(title, height)]
    for i, (label, value) in enumerate(items):
        top = TOP + i * row
        mark = "▲ " if label in flagged else ""
        kind = "bar low" if label in flagged else "bar"
        width = plot_w * max(0.0, min(value, 100.0)) / 100
        parts.append(
            f'<text x="{label_w - 6}" y="{top + 15}" text-anchor="end">{escape(mark + label[:14])}</text>'
            f'<rect class="{kind}" x="{label_w}" y="{top + 3}" width="{width:.1f}" '
            f'height="{row - 8}"><title>{escape(label)}: {value:.2f}</title></rect>'
            f'<text x="{label_w + width + 4:.1f}" y="{top + 15}">{value:.2f}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>')
