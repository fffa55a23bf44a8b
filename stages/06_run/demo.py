"""Stage 6 demo: where a run's hosts come from.

python stages/06_run/demo.py
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this stage's miniray

from miniray import hosts_from_file


def main() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".hosts", delete=False) as f:
        f.write("# two nodes on this machine\nlocalhost slots=2\n127.0.0.1 slots=2\n")
    try:
        for node in hosts_from_file(f.name):
            print(f"  {node.host}: {node.num_workers} ranks")
    finally:
        os.unlink(f.name)
    print("hosts read, exit code 0")  # the run itself joins this demo with miniray run


if __name__ == "__main__":
    main()
