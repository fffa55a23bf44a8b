# @6+
"""``python -m miniray run ...`` (and the ``miniray`` console script): MiniRay's commands.

miniray run --hosts h1,h2 --nproc-per-node 4 -- python train.py --lr 3e-4
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {"run": "start a command on many hosts, one rank per process (see miniray run -h)"}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command: ``miniray run ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        listed = "\n".join(f"  {name:<6}{what}" for name, what in COMMANDS.items())
        print(f"usage: miniray COMMAND ...\n\ncommands:\n{listed}", file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    from .run import main as run_main  # what a command needs, imported when it runs

    return run_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
