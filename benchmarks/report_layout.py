"""What the page "MiniRay next to Ray, measured" shows: its sections, columns and goals.

``report_render.py`` makes the page's tables from ``results.json`` in this layout: a
section per table of a benchmark (a snippet section of ``docs/measured/tables.md``), a
column per variant of a part (unpinned, one core), and the goals of the issues, each a
ratio (or a difference) of two rows of one table, judged on the medians.
"""

from __future__ import annotations

from dataclasses import dataclass

# part name -> its variants: (part that holds the rows, column label)
VARIANTS = {
    "roundtrip": [("roundtrip", "unpinned"), ("roundtrip-one-core", "one core")],
    "extensions": [("extensions", "unpinned"), ("extensions-one-core", "one core")],
    "cold-start": [("cold-start", "unpinned")],
    "cluster-start": [("cluster-start", "unpinned")],
    "cluster-data": [("cluster-data", "unpinned")],
    "fsdp-step": [("fsdp-step", "unpinned")],
    "amplification": [("amplification", "unpinned")],
}
COLUMNS = ["unpinned", "one core"]


@dataclass(frozen=True)
class Section:
    """A section of the page: tables of one script (``tables``: the tables' names)."""

    key: str  # the snippet section's name
    title: str
    part: str  # a key of VARIANTS
    tables: tuple[str, ...]
    charted: bool = True


SECTIONS = [
    Section("small-messages", "Small messages", "roundtrip", ("round trips",)),
    Section("codec", "The codec, and small round trips", "extensions", ("codec",)),
    Section("bulk", "Bulk: buffers", "extensions", ("buffers",)),
    Section("cold-start", "Cold start", "cold-start", ("cold start",)),
    Section("calls", "Pipelined calls", "extensions", ("calls",)),
    Section("cluster-start", "Cluster start", "cluster-start", ("cluster start",)),
    Section("cluster-data", "Real-sized data on a cluster", "cluster-data", ("cluster data",)),
    Section("fsdp-step", "FSDP step vs torchrun", "fsdp-step", ("step", "launch to first step")),
    Section(
        "amplification", "Decoding cost", "amplification", ("peak memory", "decode CPU"), False
    ),
]


@dataclass(frozen=True)
class Goal:
    """A goal of the issues, as a ratio (or a difference) of two rows of one table."""

    text: str
    part: str
    row: str
    baseline: str
    at_least: float | None = None  # the ratio must be >= this ...
    at_most: float | None = None  # ... or <= this
    difference_at_most: float | None = None  # or the difference (median - baseline) <= this


MEMCPY, RAW_TCP, PIPE = (
    "memcpy into warm memory",
    "raw TCP loopback bulk",
    "multiprocessing.Pipe round trip",
)
RAY_ECHO, RAY_ASYNC = "Ray actor numpy echo", "Ray actor, async"
ONE_AT_A_TIME, REMOTE_ONE_AT_A_TIME = (
    "Worker call_remote, one at a time",
    "RemoteWorker call_remote, one at a time",
)
PIPELINED, REMOTE_PIPELINED = "Worker submit, pipelined", "RemoteWorker submit, pipelined"
X = "extensions"
GOALS = [
    Goal(
        "local hand-off (copy) ≥ 0.5x memcpy",
        X,
        "Worker hand-off, received as a copy",
        MEMCPY,
        0.5,
    ),
    Goal(
        "local hand-off (view) ≥ 0.5x memcpy",
        X,
        "Worker hand-off, received as a view",
        MEMCPY,
        0.5,
    ),
    Goal("numpy echo (copies) ≥ 1.5x Ray's", X, "Worker numpy echo, copies", RAY_ECHO, 1.5),
    Goal("numpy echo (views) ≥ 3x Ray's", X, "Worker numpy echo, views", RAY_ECHO, 3),
    Goal(
        "numpy echo (views) ≥ 0.5x numpy copyto",
        X,
        "Worker numpy echo, views",
        "numpy copyto into warm memory",
        0.5,
    ),
    Goal(
        "call_remote ≥ 0.8x send+recv, one at a time",
        X,
        ONE_AT_A_TIME,
        "Worker send+recv of the call messages",
        0.8,
    ),
    Goal(
        "RemoteWorker call_remote ≥ 0.8x send+recv",
        X,
        REMOTE_ONE_AT_A_TIME,
        "RemoteWorker send+recv of the call messages",
        0.8,
    ),
    Goal(
        "remote hand-off (copy) ≥ 0.8x raw TCP",
        X,
        "RemoteWorker hand-off, received as a copy",
        RAW_TCP,
        0.8,
    ),
    Goal(
        "remote hand-off (view) ≥ 0.8x raw TCP",
        X,
        "RemoteWorker hand-off, received as a view",
        RAW_TCP,
        0.8,
    ),
    Goal(
        "remote hand-off (view) ≥ 0.8x raw TCP + HMAC-SHA256 (ours: the MAC's ceiling)",
        X,
        "RemoteWorker hand-off, received as a view",
        RAW_TCP + " + HMAC-SHA256",
        0.8,
    ),
    Goal(
        "small round trips no slower than stage 4 (≥ 1.0x)",
        X,
        "this Worker round trip (subprocess)",
        "stage 4 Worker round trip (subprocess)",
        1.0,
    ),
    Goal("Worker round trip, marshal ≥ 1.0x Pipe", X, "Worker round trip, marshal", PIPE, 1.0),
    Goal("Worker round trip, JSON ≥ 0.9x Pipe", X, "Worker round trip, json", PIPE, 0.9),
    Goal(  # issue 18: against Pipe carrying the same codec's bytes
        "Worker round trip, marshal ≥ 1.0x Pipe + marshal",
        X,
        "Worker round trip, marshal",
        PIPE + ", marshal",
        1.0,
    ),
    Goal(
        "Worker round trip, JSON ≥ 0.9x Pipe + json",
        X,
        "Worker round trip, json",
        PIPE + ", json",
        0.9,
    ),
    Goal("Worker pipelined ≥ 3x one at a time", X, PIPELINED, ONE_AT_A_TIME, 3),
    Goal("RemoteWorker pipelined ≥ 3x one at a time", X, REMOTE_PIPELINED, REMOTE_ONE_AT_A_TIME, 3),
    Goal("Worker pipelined ≥ 10x Ray async", X, PIPELINED, RAY_ASYNC, 10),
    Goal("RemoteWorker pipelined ≥ 10x Ray async", X, REMOTE_PIPELINED, RAY_ASYNC, 10),
    Goal(
        "Cluster 2 hosts x 4 workers ≤ ssh + 0.3 s",
        "cluster-start",
        "Cluster 2 hosts x 4 workers over SSH",
        "ssh host true, 2 hosts in parallel",
        difference_at_most=0.3,
    ),
    Goal(
        "FSDP step ≤ 1.05x torchrun (overhead ≤ 5 %)",
        "fsdp-step",
        "MiniRay Cluster, 2 nodes",
        "torchrun (no coordinator)",
        at_most=1.05,
    ),
]
