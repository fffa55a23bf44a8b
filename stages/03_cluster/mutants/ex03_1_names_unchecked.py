"""Quotes a variable's name with its value instead of refusing a name that is not a shell
name: ``A=B; rm`` silently becomes the variable A with the value ``B; rm=1``."""


def remote_command(
    python: str, args: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None
) -> str:
    words = [python, *args]
    if env:
        words = ["env", *(f"{name}={value}" for name, value in env.items()), *words]
    return f"cd {shlex.quote(cwd)} && exec " + " ".join(shlex.quote(w) for w in words)
