"""``miniray run`` against torchrun on this machine: launch to first step, and step time.

    python benchmarks/run_launch.py [--runs 3] [--ranks 2] [--steps 30]

Both run the same unchanged script (``examples/torchrun_train.py --times``) with the same
number of gloo ranks on localhost: ``torchrun --nproc-per-node N`` and ``miniray run
--hosts localhost --nproc-per-node N``. The script prints when its first step ended
(wall clock) and its median step time; launch to first step is measured from just before
the launcher starts. Goal: both <= 1.0x torchrun. Prints min/median/max over ``--runs``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "torchrun_train.py"


def one_run(launcher: list[str], steps: int) -> tuple[float, float]:
    """(seconds from launch to the end of step 0, median step seconds)."""
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    started = time.time()
    done = subprocess.run(
        [*launcher, str(SCRIPT), "--times", "--steps", str(steps)],
        cwd=ROOT / "examples",  # not the root: its miniray/ is the library, and so is PYTHONPATH's
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        sys.exit(f"{launcher[:4]} failed:\n{done.stdout}\n{done.stderr}")
    first = float(re.search(r"first step done at (\S+)", done.stdout)[1])  # type: ignore[index]
    step = float(re.search(r"median step (\S+) s", done.stdout)[1])  # type: ignore[index]
    return first - started, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    launchers = {
        "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.ranks)],  # noqa: E501
        "miniray run": [sys.executable, "-m", "miniray", "run", "--hosts", "localhost", "--nproc-per-node", str(args.ranks), "--", "python"],  # noqa: E501
    }  # fmt: skip
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in launchers}
    for _ in range(args.runs):  # interleaved: both see the same machine load
        for name, launcher in launchers.items():
            samples[name].append(one_run(launcher, args.steps))
    print(f"{args.ranks} gloo ranks on localhost, {args.steps} steps, {args.runs} runs each")
    print(f"{'what':<42}{'min s':>9}{'median s':>10}{'max s':>9}  vs torchrun")
    for column, label in [(0, "launch to first step"), (1, "step time (median per run)")]:
        base = statistics.median(s[column] for s in samples["torchrun"])
        for name, rows in samples.items():
            values = [row[column] for row in rows]
            median = statistics.median(values)
            ratio = "" if name == "torchrun" else f"{median / base:.2f}x"
            print(
                f"{name + ', ' + label:<42}{min(values):>9.4f}{median:>10.4f}"
                f"{max(values):>9.4f}  {ratio}"
            )


if __name__ == "__main__":
    main()
