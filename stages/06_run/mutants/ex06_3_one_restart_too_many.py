"""Off by one: `--max-restarts 2` makes three restarts."""


def restart_decision(
    exit_codes: Sequence[int | None], restarts_done: int, max_restarts: int
) -> str:
    if all(code == 0 for code in exit_codes):
        return "done"
    if restarts_done <= max_restarts:
        return "restart"
    return "fail"
