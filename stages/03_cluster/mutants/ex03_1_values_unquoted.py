"""Quotes every word but the environment's values: a value with a space, a quote or a $(...)
is split, or run, by the remote shell."""


def remote_command(
    python: str, args: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None
) -> str:
    words = [shlex.quote(python), *map(shlex.quote, args)]
    if env:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ConfigError(f"environment variable name {name!r} is not a shell name")
        words = ["env", *(f"{name}={value}" for name, value in env.items()), *words]
    return f"cd {shlex.quote(cwd)} && exec " + " ".join(words)
