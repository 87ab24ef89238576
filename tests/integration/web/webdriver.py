"""A minimal W3C WebDriver client (urllib only) driving headless Chromium
through chromedriver, for the agent's web-page test. No selenium needed.

    with Browser() as b:
        b.get("http://127.0.0.1:9910/")
        rows = b.wait(lambda: b.js("return document.querySelectorAll('#procs tbody tr').length"))
        open("page.png", "wb").write(b.screenshot())
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM = os.environ.get("VMWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VMWATCH_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,900"]


def available() -> str:
    """'' if a browser can be driven here, else why not."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return "chromedriver not installed (apt-get install chromium-driver)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JavascriptError(RuntimeError):
    """A script run in the page threw."""


class Browser:
    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="vmwatch-chromium-")
        self.port = _free_port()
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = None
        deadline = time.monotonic() + 30
        while True:
            try:
                self._req("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("chromedriver did not start")
                time.sleep(0.2)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": FLAGS + [f"--user-data-dir={self.profile}"]},
        }}}
        self.session = self._req("POST", "/session", caps)["sessionId"]

    def _req(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                out = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            body = e.read()
            msg = f"webdriver {method} {path}: {e.code} {body[:500]!r}"
            if b'"javascript error"' in body:
                raise JavascriptError(msg) from None
            raise RuntimeError(msg) from None
        v = out.get("value", out)
        return v

    def _s(self, method: str, path: str, body=None):
        return self._req(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, pred, timeout: float = 30.0, interval: float = 0.25):
        """Poll pred until it is true. A script that throws (an element not
        on the page yet) counts as not true yet, like Selenium's ignored
        exceptions; the last such error is reported at the timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = pred()
            except JavascriptError as e:
                v, last = None, e
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError("browser condition not met" + (f" (last: {last})" if last else ""))
            time.sleep(interval)

    def screenshot(self) -> bytes:
        return base64.b64decode(self._s("GET", "/screenshot"))

    def close(self) -> None:
        if self.session:
            try:
                self._s("DELETE", "")
            except Exception:  # noqa: BLE001
                pass
            self.session = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
