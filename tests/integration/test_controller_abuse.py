"""The controller under connection abuse over loopback (bounded in count and
time): one client address that opens connections and sends nothing cannot
take every connection (each one a thread) from the others, and a client that
trickles its headers is cut at the header deadline however steadily the
bytes come. No Keystone and no agent are needed: /healthz answers without
them.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import wait_until  # noqa: E402

PORT = 35398
HEADER_TIMEOUT = 2


@pytest.fixture
def controller(vmwatch, tmp_path):
    ctl = Path(vmwatch).resolve().parent / "vmwatch-controller"
    if not ctl.exists():
        pytest.skip(f"{ctl} is not built")
    pw = tmp_path / "svc.pw"
    pw.write_text("not-used-here-0123\n")
    pw.chmod(0o600)
    conf = tmp_path / "controller.conf"
    conf.write_text(f"listen = 127.0.0.1:{PORT}\nkeystone_url = http://127.0.0.1:1/v3\nservice_user = svc\n"
                    f"service_password_file = {pw}\nagent = h=http://127.0.0.1:1\n"
                    "max_connections = 100\nmax_connections_per_ip = 20\n"
                    f"header_timeout = {HEADER_TIMEOUT}s\n")
    conf.chmod(0o600)
    p = subprocess.Popen([str(ctl), "--config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        wait_until(lambda: healthz("127.0.0.1") == 200, timeout=20, what="controller up")
        yield p
    finally:
        p.terminate()
        out = p.communicate(timeout=20)[1]
        assert p.returncode == 0, out[-3000:]


def healthz(src: str):
    """Status of GET /healthz from source address src, None if refused or slow."""
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=1, source_address=(src, 0))
    except OSError:
        return None
    with s:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(100)
        except OSError:
            return None
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None


def test_one_address_cannot_take_every_connection(controller):
    held, refused = [], 0
    try:
        # Five times the per-address limit, more than max_connections, none sending a byte.
        for _ in range(150):
            try:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=2, source_address=("127.0.0.7", 0))
                held.append(s)
            except OSError:
                refused += 1
        time.sleep(0.5)
        # Connections over the limit are closed at once by the controller.
        closed = 0
        for s in held:
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        assert refused + closed >= 150 - 20, (refused, closed)
        # Everybody else is still served, promptly.
        t0 = time.monotonic()
        assert [healthz(f"127.0.0.{i}") for i in (1, 2, 3)] == [200, 200, 200]
        assert time.monotonic() - t0 < 3
    finally:
        for s in held:
            s.close()


def test_headers_trickled_byte_by_byte_are_cut_at_the_deadline(controller):
    """Slowloris: a byte every 0.3 s keeps libmicrohttpd's idle timeout from
    firing; the header deadline does not restart with each byte."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    s = socket.create_connection(("127.0.0.1", PORT), timeout=2, source_address=("127.0.0.9", 0))
    t0 = time.monotonic()
    cut = None
    with s:
        for b in request:
            try:
                s.sendall(bytes([b]))
                s.settimeout(0.3)
                if s.recv(1) == b"":
                    cut = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except OSError:
                cut = time.monotonic() - t0
                break
            if time.monotonic() - t0 > HEADER_TIMEOUT + 10:
                break
    assert cut is not None, "the controller kept a connection that trickled its headers for 12 s"
    assert HEADER_TIMEOUT - 0.5 < cut < HEADER_TIMEOUT + 3, cut


def test_headers_that_arrive_in_time_are_served(controller):
    """Slow but within the deadline: the request is answered."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5, source_address=("127.0.0.10", 0))
    with s:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            s.sendall(part)
            time.sleep(0.4)
        assert s.recv(100).startswith(b"HTTP/1.1 200")
