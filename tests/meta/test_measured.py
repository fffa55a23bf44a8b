"""The page "MiniRay next to Ray, measured" is made from its results, with nothing left out.

``docs/measured/results.json`` is what ``benchmarks/report.py`` measured; ``tables.md`` and
``ratios.svg`` beside it are generated from it. These tests render again from the committed
results (no benchmark runs, no matplotlib: the SVG carries a fingerprint of the data it
was drawn from) and check that the generated files did not drift, that every comparison
the issues ask for was measured, and that the page includes every generated section.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ROOT / "docs" / "measured"
RERENDER = "stale: run `python benchmarks/report.py --render` and commit docs/measured"

# The rows the issues name (small messages, bulk, cold start, pipelined calls, cluster
# start, the FSDP step vs torchrun), each with the baseline it must be compared with.
WANTED = {
    "roundtrip": {
        "miniray.Worker": "multiprocessing.Pipe (fork, pickle)",
        "miniray.RemoteWorker": "raw TCP loopback, length-prefixed bytes",
    },
    "extensions": {
        "Worker round trip, marshal": "multiprocessing.Pipe round trip",
        "Worker hand-off, received as a copy": "memcpy into warm memory",
        "Worker numpy echo, views": "Worker numpy echo, copies",
        "RemoteWorker hand-off, received as a copy": "raw TCP loopback bulk",
        "Worker submit, pipelined": "Worker call_remote, one at a time",
        "RemoteWorker submit, pipelined": "RemoteWorker call_remote, one at a time",
    },
    "cold-start": {
        "miniray.Worker": "multiprocessing.Process + Pipe (fork)",
        "miniray.RemoteWorker, server already running": "miniray.Worker",
        "miniray.RemoteWorker, server started too": 'python -c "import miniray"',
    },
    "cluster-start": {
        "Cluster 2 hosts x 4 workers over SSH": "ssh host true, 2 hosts in parallel",
        "Cluster localhost x 8 workers": 'python -c "import miniray"',
    },
    "fsdp-step": {"MiniRay Cluster, 2 nodes": "torchrun (no coordinator)"},
}


@pytest.fixture(scope="module")
def render() -> Iterator[ModuleType]:
    """``benchmarks/report_render.py`` (pure functions) and, through it, the page's layout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        yield importlib.import_module("report_render")


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MEASURED / "results.json").read_text(encoding="utf-8"))
    return loaded


def test_the_generated_tables_match_the_results(
    render: ModuleType, results: dict[str, Any]
) -> None:
    committed = (MEASURED / "tables.md").read_text(encoding="utf-8")
    assert committed == render.render_tables(results), RERENDER


def test_the_chart_was_drawn_from_the_results(render: ModuleType, results: dict[str, Any]) -> None:
    svg = (MEASURED / "ratios.svg").read_text(encoding="utf-8")
    assert f"<dc:description>{render.chart_fingerprint(results)}</dc:description>" in svg, RERENDER


def test_a_changed_number_or_a_lost_row_is_drift(
    render: ModuleType, results: dict[str, Any]
) -> None:
    """The two checks above can fail: one median doubled, one row dropped."""
    committed_tables = (MEASURED / "tables.md").read_text(encoding="utf-8")
    svg = (MEASURED / "ratios.svg").read_text(encoding="utf-8")
    for change in (_double_a_median, _drop_a_row):
        changed = copy.deepcopy(results)
        change(changed["parts"]["roundtrip"]["rows"])
        assert render.render_tables(changed) != committed_tables, change.__name__
        assert render.chart_fingerprint(changed) not in svg, change.__name__


def _double_a_median(rows: list[dict[str, Any]]) -> None:
    worker = next(row for row in rows if row["name"] == "miniray.Worker")
    worker["ratios"][0]["ratio"] *= 2
    worker["median"] *= 2


def _drop_a_row(rows: list[dict[str, Any]]) -> None:
    rows.pop()


def test_every_row_the_issue_names_is_measured_against_its_baseline(
    render: ModuleType, results: dict[str, Any]
) -> None:
    wanted = {part: list(rows) for part, rows in WANTED.items()}
    assert render.missing_rows(results, wanted) == []
    for part, rows in WANTED.items():
        for variant, _ in render.VARIANTS[part]:
            measured = {row["name"]: row for row in results["parts"][variant]["rows"]}
            for name, baseline in rows.items():
                ratios = {r["baseline"]: r["ratio"] for r in measured[name]["ratios"]}
                assert ratios.get(baseline, 0) > 0, (variant, name, baseline)


def test_a_missing_row_is_reported(render: ModuleType, results: dict[str, Any]) -> None:
    assert render.missing_rows(results, {"cold-start": ["a row nobody measured"]}) == [
        "cold-start: a row nobody measured"
    ]


def test_the_run_is_described(results: dict[str, Any]) -> None:
    """The date, the command, the versions and the CPU; the load before each part."""
    assert results["date"] and results["command"].startswith("python benchmarks/report.py")
    assert {"python", "torch", "ray", "cpu_model", "cpu_count"} <= set(results["machine"])
    for name, part in results["parts"].items():
        assert isinstance(part["load_before"], float), name
        assert part["command"] and part["date"] and not part.get("error"), name
    tables = (MEASURED / "tables.md").read_text(encoding="utf-8")
    quick_warning = "Placeholder numbers from a quick run" in tables
    assert quick_warning == bool(results["quick"])


def test_the_page_includes_every_generated_section_and_the_chart(render: ModuleType) -> None:
    page = (ROOT / "docs" / "measured.md").read_text(encoding="utf-8")
    keys = ["run", "goals", *(section.key for section in render.SECTIONS)]
    for key in keys:
        assert f'--8<-- "docs/measured/tables.md:{key}"' in page, key
    assert "(measured/ratios.svg)" in page
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    assert nav.index("measured.md") > nav.index("stages/06_run.md")


def test_only_reruns_some_parts_and_keeps_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # report.py imports its siblings
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, report)
    spec.loader.exec_module(report)
    previous = {"fsdp-step": {"old": 1}, "cold-start": {"old": 2}, "gone": {"old": 3}}
    merged = report.merge(previous, {"cold-start": {"new": 4}, "roundtrip": {"new": 5}})
    assert merged == {  # in the order of PARTS; a part no longer known is dropped
        "roundtrip": {"new": 5},
        "cold-start": {"new": 4},
        "fsdp-step": {"old": 1},
    }
    assert list(merged) == [name for name in report.PARTS if name in merged]


def test_an_unknown_part_is_refused_with_the_list_of_parts() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/report.py", "--only", "cold-start,warp-drive"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown parts ['warp-drive']" in done.stderr and "fsdp-step" in done.stderr


def test_a_ratio_of_rows_that_took_turns_carries_its_per_round_range() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        json_rows = importlib.import_module("json_rows")
    samples = {"base": [10.0, 20.0, 40.0], "ours": [5.0, 30.0, 40.0], "ray": [1.0, 2.0, 4.0]}
    rows = json_rows.results_from_samples(
        "t",
        samples,
        unit="x/s",
        better="higher",
        baselines={"ours": ["base", "ray"]},
        paired={"base", "ours"},  # ray's rows ran in rounds of their own
    )
    against_base, against_ray = rows[1].ratios
    # per round 0.5, 1.5 and 1.0: their median, not the medians' ratio (30 / 20)
    assert (against_base.ratio, against_base.low, against_base.high) == (1.0, 0.5, 1.5)
    assert (against_ray.ratio, against_ray.low, against_ray.high) == (15.0, None, None)
