"""Stops at a failed rank without recording "failed: ..." in progress: the PreflightError
then shows that rank at its last phase, with no word of what went wrong."""


def await_phase(
    workers: Sequence[ClusterWorker], phase: str, deadline: float, progress: dict[int, str]
) -> list[dict[str, Any]]:
    reports: dict[int, dict[str, Any]] = {}
    while len(reports) < len(workers):
        for worker in workers:
            while worker.rank not in reports:
                try:
                    report = worker.recv(timeout=0)
                except TimeoutError:
                    break
                except (RemoteError, WorkerDied) as e:
                    raise _Stalled(f"rank {worker.rank} failed") from e
                if not (isinstance(report, dict) and report.get(REPORT_KEY) in PHASES):
                    raise _Stalled(f"rank {worker.rank} broke the preflight protocol")
                progress[worker.rank] = report[REPORT_KEY]
                if report[REPORT_KEY] == phase:
                    reports[worker.rank] = report
        remaining = deadline - time.monotonic()
        if len(reports) < len(workers):
            if remaining <= 0:
                raise _Stalled("timed out")
            waiting = [w for w in workers if w.rank not in reports]
            wait_readable([fd for w in waiting for fd in w.wait_fds()], remaining)
    return [reports[w.rank] for w in workers]
