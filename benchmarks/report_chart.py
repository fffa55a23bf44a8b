"""The chart of ``docs/measured``: every ratio of the report, as one figure (matplotlib).

Each bar starts at the baseline (1) and ends at how many times as fast as its baseline the
row was, in the same run: right of the line is faster, left is slower (for a time, such
as a cold start, that is the baseline's time over the row's). The x axis is logarithmic,
so 2x faster and 2x slower are the same length. One bar per column of the tables
(unpinned, one core). Drawn from `report_render.chart_data` only, so the SVG is a function
of ``results.json`` (no date inside; ``fingerprint`` is written into its metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_layout import COLUMNS
from report_render import chart_data

COLORS = {"unpinned": "#3b75af", "one core": "#ef8636"}
BAR = 0.38  # height of one bar; a label's bars together take 2 * BAR


def draw_chart(results: dict[str, Any], path: Path, fingerprint: str) -> None:
    """Draw the chart of ``results`` as an SVG at ``path``."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("the chart needs matplotlib: pip install -e '.[bench]'") from None
    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter

    lines = _lines(chart_data(results))
    speeds = [s for _, entry in lines if entry for s in entry["speeds"].values()]
    low, high = min([*speeds, 1.0]), max([*speeds, 1.0])
    # a fixed salt for the SVG's ids, text as text: the same results give the same file
    with matplotlib.rc_context(
        {"svg.hashsalt": "miniray", "svg.fonttype": "none", "font.size": 7.5}
    ):
        figure, axes = pyplot.subplots(figsize=(8, 1.2 + 0.36 * len(lines)))
        for y, (_, entry) in enumerate(lines):
            if entry is None:
                continue
            for i, column in enumerate(c for c in COLUMNS if c in entry["speeds"]):
                speed = entry["speeds"][column]
                offset = (i - (len(entry["speeds"]) - 1) / 2) * BAR
                axes.barh(y + offset, speed - 1, left=1, height=BAR, color=COLORS[column])
                axes.text(
                    speed * (1.04 if speed >= 1 else 1 / 1.04),
                    y + offset,
                    f"{speed:.2f}" if speed < 10 else f"{speed:.0f}",
                    va="center",
                    ha="left" if speed >= 1 else "right",
                    fontsize=6.5,
                )
        axes.set_yticks(range(len(lines)), [label for label, _ in lines])
        for tick, (_, entry) in zip(axes.get_yticklabels(), lines, strict=True):
            if entry is None:  # a section's heading
                tick.set_fontweight("bold")
                tick.set_fontsize(9)
        axes.set_ylim(len(lines) - 0.5, -0.5)  # the first line at the top
        axes.set_xscale("log")
        axes.set_xlim(low / 2.5, high * 2.5)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        axes.axvline(1, color="black", linewidth=0.8)
        axes.grid(axis="x", which="major", linewidth=0.3)
        axes.set_xlabel(
            "times as fast as the row's baseline, same run (log scale; right of 1: faster)"
        )
        handles = [Rectangle((0, 0), 1, 1, color=COLORS[c]) for c in COLUMNS]
        axes.legend(handles, COLUMNS, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        title = "MiniRay next to its baselines and Ray: every ratio of the report"
        if results.get("quick"):
            title += "\n(QUICK RUN: placeholder numbers, not a measurement)"
        axes.set_title(title, fontsize=10)
        metadata = {"Date": None, "Description": fingerprint} if path.suffix == ".svg" else {}
        figure.savefig(path, bbox_inches="tight", metadata=metadata)  # format from the suffix
        pyplot.close(figure)


def _lines(data: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None]]:
    """The chart's lines from the top: each section's heading (no entry), then its ratios."""
    lines: list[tuple[str, dict[str, Any] | None]] = []
    section = None
    for entry in data:
        if not entry["speeds"]:
            continue
        if entry["section"] != section:
            section = entry["section"]
            lines.append((section, None))
        lines.append((entry["label"], entry))
    return lines
