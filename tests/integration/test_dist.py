"""What we ship next to the binaries: the systemd unit's sandbox.

issue 9: `systemd-analyze security` on the agent's unit reports an exposure
below 3.0 and a user other than root; the unit keeps only the capabilities
reading guest memory needs.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT_IN = Path(__file__).resolve().parents[2] / "dist" / "vmwatch-agent.service.in"


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    """The unit as `meson install` generates it for prefix /usr."""
    p = tmp_path_factory.mktemp("unit") / "vmwatch-agent.service"
    p.write_text(UNIT_IN.read_text().replace("@bindir@", "/usr/bin").replace("@sysconfdir@", "/etc"))
    return p


def directives(text):
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_runs_unprivileged_with_three_capabilities(unit):
    d = directives(unit.read_text())
    assert d.get("DynamicUser") == ["yes"] or (d.get("User") and d["User"][-1] not in ("root", "0"))
    assert "User" not in d or d["User"][-1] not in ("root", "0")
    caps = set(d["CapabilityBoundingSet"][-1].split())
    assert caps == {"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_CHECKPOINT_RESTORE"}
    assert set(d["AmbientCapabilities"][-1].split()) <= caps
    assert d["NoNewPrivileges"] == ["yes"]


def test_systemd_analyze_security_exposure_below_3(unit):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) < 3.0, r.stdout
    assert "Service runs as root user" not in r.stdout
