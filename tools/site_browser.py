"""Load every page of the built site in headless Chromium, and report what the reader sees.

    unshare --net python tools/site_browser.py SITE_DIR REPORT_JSON [CHROMIUM [DIAGRAM_WAIT]]

Meant to run in a network namespace of its own (``unshare --net``), where only loopback
exists: it brings ``lo`` up, serves ``SITE_DIR`` on 127.0.0.1, and drives Chromium through
the DevTools protocol over a pipe (``--remote-debugging-pipe``: no port, no extra library).
For each page it records, into ``REPORT_JSON``:

* ``requests``: every URL the page asked for (``Network.requestWillBeSent``), so a caller
  can check that none left loopback;
* ``mermaid_blocks``: the mermaid blocks in the page as served (``<pre class="mermaid">``),
  and ``mermaid_svgs``: the rendered diagrams, hosts holding an ``<svg>`` in their shadow
  root (Material renders into a closed shadow root, which ``--dump-dom`` leaves out but the
  DevTools protocol reaches with ``pierce``);
* ``answers`` and ``answers_open``: the ``<details class="success">`` blocks, and those open;
  ``hints`` and ``hints_open``: the same for the exercises' hints, ``<details class="tip">``;
* ``text``: the page's visible text, to look for a raw ``--8<--`` or a Python traceback.

Standard library only; it never imports the project, so any Python can run it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]
PAGE_TIMEOUT = 20.0  # seconds for one page to load
DIAGRAM_WAIT = 8.0  # seconds after the load event for its diagrams to be drawn
MERMAID_RE = re.compile(r"<pre\b[^>]*\bclass=\"[^\"]*\bmermaid\b")
SNAPSHOT_JS = """JSON.stringify({
  answers: document.querySelectorAll("details.success").length,
  answers_open: [...document.querySelectorAll("details.success")].filter(d => d.open).length,
  hints: document.querySelectorAll("details.tip").length,
  hints_open: [...document.querySelectorAll("details.tip")].filter(d => d.open).length,
  unrendered: document.querySelectorAll("pre.mermaid").length,
  text: document.body.innerText,
})"""


class DevTools:
    """A Chromium process driven over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, chromium: str, profile: str) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def pipes_as_3_and_4() -> None:  # runs in the child, before exec
            read, write = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=pipes_as_3_and_4,
            close_fds=False,
            start_new_session=True,  # a group of its own: close() ends its helpers too
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(time.monotonic() + PAGE_TIMEOUT)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_event(self, method: str, deadline: float) -> None:
        """Wait for an event named ``method`` (one that arrived already counts)."""
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def close(self) -> None:
        """Kill Chromium and every helper process it started, and wait until they are gone.

        The helpers (renderer, GPU, zygote) write into the profile directory: one left
        alive for a moment would make removing that directory fail.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _group_alive(self.process.pid):
            time.sleep(0.05)
        os.close(self._in)
        os.close(self._out)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise ConnectionError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting to be reaped don't)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def check_site(site: Path, chromium: str, diagram_wait: float = DIAGRAM_WAIT) -> dict[str, Any]:
    """Serve ``site`` on loopback and load each of its pages; the report described above."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    with tempfile.TemporaryDirectory(prefix="miniray-chromium-") as profile:
        browser = DevTools(chromium, profile)  # before the server thread: it forks
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            session = browser.call("Target.attachToTarget", targetId=target, flatten=True)
            sid: str = session["sessionId"]
            for domain in ("Network.enable", "Page.enable", "DOM.enable", "Runtime.enable"):
                browser.call(domain, sid)
            report = {
                "origin": f"http://127.0.0.1:{port}/",
                "pages": {
                    page: _load(browser, sid, site, port, page, diagram_wait) for page in pages
                },
            }
        finally:
            browser.close()
            server.shutdown()
    return report


def _load(
    browser: DevTools, sid: str, site: Path, port: int, page: str, diagram_wait: float
) -> dict[str, Any]:
    browser.events.clear()
    url = f"http://127.0.0.1:{port}/{page}"
    deadline = time.monotonic() + PAGE_TIMEOUT
    browser.call("Page.navigate", sid, url=url)
    browser.wait_event("Page.loadEventFired", deadline)
    deadline = time.monotonic() + diagram_wait
    snapshot: dict[str, Any] = {}
    while True:  # Material draws the diagrams after the load event
        value = browser.call("Runtime.evaluate", sid, expression=SNAPSHOT_JS, returnByValue=True)
        snapshot = json.loads(value["result"]["value"])
        if snapshot["unrendered"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    tree = browser.call("DOM.getDocument", sid, depth=-1, pierce=True)["root"]
    requests = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    served = (site / page).read_text(encoding="utf-8")
    return {
        "requests": requests,
        "mermaid_blocks": len(MERMAID_RE.findall(served)),
        "mermaid_svgs": _rendered_diagrams(tree),
        "answers": snapshot["answers"],
        "answers_open": snapshot["answers_open"],
        "hints": snapshot["hints"],
        "hints_open": snapshot["hints_open"],
        "text": snapshot["text"],
    }


def _rendered_diagrams(node: dict[str, Any]) -> int:
    """Mermaid hosts (``class="mermaid"``) whose shadow root holds an ``<svg>``."""
    found = 0
    attributes = node.get("attributes", [])
    classes = dict(zip(attributes[::2], attributes[1::2], strict=True)).get("class", "")
    if "mermaid" in classes.split() and any(_has_svg(r) for r in node.get("shadowRoots", [])):
        found += 1
    for child in node.get("children", []) + node.get("shadowRoots", []):
        found += _rendered_diagrams(child)
    return found


def _has_svg(node: dict[str, Any]) -> bool:
    if node.get("nodeName", "").lower() == "svg":
        return True
    return any(_has_svg(c) for c in node.get("children", []) + node.get("shadowRoots", []))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str]) -> int:
    """``SITE_DIR REPORT_JSON [CHROMIUM [DIAGRAM_WAIT]]``: bring loopback up, check the site,
    write the report."""
    site, out = Path(argv[0]), Path(argv[1])
    chromium = argv[2] if len(argv) > 2 else "chromium"
    wait = float(argv[3]) if len(argv) > 3 else DIAGRAM_WAIT
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    out.write_text(json.dumps(check_site(site, chromium, wait), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
