"""Looks at the restart budget first: a group that succeeded is run again while restarts
are left."""


def restart_decision(
    exit_codes: Sequence[int | None], restarts_done: int, max_restarts: int
) -> str:
    if restarts_done < max_restarts:
        return "restart"
    if all(code == 0 for code in exit_codes):
        return "done"
    return "fail"
