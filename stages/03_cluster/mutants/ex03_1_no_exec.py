"""Runs Python as the shell's child instead of exec-ing it: ssh waits for the shell, and a
signal or hang-up meant for the server reaches the shell instead."""


def remote_command(
    python: str, args: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None
) -> str:
    words = [python, *args]
    if env:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ConfigError(f"environment variable name {name!r} is not a shell name")
        words = ["env", *(f"{name}={value}" for name, value in env.items()), *words]
    return f"cd {shlex.quote(cwd)} && " + " ".join(shlex.quote(w) for w in words)
