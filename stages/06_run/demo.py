"""Stage 6 demo: ``miniray run`` starts a script on 2 nodes x 2 ranks, then a failing one.

python stages/06_run/demo.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = """\
import os, sys
rank = int(os.environ["RANK"])
print(f"rank {rank} of {os.environ['WORLD_SIZE']} (local {os.environ['LOCAL_RANK']}), "
      f"rendezvous {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}")
if rank == 3 and sys.argv[1:] == ["--fail"]:
    raise SystemExit(7)
"""


def miniray_run(*args: str, cwd: str) -> int:
    """``python -m miniray run ARGS`` with this stage's miniray; its exit status."""
    env = {**os.environ, "PYTHONPATH": HERE}
    command = [sys.executable, "-m", "miniray", "run", *args]
    print("$ miniray run " + " ".join(args), flush=True)
    return subprocess.run(command, cwd=cwd, env=env, timeout=60).returncode


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "hello.py"), "w") as f:
            f.write(SCRIPT)
        hosts = ["--hosts", "localhost,127.0.0.1", "--nproc-per-node", "2"]
        code = miniray_run(*hosts, "--", "python", "hello.py", cwd=folder)
        print(f"exit code {code}", flush=True)
        code = miniray_run(*hosts, "--", "python", "hello.py", "--fail", cwd=folder)
        print(f"exit code {code} (rank 3's)", flush=True)


if __name__ == "__main__":
    main()
