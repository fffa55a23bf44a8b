"""Stage 4 with real torch.distributed (gloo, CPU): FSDP2 driven through a Cluster trains
exactly like one process on the whole batch; checkpoints resume; a rank killed mid-step
is reported by rank and nothing is left; the preflight fails within its timeout; the
example runs end to end. Each test checks that no process is left."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from distributed_support import EXAMPLE, example, needs_torch
from sshhosts import TESTS_DIR, SshHosts, wait_for_no_processes

pytestmark = [pytest.mark.needs("distributed"), needs_torch, pytest.mark.heavy]
__all__ = ["example"]  # a fixture

# SGD, not the example's AdamW: Adam divides each step by sqrt(v), so where the true
# gradient is zero (the attention keys' degenerate directions) float rounding noise
# becomes a full step: after 10 AdamW steps the parameters differ by ~4e-5 (relative)
# while the losses still agree to ~2e-7. With SGD both agree to ~1e-6.
OPTIMIZER, LR, PER_RANK, STEPS, SAVE_AT = "sgd", 0.5, 4, 4, 2
TOLERANCE = 1e-5  # relative, float32
TIMEOUT = 60.0  # seconds per phase; a loaded 2-core CI machine imports torch slowly
# The failing preflights wait this long: the messages they check come from the configs,
# so they hold even if a slow machine has not started every rank by then.
PREFLIGHT_TIMEOUT = 2.0
WORK_FN = f"{EXAMPLE}:training_work_fn"


def start_training(cluster: Any, checkpoint_dir: Path | None) -> list[Any]:
    """Start the example's ranks on ``cluster``: configs, preflight, options, ready."""
    from miniray import preflight
    from miniray.training import wait_ready

    workers = cluster.start(work_fn=WORK_FN)
    assert preflight(cluster, cluster.distributed_configs(), timeout=TIMEOUT) == "gloo"
    for worker in workers:
        options = {"optimizer": OPTIMIZER, "lr": LR, "seed": 0}
        worker.send({**options, "checkpoint_dir": str(checkpoint_dir or "")})
    wait_ready(workers, timeout=TIMEOUT)
    return list(workers)


def train(example: ModuleType, workers: list[Any], steps: range, save_at: int = -1) -> list[float]:
    from miniray import train_step
    from miniray.training import command

    text, losses = example.read_text(), []
    for step in steps:
        shards = example.shards_for_step(text, step, len(workers), PER_RANK)
        losses.append(train_step(workers, shards, timeout=TIMEOUT)["loss"])
        if step + 1 == save_at:
            command(workers, {"cmd": "save"}, timeout=TIMEOUT)
    return losses


def final_parameters(workers: list[Any]) -> dict[str, list[float]]:
    from miniray.training import command

    replies = command(workers, {"cmd": "parameters"}, timeout=TIMEOUT)
    assert all(reply == replies[0] for reply in replies)  # every rank gathers the same
    command(workers, {"cmd": "shutdown"}, timeout=TIMEOUT)
    return replies[0]  # type: ignore[no-any-return]


def one_process(example: ModuleType, steps: int, world_size: int) -> tuple[list[float], Any]:
    """The baseline: the same model and data, no torch.distributed, the whole batch."""
    import torch
    import torch.nn.functional as F

    model = example.build_model(seed=0)
    optimizer = example.make_optimizer(OPTIMIZER, LR)(model.parameters())
    text, losses = example.read_text(), []
    for step in range(steps):
        shards = example.shards_for_step(text, step, world_size, PER_RANK)
        inputs = torch.tensor([row for shard in shards for row in shard["inputs"]])
        targets = torch.tensor([row for shard in shards for row in shard["targets"]])
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses, {name: p.detach().reshape(-1).tolist() for name, p in model.named_parameters()}


def relative_error(ours: dict[str, list[float]], baseline: dict[str, list[float]]) -> float:
    """The largest ``max|ours - baseline| / max|baseline|`` over the parameters."""
    assert ours.keys() == baseline.keys()
    return max(
        max(abs(a - b) for a, b in zip(ours[k], baseline[k], strict=True))
        / max(abs(b) for b in baseline[k])
        for k in baseline
    )


