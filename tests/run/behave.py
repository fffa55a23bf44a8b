"""A rank for the tests of ``miniray run``: says it is ready, then does what it is told.

    python run/behave.py ACTION [RANK]   (ACTION by RANK, default 1; the others wait)

ACTION: ``ok`` (exit 0), ``raise``, ``kill9``, ``sigstop``, ``exit3``, ``daemon`` (start a
child that would sleep a minute, then exit 0), ``detached-daemon`` (the same, the child in a
session of its own), ``catch-sigint`` (every rank: on SIGINT print
it and exit 3), ``save-on-sigint`` (every rank: on SIGINT, rank 0 exits 3 at once, the others
take a second to "save a checkpoint", print it and exit 3), ``ignore-sigint`` (every rank:
ignore SIGINT), ``restarts`` (fail while
TORCHELASTIC_RESTART_COUNT < 2), ``flood`` (print 50 MB, then exit 0), ``raise-slowly``
(RANK raises, then takes 3 s to shut down, as a torch rank with gloo threads may; every
other rank exits 1 soon after the raise, as a rank whose collective failed does: so they
end first). Waiting ranks give up after 60 s (a test must never hang on them).
"""

import atexit
import os
import signal
import subprocess
import sys
import tempfile
import time

action = sys.argv[1]
target = int(sys.argv[2]) if len(sys.argv) > 2 else 1
rank = int(os.environ["RANK"])
restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def wait_forever(seconds=60.0):
    # One call, so that every waiting rank's stack dump shows the same line: a loop's
    # ranks could be caught on different lines of it, and their stacks would not group.
    time.sleep(seconds)


def raise_slowly():
    """Rank ``target`` raises, then lingers in its shutdown; the others end first."""
    flag = os.path.join(tempfile.gettempdir(), f"behave-{os.environ['TORCHELASTIC_RUN_ID']}")
    if rank == target:
        hook = sys.excepthook

        def tell_then_print(*exc_info):
            open(flag, "w").close()  # after run_boot has seen the exception
            hook(*exc_info)

        sys.excepthook = tell_then_print
        atexit.register(time.sleep, 3.0)
        raise RuntimeError(f"rank {rank} fails first")
    deadline = time.monotonic() + 60.0
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    print(f"rank {rank}: the collective failed", flush=True)
    if rank == 0:
        os.remove(flag)
    sys.exit(1)


def on_sigint(signum, frame):
    print(f"rank {rank} got SIGINT", flush=True)
    sys.exit(3)


def save_on_sigint(signum, frame):
    if rank != 0:
        time.sleep(1.0)
        print(f"rank {rank} saved", flush=True)
    sys.exit(3)


if action == "catch-sigint":
    signal.signal(signal.SIGINT, on_sigint)
elif action == "save-on-sigint":
    signal.signal(signal.SIGINT, save_on_sigint)
elif action == "ignore-sigint":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
print(f"ready r{rank} restart {restart}", flush=True)
if action in ("catch-sigint", "save-on-sigint", "ignore-sigint"):
    wait_forever()
elif action == "ok":
    pass
elif action in ("daemon", "detached-daemon"):
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=action == "detached-daemon",
    )
    print(f"daemon {child.pid}", flush=True)
elif action == "restarts":
    if rank == target and restart < 2:
        sys.exit(5)
    if rank != target:
        wait_forever(10.0 if restart < 2 else 0.0)
elif action == "raise-slowly":
    raise_slowly()
elif action == "flood":
    line = "x" * 999 + "\n"
    for _ in range(50_000):
        sys.stdout.write(line)
    sys.stdout.flush()
elif rank != target:
    wait_forever()
elif action == "raise":
    raise RuntimeError(f"rank {rank} fails on purpose")
elif action == "exit3":
    sys.exit(3)
elif action == "kill9":
    os.kill(os.getpid(), signal.SIGKILL)
elif action == "sigstop":
    os.kill(os.getpid(), signal.SIGSTOP)
    wait_forever()
