#!/usr/bin/env python
"""Open every page of the built website in headless Chromium, offline, and check it.

    python tools/site_check.py [HTML_DIR] [--screenshots DIR]

Serves HTML_DIR (default _build/html) on 127.0.0.1 and drives Debian's `chromium` through the
DevTools protocol over a pipe (no driver download, no Python dependency). Every request that
is not for the local server is blocked and reported. For each page it checks:

- no console error, uncaught exception or failed resource load;
- no raw TeX left in the visible text (`\\(`, `\\[`, `$$`): MathJax typeset every formula;
- every image loaded;
- every widget rendered from its saved state, with a control; moving each widget's first
  control (a key press on a slider, a choice in a dropdown, a click on a toggle button or
  tab) changes what the widget shows (compared by screenshots of the widget).

Screenshots of the pages with widgets, and of each widget before and after moving its
control, are written to --screenshots (default _build/screenshots). Exit status 1 when a
check fails. tests/test_site_browser.py runs this on a fresh build.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import itertools
import json
import os
import queue
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_GET_CHROMIUM = (
    "install Debian's Chromium: `apt-get update && apt-get install -y chromium` (as root), or "
    "`CI=true bash tools/setup.sh`, which does that; or set CHROMIUM=/path/to/chromium"
)
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads"}


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


# --------------------------------------------------------------------------- server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class SiteServer:
    """The site on http://127.0.0.1:<free port>/ in a background thread."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- DevTools


class BrowserError(Exception):
    pass


