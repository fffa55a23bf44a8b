"""Does not check the brackets and commas first: node[1-3 becomes a host "node[1-3" and
a,,b a host named "", where a malformed SLURM_JOB_NODELIST must be an error."""


def expand_hostlist(text: str) -> list[str]:
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
            expanded = [name + number + after for name in expanded for number in numbers]
        if len(names) + len(expanded) > MAX_HOSTS:
            raise ConfigError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
        names += expanded
    return names
