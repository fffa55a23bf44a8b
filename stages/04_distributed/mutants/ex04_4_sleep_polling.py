"""Sleep-polls the ranks (recv with timeout 0, then sleep 20 ms) instead of sleeping on
their descriptors until the deadline."""


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
                    progress[worker.rank] = f"failed: {_first_line(e)}"
                    raise _Stalled(f"rank {worker.rank} failed") from e
                if not (isinstance(report, dict) and report.get(REPORT_KEY) in PHASES):
                    progress[worker.rank] = f"failed: sent {report!r:.80} instead of a report"
                    raise _Stalled(f"rank {worker.rank} broke the preflight protocol")
                progress[worker.rank] = report[REPORT_KEY]
                if report[REPORT_KEY] == phase:
                    reports[worker.rank] = report
        if len(reports) < len(workers):
            if time.monotonic() >= deadline:
                raise _Stalled("timed out")
            time.sleep(0.02)
    return [reports[w.rank] for w in workers]