def loss_error(ours: list[float], baseline: list[float]) -> float:
    return max(abs(a - b) / abs(b) for a, b in zip(ours, baseline, strict=True))


@pytest.fixture(scope="module")
def first_run(
    example: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[float], dict[str, list[float]], Path]:
    """STEPS steps on 2 localhost nodes x 2 ranks, saving a checkpoint after SAVE_AT steps."""
    from miniray import Cluster, NodeConfig

    checkpoints = tmp_path_factory.mktemp("checkpoints")
    tag = os.urandom(8).hex()
    env = {"MINIRAY_TEST_TAG": tag}
    # Nodes start in tests/, not the repository root: there `python -m` would load the
    # top-level miniray (the final stage) instead of the stage under test.
    nodes = [
        NodeConfig(host, num_workers=2, env=env, cwd=str(TESTS_DIR))
        for host in ["localhost", "127.0.0.1"]
    ]
    with Cluster(nodes, log=lambda line: None) as cluster:
        workers = start_training(cluster, checkpoints)
        losses = train(example, workers, range(STEPS), save_at=SAVE_AT)
        parameters = final_parameters(workers)
    assert wait_for_no_processes(tag, 5.0) == []
    return losses, parameters, checkpoints


def test_fsdp_through_a_cluster_matches_one_process_on_the_whole_batch(
    example: ModuleType, first_run: tuple[list[float], dict[str, list[float]], Path]
) -> None:
    losses, parameters, _ = first_run
    baseline_losses, baseline_parameters = one_process(example, STEPS, world_size=4)
    assert loss_error(losses, baseline_losses) <= TOLERANCE
    assert relative_error(parameters, baseline_parameters) <= TOLERANCE
    assert losses[-1] < losses[0]  # and it learns


def test_a_new_cluster_resumes_from_the_checkpoint_as_if_never_stopped(
    example: ModuleType,
    first_run: tuple[list[float], dict[str, list[float]], Path],
    node: Any,
    tag: str,
) -> None:
    from miniray import Cluster
    from miniray.training import command

    losses, parameters, checkpoints = first_run
    assert (checkpoints / f"step_{SAVE_AT}").is_dir()
    # One node of 4 this time (one torch import, not two): the same 4 ranks, the same shards.
    with Cluster([node("localhost", 4)], log=lambda line: None) as cluster:
        workers = start_training(cluster, checkpoints)
        command(workers, {"cmd": "load", "step": SAVE_AT}, timeout=TIMEOUT)
        resumed = train(example, workers, range(SAVE_AT, STEPS))
        resumed_parameters = final_parameters(workers)
    assert loss_error(resumed, losses[SAVE_AT:]) <= 1e-6
    assert relative_error(resumed_parameters, parameters) <= 1e-6
    assert wait_for_no_processes(tag, 5.0) == []


def test_fsdp_across_namespace_hosts_over_ssh_matches_one_process(
    example: ModuleType,
    use_ssh_config: SshHosts,
    ns_hosts: list[tuple[str, str]],
    node: Any,
    tag: str,
) -> None:
    from miniray import Cluster

    steps = 2
    with Cluster([node("h1", 2), node("h2", 2)], log=lambda line: None) as cluster:
        workers = start_training(cluster, None)
        configs = cluster.distributed_configs()
        assert {(c.master_addr, c.socket_ifname) for c in configs} == {(ns_hosts[0][1], "eth0")}
        losses = train(example, workers, range(steps))
        parameters = final_parameters(workers)
    baseline_losses, baseline_parameters = one_process(example, steps, world_size=4)
    assert loss_error(losses, baseline_losses) <= TOLERANCE
    assert relative_error(parameters, baseline_parameters) <= TOLERANCE
    assert wait_for_no_processes(tag, 5.0) == []


