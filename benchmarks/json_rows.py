"""The rows of a benchmark's table, as JSON: what each script's ``--json PATH`` writes.

A script prints its table for people; with ``--json PATH`` it also writes the same rows
for ``benchmarks/report.py``, which gathers them into ``docs/measured/results.json``::

    {"script": "roundtrip.py", "argv": [...], "notes": {"placement": "unpinned"},
     "rows": [{"table": "round trips", "name": "miniray.Worker", "median": 12000.0,
               "low": 11000.0, "high": 13000.0, "samples": 5, "unit": "round trips/s",
               "better": "higher",
               "ratios": [{"baseline": "multiprocessing.Pipe (fork, pickle)", "ratio": 0.8}]}]}

``median``, ``low`` and ``high`` are the median and the extremes of the timed runs (the
spread); ``ratios`` compare this row with each named row of the same table, measured in
the same run (``better`` says whether a ratio above 1 is good). Where the script measured
both rows in the same interleaved rounds (run *i* of each row in round *i*), a ratio is the
median of the per-round ratios, since a slow moment of the machine hits both runs of a
round alike, and ``low`` and ``high`` are their first and third quartiles: the middle half
of the rounds fell between them, so a skeptic sees how firm the median is. Otherwise it is
``median / baseline median``, without quartiles. A ratio may carry a ``difference``
(``median - baseline median``) where the script prints one.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Ratio:
    """This row's median over a baseline's median, both from the same run."""

    baseline: str
    ratio: float
    difference: float | None = None  # median - baseline median, where the table prints it
    low: float | None = None  # first quartile of the per-round ratios, where rows took turns
    high: float | None = None  # third quartile


@dataclass
class Result:
    """One row of a table: the median of its timed runs, their spread, its ratios."""

    table: str
    name: str
    median: float
    low: float
    high: float
    samples: int
    unit: str
    better: str  # "higher" (a rate) or "lower" (a time)
    ratios: list[Ratio] = field(default_factory=list)


def results_from_samples(
    table: str,
    samples: Mapping[str, Sequence[float]],
    *,
    unit: str,
    better: str,
    baselines: Mapping[str, Sequence[str]] | None = None,
    differences: bool = False,
    paired: Collection[str] = (),
) -> list[Result]:
    """A `Result` per row of ``samples`` (row name -> timed values), in that order.

    ``baselines`` maps a row to the rows it is compared with; a baseline that was not
    measured (a Ray row without Ray) is left out, as the printed tables leave it out.
    ``paired`` names the rows that took turns in the same rounds: a ratio between two of
    them is the median of its per-round ratios, with their quartiles (both the one ratio,
    if there was one round).
    """
    medians = {name: statistics.median(values) for name, values in samples.items()}
    results = []
    for name, values in samples.items():
        ratios = []
        for base in (baselines or {}).get(name, []):
            if base not in medians:
                continue
            ratio = Ratio(base, medians[name] / medians[base])
            if differences:
                ratio.difference = medians[name] - medians[base]
            if name in paired and base in paired:
                per_round = [a / b for a, b in zip(values, samples[base], strict=True)]
                ratio.ratio = statistics.median(per_round)
                if len(per_round) > 1:
                    ratio.low, _, ratio.high = statistics.quantiles(per_round, n=4)
                else:
                    ratio.low = ratio.high = per_round[0]
            ratios.append(ratio)
        low, high, count = min(values), max(values), len(values)
        results.append(Result(table, name, medians[name], low, high, count, unit, better, ratios))
    return results


def write_json(
    path: str | Path, results: Sequence[Result], notes: Mapping[str, object] | None = None
) -> None:
    """Write ``results`` (and ``notes``: what the run was, in words) to ``path``."""
    document = {
        "script": Path(sys.argv[0]).name,
        "argv": sys.argv[1:],
        "notes": dict(notes or {}),
        "rows": [asdict(result) for result in results],
    }
    Path(path).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
