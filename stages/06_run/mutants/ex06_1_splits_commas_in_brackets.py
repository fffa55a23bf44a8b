"""Splits the list at every comma, those inside brackets too: a[1-3,5]b becomes the names
"a[1-3" and "5]b", never expanded."""


def expand_hostlist(text: str) -> list[str]:
    _check_syntax(text)
    groups = text.split(",")
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
