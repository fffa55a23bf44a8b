"""Quotes the folder, the variables and the arguments but not the Python path: a path with
a space (or a quote, or a $) is split or rewritten by the remote shell."""


def remote_command(
    python: str, args: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None
) -> str:
    for name in env or {}:
        if not _ENV_NAME.match(name):
            raise ConfigError(f"environment variable name {name!r} is not a shell name")
    assignments = [f"{name}={value}" for name, value in (env or {}).items()]
    prefix = " ".join(["env", *map(shlex.quote, assignments)]) + " " if assignments else ""
    quoted = " ".join(shlex.quote(a) for a in args)
    return f"cd {shlex.quote(cwd)} && exec {prefix}{python} {quoted}".rstrip()
