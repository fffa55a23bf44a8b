"""Makes every combination, but with the last bracket varying slowest: r[1-2]n[1-2] gives
r1n1, r2n1, r1n2, r2n2, not SLURM's order (which SLURM_TASKS_PER_NODE's counts follow)."""


def expand_hostlist(text: str) -> list[str]:
    _check_syntax(text)
    groups, depth, start = [], 0, 0
    for i, char in enumerate(text + ","):
        if char in "[]":
            depth += 1 if char == "[" else -1
        elif char == "," and depth == 0:
            groups.append(text[start:i])
            start = i + 1
    names: list[str] = []
    for group in groups:
        parts = re.split(r"\[([^\]]*)\]", group)
        expanded = [parts[0]]
        for ranges, after in zip(parts[1::2], parts[2::2], strict=True):
            numbers = [
                str(n).zfill(len(first))
                for first, last in _ranges(ranges, group)
                for n in range(int(first), int(last) + 1)
            ]
            if len(names) + len(expanded) * len(numbers) > MAX_HOSTS:
                raise ConfigError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
            expanded = [name + number + after for number in numbers for name in expanded]
        if len(names) + len(expanded) > MAX_HOSTS:
            raise ConfigError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
        names += expanded
    return names
