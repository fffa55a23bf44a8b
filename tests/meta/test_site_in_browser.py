"""The built site, as a reader's browser shows it: headless Chromium, with the network cut.

The site is built, served on loopback and every page loaded, all inside a network namespace
of its own (``unshare --net``) where nothing but loopback exists, by ``tools/site_browser.py``
(DevTools protocol over a pipe).  From the rendered pages: every mermaid block became an SVG,
every answer block (``??? success``) and every hint (``??? tip``) starts collapsed, no request
left loopback, and no page shows a raw ``--8<--`` or a Python traceback.  A small hand-made
site shows that each of these checks can fail.

Skipped, saying why, where Chromium (Debian's ``chromium``, installed by ``.ci/run``) is
missing or a network namespace cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.stages import REPO_ROOT, list_stages

DRIVER = REPO_ROOT / "tools" / "site_browser.py"
CHROMIUM = shutil.which("chromium")
RAW_MARKS = ("--8<--", "Traceback (most recent call last)")


def browser_unavailable() -> str | None:
    """Why the browser checks cannot run here, or None."""
    if CHROMIUM is None:
        return "Chromium is not installed (Debian package `chromium`; .ci/run installs it)"
    try:
        done = subprocess.run(
            ["unshare", "--net", "true"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run `unshare --net` to cut the network: {error}"
    if done.returncode != 0:
        return f"`unshare --net` cannot make a network namespace: {done.stderr.strip()}"
    return None


UNAVAILABLE = browser_unavailable()
pytestmark = [
    pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE)),
    pytest.mark.timeout(300),
]


def load_in_browser(site: Path, tmp_path: Path, diagram_wait: float = 8.0) -> dict[str, Any]:
    """Run the driver on ``site`` in a namespace without a network; its report."""
    report = tmp_path / "report.json"
    command = [sys.executable, str(DRIVER), str(site), str(report), str(CHROMIUM)]
    done = subprocess.run(
        ["unshare", "--net", *command, str(diagram_wait)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    return result


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return load_in_browser(site, tmp_path_factory.mktemp("browser"))


def test_every_page_was_loaded(report: dict[str, Any]) -> None:
    pages = set(report["pages"])
    assert "index.html" in pages
    assert {f"stages/{s.name}/index.html" for s in list_stages()} <= pages


def test_no_request_left_loopback(report: dict[str, Any]) -> None:
    for page, seen in report["pages"].items():
        outside = [u for u in seen["requests"] if not u.startswith((report["origin"], "data:"))]
        assert not outside, f"{page} asked the network for {outside}"


def test_every_mermaid_block_became_an_svg(report: dict[str, Any]) -> None:
    pages = report["pages"]
    assert sum(p["mermaid_blocks"] for p in pages.values()) > 0, "no diagram to check"
    for page, seen in pages.items():
        assert seen["mermaid_svgs"] == seen["mermaid_blocks"], page


def test_every_answer_and_every_hint_starts_collapsed(report: dict[str, Any]) -> None:
    for stage in list_stages():
        seen = report["pages"][f"stages/{stage.name}/index.html"]
        assert seen["answers"] >= len(stage.exercises), stage.name
        assert seen["hints"] == len(stage.exercises), stage.name
    for page, seen in report["pages"].items():
        assert seen["answers_open"] == 0, f"{page}: an answer block is open"
        assert seen["hints_open"] == 0, f"{page}: a hint is open"


def test_no_page_shows_a_snippet_line_or_a_traceback(report: dict[str, Any]) -> None:
    for page, seen in report["pages"].items():
        for mark in RAW_MARKS:
            assert mark not in seen["text"], f"{page} shows {mark!r}"


BROKEN_PAGE = """<!doctype html><html><body>
<pre class="mermaid"><code>graph TD; A-->B</code></pre>
<details class="success" open><summary>The stage's code</summary>answer</details>
<details class="tip" open><summary>Hint</summary>a hint</details>
<img src="http://192.0.2.1/pixel.png">
<p>--8<-- "stages/01_local_worker/miniray/channel.py:nothing"</p>
</body></html>
"""


def test_the_checks_see_a_broken_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(BROKEN_PAGE)
    seen = load_in_browser(site, tmp_path, diagram_wait=1.0)["pages"]["index.html"]
    assert (seen["mermaid_blocks"], seen["mermaid_svgs"]) == (1, 0)  # no mermaid script
    assert (seen["answers"], seen["answers_open"]) == (1, 1)
    assert (seen["hints"], seen["hints_open"]) == (1, 1)
    assert "http://192.0.2.1/pixel.png" in seen["requests"]
    assert "--8<--" in seen["text"]