class Chromium:
    """Headless Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out)."""

    def __init__(self, binary: str, allowed_prefix: str, width: int = 1280, height: int = 1000):
        self.allowed_prefix = allowed_prefix
        self.profile = tempfile.mkdtemp(prefix="toyticket-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes():  # in the child, before exec: the protocol wants fds 3 and 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        args = [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-quic",
            "--mute-audio",
            "--hide-scrollbars",
            # no name resolves but the loopback: nothing can leave the machine
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,  # Python's own fds are close-on-exec; 3 and 4 are not
            preexec_fn=wire_pipes,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)  # next() is atomic: both threads send
        self._write_lock = threading.Lock()
        self._pending: dict[int, queue.Queue] = {}
        self._events: list[dict] = []
        self._events_lock = threading.Lock()
        self.blocked: list[str] = []
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.session = None

    # -- protocol
    def _write(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        with self._write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self._to_browser, view)
                view = view[n:]

    def _read_loop(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                for q in list(self._pending.values()):
                    q.put({"error": {"message": "browser closed the pipe"}})
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    q = self._pending.pop(message["id"], None)
                    if q is not None:
                        q.put(message)
                elif message.get("method") == "Fetch.requestPaused":
                    self._on_request(message)
                else:
                    with self._events_lock:
                        self._events.append(message)

    def _on_request(self, message: dict) -> None:
        params = message["params"]
        url = params["request"]["url"]
        local = url.startswith((self.allowed_prefix, "data:", "blob:", "about:"))
        if local:
            self._send_nowait(
                "Fetch.continueRequest",
                {"requestId": params["requestId"]},
                message.get("sessionId"),
            )
        else:
            self.blocked.append(url)
            self._send_nowait(
                "Fetch.failRequest",
                {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                message.get("sessionId"),
            )

    def _send_nowait(self, method: str, params: dict, session: str | None) -> None:
        message = {"id": next(self._ids), "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._write(message)

    def send(self, method: str, params: dict | None = None, timeout: float = 30, session=True):
        ident = next(self._ids)
        message = {"id": ident, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        q: queue.Queue = queue.Queue()
        self._pending[ident] = q
        self._write(message)
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"{method}: no answer in {timeout} s") from None
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def take_events(self) -> list[dict]:
        with self._events_lock:
            events, self._events = self._events, []
        return events

    # -- page helpers
    def open_tab(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

    def evaluate(self, expression: str, timeout: float = 30, await_promise: bool = False):
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"evaluate failed: {text}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 30) -> str:
        """Open url and wait for it (and any redirect it makes) to load; returns the final URL."""
        self.take_events()
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        stable = 0
        while time.monotonic() < deadline:
            state = self.evaluate("[document.readyState, location.href]")
            if state[0] == "complete" and state[1] != "about:blank":
                stable += 1
                if stable >= 3:  # still complete 0.2 s later: no redirect under way
                    return state[1]
            else:
                stable = 0
            time.sleep(0.1)
        raise BrowserError(f"{url}: not loaded after {timeout} s")

    def screenshot(self, path: Path, clip: dict | None = None) -> bytes:
        params = {"format": "png", "captureBeyondViewport": clip is None}
        if clip:  # viewport coordinates of an element in view (getBoundingClientRect)
            page = self.send("Page.getLayoutMetrics")["cssVisualViewport"]
            clip = {**clip, "x": clip["x"] + page["pageX"], "y": clip["y"] + page["pageY"]}
            params["clip"] = {**clip, "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def key(self, key: str, code: int) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code},
            )

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=5)
        except BrowserError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


# --------------------------------------------------------------------------- checks

# Waits for MathJax (if the page loads it) and for every saved widget view to be rendered.
SETTLE_JS = r"""
(async () => {
  const deadline = Date.now() + %(timeout)d;
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  if (document.querySelector('script[src*="mathjax"]')) {
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() > deadline) return "MathJax did not start";
      await sleep(50);
    }
    await MathJax.startup.promise;
  }
  const viewType = 'script[type="application/vnd.jupyter.widget-view+json"]';
  const views = () => document.querySelectorAll(viewType);
  const rendered = () => Array.from(views()).filter(s => {
    const p = s.previousElementSibling;
    return p && p.classList.contains("widget-subarea") && p.querySelector(".jupyter-widgets");
  }).length;
  while (rendered() < views().length) {
    if (Date.now() > deadline) return `${rendered()} of ${views().length} widget views rendered`;
    await sleep(100);
  }
  await sleep(300);  // let images and fonts inside the widgets settle
  return "ok";
})()
"""

INSPECT_JS = r"""
(() => {
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "NOSCRIPT", "MJX-CONTAINER"]);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName)) return NodeFilter.FILTER_REJECT;
      }
      const el = node.parentElement;
      if (el && el.checkVisibility && !el.checkVisibility()) return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  const rawTex = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.textContent;
    for (const token of ["\\(", "\\[", "$$"]) {
      const i = t.indexOf(token);
      if (i >= 0) rawTex.push(t.slice(Math.max(0, i - 30), i + 50).replace(/\s+/g, " "));
    }
  }
  const untypeset = Array.from(document.querySelectorAll(".math"))
    .filter(el => !el.querySelector("mjx-container"))
    .map(el => el.textContent.slice(0, 60));
  const images = Array.from(document.images).filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => (img.currentSrc || img.src).slice(0, 120));
  const viewType = 'script[type="application/vnd.jupyter.widget-view+json"]';
  const views = document.querySelectorAll(viewType);
  const widgets = Array.from(views).map((s, i) => {
    const area = s.previousElementSibling;
    const ok = area && area.classList.contains("widget-subarea");
    if (ok) area.setAttribute("data-check-widget", String(i));
    const controls = ok ? area.querySelectorAll(
      ".noUi-handle, select, .widget-toggle-button, .lm-TabBar-tab, .p-TabBar-tab") : [];
    return {index: i, rendered: !!(ok && area.querySelector(".jupyter-widgets")),
            controls: controls.length};
  });
  return {rawTex, untypeset, images, widgets, title: document.title};
})()
"""

# Prepares control k of widget i for a move; returns what the driver must do.
CONTROL_JS = r"""
((i) => {
  const area = document.querySelector(`[data-check-widget="${i}"]`);
  area.scrollIntoView({block: "center"});
  const r = area.getBoundingClientRect();
  const clip = {x: r.left, y: r.top, width: Math.max(1, r.width), height: Math.max(1, r.height)};
  const handle = area.querySelector(".noUi-handle");
  if (handle) {
    handle.focus();
    const now = Number(handle.getAttribute("aria-valuenow"));
    const max = Number(handle.getAttribute("aria-valuemax"));
    return {kind: "key", key: now < max ? "ArrowRight" : "ArrowLeft", clip};
  }
  const select = area.querySelector("select");
  if (select) return {kind: "select", clip};
  const buttons = Array.from(
    area.querySelectorAll(".widget-toggle-button, .lm-TabBar-tab, .p-TabBar-tab"));
  const target = buttons.find(b => !b.classList.contains("mod-active") &&
                                   !b.classList.contains("lm-mod-current")) || buttons[0];
  if (target) {
    const b = target.getBoundingClientRect();
    return {kind: "click", x: b.left + b.width / 2, y: b.top + b.height / 2, clip};
  }
  return {kind: "none", clip};
})(%d)
"""

SELECT_JS = r"""
((i) => {
  const s = document.querySelector(`[data-check-widget="${i}"] select`);
  s.selectedIndex = (s.selectedIndex + 1) %% s.options.length;
  s.dispatchEvent(new Event("change", {bubbles: true}));
  return s.selectedIndex;
})(%d)
"""

CLIP_JS = r"""
((i) => {
  const r = document.querySelector(`[data-check-widget="${i}"]`).getBoundingClientRect();
  return {x: r.left, y: r.top, width: Math.max(1, r.width), height: Math.max(1, r.height)};
})(%d)
"""

KEY_CODES = {"ArrowRight": 39, "ArrowLeft": 37}


@dataclass
class PageReport:
    page: str
    problems: list[str] = field(default_factory=list)
    widgets: int = 0
    moved: int = 0


def _console_problems(events: list[dict]) -> list[str]:
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
            )
            problems.append(f"console error: {text[:300]}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            problems.append(f"uncaught exception: {text[:300]}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            problems.append(f"console error: {entry.get('text', '')[:200]} {entry.get('url', '')}")
    return problems


def site_pages(html_dir: Path) -> list[Path]:
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] in SKIP_DIRS or any(p.startswith(".") for p in rel.parts):
            continue
        pages.append(rel)
    return pages


def check_page(browser: Chromium, base_url: str, rel: Path, shots: Path) -> PageReport:
    report = PageReport(str(rel))
    blocked_before = len(browser.blocked)
    browser.navigate(base_url + rel.as_posix())
    settle = browser.evaluate(SETTLE_JS % {"timeout": 20000}, timeout=40, await_promise=True)
    if settle != "ok":
        report.problems.append(f"page did not settle: {settle}")
    info = browser.evaluate(INSPECT_JS)
    report.problems += [f"raw TeX in the visible text: {t!r}" for t in info["rawTex"][:5]]
    report.problems += [f"formula not typeset by MathJax: {t!r}" for t in info["untypeset"][:5]]
    report.problems += [f"image did not load: {src}" for src in info["images"]]
    report.widgets = len(info["widgets"])
    stem = rel.with_suffix("").as_posix().replace("/", "__")
    if info["widgets"]:
        browser.screenshot(shots / f"{stem}.png")
    for widget in info["widgets"]:
        i = widget["index"]
        if not widget["rendered"]:
            report.problems.append(f"widget {i} did not render from its saved state")
            continue
        if not widget["controls"]:
            report.problems.append(f"widget {i} rendered no control")
            continue
        action = browser.evaluate(CONTROL_JS % i)
        time.sleep(0.2)
        before = browser.screenshot(shots / f"{stem}-widget{i}-before.png", action["clip"])
        if action["kind"] == "key":
            browser.key(action["key"], KEY_CODES[action["key"]])
        elif action["kind"] == "select":
            browser.evaluate(SELECT_JS % i)
        elif action["kind"] == "click":
            browser.click(action["x"], action["y"])
        time.sleep(0.5)
        after = browser.screenshot(
            shots / f"{stem}-widget{i}-after.png", browser.evaluate(CLIP_JS % i)
        )
        if before == after:
            report.problems.append(
                f"widget {i}: moving its control ({action['kind']}) did not change what it shows"
            )
        else:
            report.moved += 1
    time.sleep(0.2)
    report.problems += _console_problems(browser.take_events())
    report.problems += [
        f"blocked a request to the network: {url[:200]}" for url in browser.blocked[blocked_before:]
    ]
    return report


def check_site(html_dir: Path, shots: Path, chromium: str | None = None) -> list[PageReport]:
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise BrowserError(f"{html_dir} has no index.html; build the site first")
    chromium = chromium or find_chromium()
    if chromium is None:
        raise BrowserError(f"Chromium not found: {HOW_TO_GET_CHROMIUM}")
    if shots.exists():
        shutil.rmtree(shots)
    shots.mkdir(parents=True)
    reports = []
    with SiteServer(html_dir) as server:
        browser = Chromium(chromium, server.url)
        try:
            browser.open_tab()
            for rel in site_pages(html_dir):
                try:
                    reports.append(check_page(browser, server.url, rel, shots))
                except BrowserError as exc:
                    reports.append(PageReport(str(rel), [f"browser: {exc}"]))
        finally:
            browser.close()
    return reports


def summarize(reports: list[PageReport]) -> str:
    lines = []
    for r in reports:
        status = "ok" if not r.problems else f"{len(r.problems)} problem(s)"
        extra = f", widgets {r.moved}/{r.widgets} respond" if r.widgets else ""
        lines.append(f"{r.page}: {status}{extra}")
        lines += [f"    {p}" for p in r.problems]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    args = parser.parse_args(argv)
    try:
        reports = check_site(args.html, args.screenshots)
    except BrowserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summarize(reports))
    print(f"screenshots: {args.screenshots}")
    return 1 if any(r.problems for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
