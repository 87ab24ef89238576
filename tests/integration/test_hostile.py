"""Hostile guests: what a tenant controls must not reach the operator.

A guest's process names and command lines are chosen by whoever runs code in
the guest. Printed raw, "\\r\\e[2K" erases the row vmwatch just printed and a
newline starts a forged one; OSC sequences retitle the window or plant
hyperlinks. Every text front end must show such bytes as '?' (as procps
does), and JSON must carry them escaped, never raw.
"""
import json
import subprocess

import pytest

# The shared 6.1 guest of test_ps.py (same configuration: booted once per session).
G61 = dict(kernel="6.1", mem="512M", machine="pc", backing="shm")

# argv[3] of a shell: erase the line, forge a row for a fake sshd, retitle the window.
EVIL_ARG = "\r\x1b[2Kx\n   1337       1     0 S       1      900     2000   00:00:00 /usr/sbin/fake-sshd -D\x1b]0;pwned\x07"
# printf(1) spelling of EVIL_ARG for the guest's shell.
EVIL_PRINTF = r"\r\033[2Kx\n   1337       1     0 S       1      900     2000   00:00:00 /usr/sbin/fake-sshd -D\033]0;pwned\007"
# A program file whose name (and so comm) starts an SGR sequence.
EVIL_COMM_PRINTF = r"\033[31mred"
CONTROL = set(chr(c) for c in range(0x20)) - {"\n"} | {"\x7f"}


@pytest.fixture(scope="module")
def evil(guest):
    """The shared guest with one process carrying EVIL_ARG in its argv and one
    whose comm holds an escape sequence; both killed at the end."""
    g = guest(**G61)
    g.sh("pkill -f 'sleep 3600; true' ; pkill -f /tmp/evil ; true")
    g.sh(f"""setsid sh -c 'sleep 3600; true' "$(printf '{EVIL_PRINTF}')" </dev/null >/dev/null 2>&1 &""",
         check=True)
    g.sh(f"""mkdir -p /tmp/evil && cp /bin/idle "/tmp/evil/$(printf '{EVIL_COMM_PRINTF}')" && """
         f"""setsid "/tmp/evil/$(printf '{EVIL_COMM_PRINTF}')" </dev/null >/dev/null 2>&1 &""", check=True)
    g.wait_for(lambda s: any(EVIL_ARG in p.cmdline for p in s.procs.values())
               and any(p.comm == "\x1b[31mred" for p in s.procs.values()), timeout=60)
    yield g
    g.sh("pkill -f 'sleep 3600; true' ; pkill -f /tmp/evil ; rm -rf /tmp/evil ; true")


def run(vmwatch, *args):
    r = subprocess.run([vmwatch, *args], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode("utf-8", errors="strict"), r.stderr.decode("utf-8", errors="strict")


@pytest.mark.parametrize("threads", [False, True], ids=["ps", "ps-threads"])
def test_ps_text_shows_guest_control_bytes_as_question_marks(evil, vmwatch, threads):
    out, err = run(vmwatch, "ps", *(["--threads"] if threads else []), f"file:{evil.ram_path}")
    for text in (out, err):
        bad = sorted({c for c in text if c in CONTROL})
        assert not bad, f"control bytes reached the terminal: {bad!r}"
    lines = out.splitlines()
    # The forged row never stands on a line of its own: it stays inside the shell's row.
    forged = [l for l in lines if "fake-sshd" in l]
    assert len(forged) == 1, forged
    assert "sleep 3600; true" in forged[0]
    assert "??[2Kx?   1337" in forged[0]
    assert forged[0].endswith("?]0;pwned?")
    # The program named with an SGR sequence: '?' instead of ESC, as procps prints it.
    assert any("/tmp/evil/?[31mred" in l for l in lines), "process with an escape in its name not listed"


def test_ps_json_keeps_guest_bytes_escaped(evil, vmwatch):
    out, _ = run(vmwatch, "ps", "--json", f"file:{evil.ram_path}")
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    procs = json.loads(out)["processes"]
    assert any(EVIL_ARG in p["cmdline"] for p in procs), "JSON must carry the exact argv"
    assert any(p["comm"] == "\x1b[31mred" for p in procs)
