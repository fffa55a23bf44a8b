"""What would it cost to make a zero-copy view truly immutable? One sender's hand-off, three ways.

    python benchmarks/sealed_region.py [--rounds 15]

A local Worker's region is one memfd per direction, reused for every message: the sender
writes into pages that are already there. The receiver's views map it read-only, but the
sender's process still holds the memfd writable, so its own code can change what a view
shows (``docs/stages/05_extensions.md``, "The shared region"). The kernel can forbid that
only with ``F_SEAL_WRITE``, which is permanent and is refused while any writable mapping
exists: a region sealed once can never be written again, so each message would need a fresh
memfd (create, size, map, fill, unmap, seal, map read-only at the receiver). This script
times that against today's reuse, and against the copy ``recv()`` makes by default (which
also gives the receiver bytes no one else can change). Each figure: the median of the rounds.
"""

from __future__ import annotations

import argparse
import fcntl
import mmap
import os
import statistics
import time
from collections.abc import Callable

SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def fresh_sealed_memfd(data: bytes) -> None:
    """One message the immutable way: a new memfd, filled, unmapped, sealed, mapped read-only."""
    fd = os.memfd_create("sealed", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, len(data))
        with mmap.mmap(fd, len(data)) as writable:
            writable[:] = data
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)  # EBUSY while a writable mapping exists
        with mmap.mmap(fd, len(data), mmap.MAP_SHARED, mmap.PROT_READ) as view:
            view[0]  # the receiver's mapping (its pages are read when used)
    finally:
        os.close(fd)


def median_seconds(step: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_size(data: bytes, rounds: int) -> dict[str, float]:
    """Median seconds of each way of handing ``data`` over."""
    fd = os.memfd_create("reused", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, len(data))
        with mmap.mmap(fd, len(data)) as region:
            region[:] = data  # faulted in once, as a region in use is
            ways: dict[str, Callable[[], object]] = {
                "reuse the region (today)": lambda: region.__setitem__(slice(None), data),
                "fresh memfd, F_SEAL_WRITE": lambda: fresh_sealed_memfd(data),
                "receiver's copy (recv() default)": lambda: bytes(memoryview(region)),
            }
            return {name: median_seconds(step, rounds) for name, step in ways.items()}
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    print(f"{'size':>7}  {'way':<34} {'ms':>8} {'GB/s':>6} {'x reuse':>8}")
    for mib in (1, 4, 64):
        times = one_size(os.urandom(mib << 20), rounds)
        reuse = times["reuse the region (today)"]
        for name, seconds in times.items():
            rate = (mib << 20) / seconds / 1e9
            row = f"{seconds * 1e3:8.2f} {rate:6.2f} {seconds / reuse:8.1f}"
            print(f"{mib:>3} MiB  {name:<34} {row}")


if __name__ == "__main__":
    main()
