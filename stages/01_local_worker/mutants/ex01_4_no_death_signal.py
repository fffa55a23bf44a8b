"""Only checks the parent once, at start: a parent killed later leaves its workers running."""


def die_with_parent(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        os._exit(1)
