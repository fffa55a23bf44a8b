"""Splitting text into lines the way `ast` and git count them.

Both end a line at "\\n" only ("\\r\\n" ends in it), whereas `str.splitlines` also splits at
form feeds, lone carriage returns and other separators, which can occur in Python source.
"""

from __future__ import annotations

import re


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its ending; the last one may have none."""
    return [line for line in re.split(r"(?<=\n)", text) if line]
