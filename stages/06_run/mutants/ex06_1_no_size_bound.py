"""Expands whatever it is given: a list of a million names (a[1-1000]b[1-1000]) fills
memory rather than being refused."""


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
            expanded = [name + number + after for name in expanded for number in numbers]
        names += expanded
    return names
