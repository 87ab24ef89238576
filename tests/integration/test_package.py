"""The Debian package and `meson install` (issue 14).

Builds the binary packages with `dpkg-buildpackage -us -uc -b` from a scratch
copy of the working tree, lists their contents, runs lintian (no error), and
unpacks them with `dpkg -x` into a scratch root: the files are where Debian
wants them, the unit names the installed binary and passes `systemd-analyze
verify`, the binaries run and print the version from the one place it is
written. `meson install` with another prefix puts every path under it.
"""
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("dpkg-buildpackage", "dh", "lintian", "dpkg-deb", "systemd-analyze", "meson", "ninja")


def run(*cmd, cwd=None, timeout=300, env=None, check=True):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert r.returncode == 0, f"{' '.join(map(str, cmd))}: rc={r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def project_version():
    m = re.search(r"project\('vmwatch'.*?version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text(), re.S)
    return m.group(1)


def copy_tree(dest: Path):
    """The working tree as git sees it (tracked and new files, no build dirs)."""
    files = run("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=ROOT).stdout.split("\0")
    for f in files:
        if not f or f.startswith("build") or not (ROOT / f).is_file():
            continue
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup.sh installs them)")
    top = tmp_path_factory.mktemp("pkg")
    src = top / "vmwatch"
    src.mkdir()
    copy_tree(src)
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2", LC_ALL="C.UTF-8")
    run("dpkg-buildpackage", "-us", "-uc", "-b", cwd=src, env=env, timeout=900)
    out = {p.name.split("_")[0]: p for p in top.glob("*.deb") if "dbgsym" not in p.name}
    assert set(out) == {"vmwatch", "vmwatch-agent", "vmwatch-controller"}, sorted(p.name for p in top.iterdir())
    out["changes"] = next(top.glob("*.changes"))
    out["build"] = next(src.glob("obj-*"))       # dh's meson build directory
    return out


def contents(deb):
    """{path: mode string} of a .deb's files (dpkg -c)."""
    files = {}
    for line in run("dpkg-deb", "-c", str(deb)).stdout.splitlines():
        mode, _owner, _size, _date, _time, path = line.split(None, 5)
        files[path.split(" -> ")[0].lstrip(".")] = mode
    return files


def field(deb, name):
    return run("dpkg-deb", "-f", str(deb), name).stdout.strip()


def test_packages_hold_every_installed_file(debs):
    cli, agent = contents(debs["vmwatch"]), contents(debs["vmwatch-agent"])
    for path in ("/usr/bin/vmwatch", "/usr/share/man/man1/vmwatch.1.gz",
                 "/usr/share/bash-completion/completions/vmwatch", "/usr/share/doc/vmwatch/copyright"):
        assert path in cli, (path, sorted(cli))
    for path in ("/usr/bin/vmwatch-agent", "/usr/libexec/vmwatch/vmwatch-sampler",
                 "/usr/share/man/man8/vmwatch-agent.8.gz",
                 "/usr/share/bash-completion/completions/vmwatch-agent",
                 "/lib/systemd/system/vmwatch-agent.service", "/etc/vmwatch/agent.conf",
                 "/usr/share/vmwatch/grafana/vmwatch.json",
                 "/usr/share/vmwatch/prometheus/vmwatch-rules.yml",
                 "/usr/share/vmwatch/prometheus/vmwatch-alerts.yml"):
        assert path in agent, (path, sorted(agent))
    assert not set(cli) & {p for p in agent if not p.endswith("/")}, "a file in both packages"
    assert agent["/etc/vmwatch/agent.conf"] == "-rw-------"   # may hold tokens
    ctl = contents(debs["vmwatch-controller"])
    for path in ("/usr/bin/vmwatch-controller", "/usr/share/man/man8/vmwatch-controller.8.gz",
                 "/lib/systemd/system/vmwatch-controller.service", "/etc/vmwatch/controller.conf"):
        assert path in ctl, (path, sorted(ctl))
    assert ctl["/etc/vmwatch/controller.conf"] == "-rw-------"
    assert not {p for p in ctl if not p.endswith("/")} & (set(cli) | set(agent)), "a file in two packages"
    assert not [p for p in list(cli) + list(agent) + list(ctl) if p.startswith("/usr/local")]


def test_dlopened_libraries_are_declared(debs):
    # libvirt0 and libxml2 are dlopen()ed: dpkg-shlibdeps cannot see them.
    assert {"libvirt0", "libxml2"} <= set(re.findall(r"[\w.+-]+", field(debs["vmwatch-agent"], "Depends")))
    assert {"libvirt0", "libxml2"} <= set(re.findall(r"[\w.+-]+", field(debs["vmwatch"], "Recommends")))
    assert "libjansson4" in field(debs["vmwatch"], "Depends")     # found by dpkg-shlibdeps
    # ncurses is dlopen()ed by top's screen (src/cli/curses_lazy.c).
    assert "libncursesw6" in re.findall(r"[\w.+-]+", field(debs["vmwatch"], "Depends"))
    # libbpf is dlopen()ed to parse BTF (src/kernel/btf.c), by the CLI and the agent's samplers.
    for pkg in ("vmwatch", "vmwatch-agent"):
        assert "libbpf1" in re.findall(r"[\w.+-]+", field(debs[pkg], "Depends")), pkg
    assert field(debs["vmwatch"], "Version") == project_version()


def test_lintian_has_no_errors(debs):
    r = run("lintian", "--fail-on", "error", "--no-tag-display-limit", str(debs["changes"]),
            check=False, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not re.search(r"^E: ", r.stdout, re.M), r.stdout


@pytest.fixture(scope="module")
def scratch_root(debs, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    for name in ("vmwatch", "vmwatch-agent", "vmwatch-controller"):
        run("dpkg", "-x", str(debs[name]), str(root))
    return root


def test_unpacked_binaries_run_and_agree_on_the_version(scratch_root):
    v = project_version()
    assert run(str(scratch_root / "usr/bin/vmwatch"), "--version").stdout.strip() == f"vmwatch {v}"
    assert run(str(scratch_root / "usr/bin/vmwatch-agent"), "--version").stdout.strip() == f"vmwatch-agent {v}"
    assert run(str(scratch_root / "usr/bin/vmwatch-controller"), "--version").stdout.strip() == \
        f"vmwatch-controller {v}"
    man = subprocess.run(["zcat", str(scratch_root / "usr/share/man/man1/vmwatch.1.gz")],
                         capture_output=True, text=True).stdout
    assert man.startswith(f'.TH VMWATCH 1 "') and f'"vmwatch {v}"' in man.splitlines()[0]
    help_text = run(str(scratch_root / "usr/bin/vmwatch"), "--help").stdout
    assert re.search(r"^  vms ", help_text, re.M)
    for form in ("NAME", "UUID", "qemu:PID", "file:PATH"):
        assert form in help_text
        assert form in run(str(scratch_root / "usr/bin/vmwatch"), "summary", "--help").stdout


def test_installed_unit_verifies(scratch_root):
    unit = scratch_root / "lib/systemd/system/vmwatch-agent.service"
    text = unit.read_text()
    assert re.search(r"^ExecStart=/usr/bin/vmwatch-agent --config /etc/vmwatch/agent.conf$", text, re.M)
    assert "@" + "bindir@" not in text and "@sysconfdir@" not in text
    ctl_unit = scratch_root / "lib/systemd/system/vmwatch-controller.service"
    ctl_text = ctl_unit.read_text()
    assert re.search(r"^ExecStart=/usr/bin/vmwatch-controller ", ctl_text, re.M)
    assert "LoadCredential=controller.conf:/etc/vmwatch/controller.conf" in ctl_text and "@" + "bindir@" not in ctl_text
    # A system around the package: the host's units (sysinit.target, ...)
    # and /bin/kill of ExecReload (procps, a dependency of vmwatch-agent).
    shutil.copytree("/lib/systemd/system", scratch_root / "lib/systemd/system", dirs_exist_ok=True,
                    symlinks=True, ignore=lambda d, names: [n for n in names if n.startswith("vmwatch")])
    kill = shutil.which("kill", path="/bin:/usr/bin")
    (scratch_root / "bin").mkdir(exist_ok=True)
    shutil.copy2(kill, scratch_root / "bin/kill")
    r = run("systemd-analyze", "verify", "--man=no", f"--root={scratch_root}", str(unit), str(ctl_unit), check=False)
    assert r.returncode == 0 and "vmwatch-agent" not in r.stderr and "vmwatch-controller" not in r.stderr, \
        r.stdout + r.stderr


def test_bash_completion_completes_commands_and_targets(scratch_root):
    comp = scratch_root / "usr/share/bash-completion/completions"
    script = f"""
        source /usr/share/bash-completion/bash_completion
        source {comp}/vmwatch
        source {comp}/vmwatch-agent
        COMP_WORDS=(vmwatch su); COMP_CWORD=1; COMP_LINE="vmwatch su"; COMP_POINT=${{#COMP_LINE}}
        _vmwatch vmwatch su vmwatch; echo "cmd:${{COMPREPLY[*]}}"
        COMP_WORDS=(vmwatch ps file:/et); COMP_CWORD=2; COMP_LINE="vmwatch ps file:/et"; COMP_POINT=${{#COMP_LINE}}
        _vmwatch vmwatch file:/et ps; echo "target:${{COMPREPLY[*]}}"
        COMP_WORDS=(vmwatch ps -o pid,pc); COMP_CWORD=3; COMP_LINE="vmwatch ps -o pid,pc"; COMP_POINT=${{#COMP_LINE}}
        _vmwatch vmwatch pid,pc -o; echo "cols:${{COMPREPLY[*]}}"
        COMP_WORDS=(vmwatch-agent --log-l); COMP_CWORD=1; COMP_LINE="vmwatch-agent --log-l"; COMP_POINT=${{#COMP_LINE}}
        PATH={scratch_root}/usr/bin:$PATH _vmwatch_agent vmwatch-agent --log-l vmwatch-agent; echo "agent:${{COMPREPLY[*]}}"
    """
    if not Path("/usr/share/bash-completion/bash_completion").exists():
        pytest.skip("bash-completion not installed")
    out = run("bash", "-c", script).stdout
    assert "cmd:summary" in out, out
    assert re.search(r"^target:.*/etc\b", out, re.M), out
    assert "agent:--log-level" in out, out
    assert "cols:pid,pcpu" in out, out


def test_meson_install_uses_the_configured_prefix(debs, tmp_path):
    # The package's build directory, reconfigured for another prefix: only
    # what depends on the paths is built again.
    build, dest = debs["build"], tmp_path / "dest"
    run("meson", "configure", str(build), "--prefix=/opt/vmw", "--sysconfdir=etc", "-Dsystemdunitdir=",
        timeout=300)
    run("meson", "install", "-C", str(build), "--destdir", str(dest), "--quiet", timeout=900)
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == sorted([
        "opt/vmw/bin/vmwatch", "opt/vmw/bin/vmwatch-agent", "opt/vmw/bin/vmwatch-controller",
        "opt/vmw/libexec/vmwatch/vmwatch-sampler",
        "opt/vmw/etc/vmwatch/agent.conf", "opt/vmw/etc/vmwatch/controller.conf",
        "opt/vmw/lib/systemd/system/vmwatch-agent.service",
        "opt/vmw/lib/systemd/system/vmwatch-controller.service",
        "opt/vmw/share/man/man1/vmwatch.1", "opt/vmw/share/man/man8/vmwatch-agent.8",
        "opt/vmw/share/man/man8/vmwatch-controller.8",
        "opt/vmw/share/bash-completion/completions/vmwatch",
        "opt/vmw/share/bash-completion/completions/vmwatch-agent",
        "opt/vmw/share/vmwatch/grafana/vmwatch.json",
        "opt/vmw/share/vmwatch/prometheus/vmwatch-alerts.yml",
        "opt/vmw/share/vmwatch/prometheus/vmwatch-rules.yml",
    ]), files
    unit = (dest / "opt/vmw/lib/systemd/system/vmwatch-agent.service").read_text()
    assert "ExecStart=/opt/vmw/bin/vmwatch-agent --config /opt/vmw/etc/vmwatch/agent.conf" in unit
    assert stat.S_IMODE((dest / "opt/vmw/etc/vmwatch/agent.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "opt/vmw/etc/vmwatch/controller.conf").stat().st_mode) == 0o600
    ctl_unit = (dest / "opt/vmw/lib/systemd/system/vmwatch-controller.service").read_text()
    assert "ExecStart=/opt/vmw/bin/vmwatch-controller " in ctl_unit
    assert "LoadCredential=controller.conf:/opt/vmw/etc/vmwatch/controller.conf" in ctl_unit
    # The agent's default configuration file follows sysconfdir too.
    assert "/opt/vmw/etc/vmwatch/agent.conf" in run(str(dest / "opt/vmw/bin/vmwatch-agent"), "--help").stdout


def test_libvirt_target_as_non_root_names_permission(libvirt_host, vmwatch):
    """libvirtd runs; a user it does not let in hears so, not "is libvirtd running?"."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to run vmwatch as nobody) and setpriv")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(vmwatch), "ps",
                        "pkg-nosuch"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HOME": "/nonexistent", "XDG_CACHE_HOME": "/nonexistent"})
    assert r.returncode == 2, r.stderr
    if "is libvirtd running" in r.stderr:
        import libvirt as lablv   # lab/libvirt.py
        if not lablv.libvirtd_running():
            pytest.skip("libvirtd was stopped meanwhile (another session shares it)")
    assert "is libvirtd running" not in r.stderr, r.stderr
    # Whether libvirtd lets nobody in depends on how it was started (polkit,
    # a system bus): refused, the message says why; let in, the name is unknown.
    assert re.search(r"non-root user|permission denied|no libvirt domain named 'pkg-nosuch'", r.stderr), r.stderr
