"""Expands the first bracket of a name only, and keeps the rest as written:
rack[1-2]-node[01-02] becomes rack1-node[01-02] and rack2-node[01-02]."""


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
        match = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", group)  # prefix, ranges, the rest
        if match is None:
            names.append(group)
            continue
        prefix, ranges, after = match.groups()
        numbers = [
            str(n).zfill(len(first))
            for first, last in _ranges(ranges, group)
            for n in range(int(first), int(last) + 1)
        ]
        if len(names) + len(numbers) > MAX_HOSTS:
            raise ConfigError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
        names += [prefix + number + after for number in numbers]
    return names