def test_a_rank_killed_mid_step_is_reported_and_the_others_are_torn_down(
    example: ModuleType, node: Any, tag: str
) -> None:
    from miniray import Cluster, WorkerDied, gather

    with Cluster([node("localhost", 3)], stop_grace=1.0, log=lambda line: None) as cluster:
        workers = start_training(cluster, None)
        train(example, workers, range(1))
        shards = example.shards_for_step(example.read_text(), 1, 3, PER_RANK)
        for worker in workers[:2]:  # ranks 0 and 1 enter the step's collectives, wait for 2
            worker.send({"cmd": "forward_backward", "batch": shards[worker.rank]})
        os.kill(workers[2].pid, signal.SIGKILL)
        with pytest.raises(WorkerDied, match=re.escape("rank 2 on localhost")):
            gather(workers, timeout=TIMEOUT)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 10.0  # stop_grace, then the lease kills the rest
    assert wait_for_no_processes(tag, 5.0) == []


def test_preflight_against_a_blocked_port_fails_within_its_timeout(node: Any, tag: str) -> None:
    from miniray import Cluster, PreflightError, preflight

    env = {"MINIRAY_PREFLIGHT_TIMEOUT": "600"}  # the ranks would wait 10 minutes
    nodes = [node("localhost", 2, env=env)]
    with socket.create_server(("127.0.0.1", 0)) as blocker:  # listens, never answers
        port = blocker.getsockname()[1]
        with Cluster(nodes, stop_grace=0.5, log=lambda line: None) as cluster:
            cluster.start(work_fn="distributed_workfns.preflight_then_wait")
            configs = cluster.distributed_configs(master_port=port)
            started = time.monotonic()
            with pytest.raises(PreflightError) as caught:
                preflight(cluster, configs, timeout=PREFLIGHT_TIMEOUT)
            assert time.monotonic() - started < PREFLIGHT_TIMEOUT + 5.0  # then the teardown
    message = str(caught.value)
    assert "ranks 0, 1 did not join the process group" in message
    assert f"rank 1 on localhost: MASTER_ADDR=127.0.0.1 MASTER_PORT={port} via lo" in message
    assert caught.value.missing == [0, 1]
    assert wait_for_no_processes(tag, 5.0) == []


def test_preflight_with_a_master_address_other_nodes_cannot_reach(
    use_ssh_config: SshHosts, ns_hosts: list[tuple[str, str]], node: Any, tag: str
) -> None:
    """The classic mistake: MASTER_ADDR=127.0.0.1 on a multi-node cluster."""
    from miniray import Cluster, PreflightError, preflight

    env = {"MINIRAY_PREFLIGHT_TIMEOUT": "600"}
    nodes = [node("h1", 1, env=env), node("h2", 1, env=env)]
    with Cluster(nodes, stop_grace=0.5, log=lambda line: None) as cluster:
        cluster.start(work_fn="distributed_workfns.preflight_then_wait")
        configs = cluster.distributed_configs(master_addr="127.0.0.1")
        started = time.monotonic()
        with pytest.raises(PreflightError) as caught:
            preflight(cluster, configs, timeout=PREFLIGHT_TIMEOUT)
        assert time.monotonic() - started < PREFLIGHT_TIMEOUT + 5.0
    message = str(caught.value)
    assert "did not join the process group" in message and 1 in caught.value.missing
    port = configs[0].master_port
    assert f"rank 1 on h2: MASTER_ADDR=127.0.0.1 MASTER_PORT={port} via lo" in message
    assert wait_for_no_processes(tag, 5.0) == []


def test_the_example_trains_end_to_end(tag: str) -> None:
    env = {**os.environ, "MINIRAY_TEST_TAG": tag}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", "3", "--timeout", str(TIMEOUT)],
        cwd=TESTS_DIR, env=env, capture_output=True, text=True, timeout=3 * TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 ranks on 2 nodes, backend gloo" in done.stdout
    losses = [float(line.split("loss=")[1]) for line in done.stdout.splitlines() if "loss=" in line]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert wait_for_no_processes(tag, 5.0) == []
