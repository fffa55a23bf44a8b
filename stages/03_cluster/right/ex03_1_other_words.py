"""Right, in other words than the stage's: ``cd -- DIR``, ``exec env`` even with no
variables, the words joined by ``shlex.join``, and a message of its own for a bad name.
The tests must pass it: they judge the command line by what a shell does with it."""


def remote_command(
    python: str, args: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None
) -> str:
    for name in env or {}:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"refused {name!r}: a variable's name must be a shell name")
    assignments = [f"{name}={value}" for name, value in (env or {}).items()]
    return (
        "cd -- " + shlex.quote(cwd) + " && exec " + shlex.join(["env", *assignments, python, *args])
    )
