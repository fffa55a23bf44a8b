"""Tests the codes for truthiness: a rank whose supervisor was lost (None) looks like one
that exited 0, so a group with a lost rank is "done"."""


def restart_decision(
    exit_codes: Sequence[int | None], restarts_done: int, max_restarts: int
) -> str:
    if not any(exit_codes):
        return "done"
    if restarts_done < max_restarts:
        return "restart"
    return "fail"
