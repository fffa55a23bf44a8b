"""MiniRays of different versions, at the two ends of one connection.

Stages 2-4 speak protocol 3 (frames with a MAC); stage 5 speaks 4 (a codec proposal after
the handshake, buffers beside messages). A cluster whose nodes run another MiniRay than its
coordinator (an upgrade done on one machine, a stage's demo that imported the final stage)
used to wait out a timeout; now the client reads the version in the server's greeting and
names both. Versions that agree still work together across stages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testutil import WORKFNS, ServerProcess, secret_env
from tools.stages import list_stages

STAGES = {stage.number: stage for stage in list_stages()}

CLIENT = """
import sys
from miniray import ProtocolError, RemoteWorker
try:
    worker = RemoteWorker("127.0.0.1", int(sys.argv[1]), connect_timeout=10)
except ProtocolError as e:
    print("ProtocolError:", e)
else:
    worker.send({"hello": 1})
    print("echoed:", worker.recv(timeout=10))
    worker.close()
"""


def run_client(stage: int, port: int, env: dict[str, str]) -> str:
    """Connect with ``stage``'s RemoteWorker, in a fresh process; return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(port)],
        cwd=os.path.dirname(WORKFNS),  # not the repo root: its miniray/ would shadow the stage
        env={**env, "PYTHONPATH": str(STAGES[stage].path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        (3, 5, "ProtocolError: 127.0.0.1:{port} speaks MiniRay protocol 4 and we speak 3: "),
        (5, 3, "ProtocolError: 127.0.0.1:{port} speaks MiniRay protocol 3 and we speak 4: "),
        (3, 4, "echoed: {{'hello': 1}}"),
    ],
    ids=["old-client-new-server", "new-client-old-server", "same-protocol"],
)
def test_a_client_names_a_server_of_another_protocol_at_once(
    client: int, server: int, expected: str, tmp_path: Path
) -> None:
    if client not in STAGES or server not in STAGES:
        pytest.skip(f"needs stages {client} and {server}; this checkout has {sorted(STAGES)}")
    env = secret_env(str(tmp_path))
    served = ServerProcess("echo", env={**env, "PYTHONPATH": str(STAGES[server].path)})
    try:
        printed = run_client(client, served.port, env)
    finally:
        served.stop()
    assert printed.startswith(expected.format(port=served.port)), printed
