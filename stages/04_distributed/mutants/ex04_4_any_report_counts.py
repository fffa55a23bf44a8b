"""Takes a rank's first report as its answer, whatever phase it names: a "hello" still in
the channel is returned when the caller waits for "joined"."""


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
                reports[worker.rank] = report
        remaining = deadline - time.monotonic()
        if len(reports) < len(workers):
            if remaining <= 0:
                raise _Stalled("timed out")
            waiting = [w for w in workers if w.rank not in reports]
            wait_readable([fd for w in waiting for fd in w.wait_fds()], remaining)
    return [reports[w.rank] for w in workers]
