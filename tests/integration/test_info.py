"""`vmwatch info`: the guest kernel found from guest RAM alone, checked against
the guest itself (uname -r, /proc/kallsyms, /sys/devices/system/cpu/possible).

  - Debian 6.1 and 6.12 guests with KASLR on, 4-level and 5-level paging
    (qemu64,+la57), through file:RAMFILE, qemu:PID (shared file, memfd,
    private RAM read with process_vm_readv) and an ELF core;
  - the structural kallsyms fallback (--ignore-vmcoreinfo-kallsyms) finds the
    same symbols as VMCOREINFO's kallsyms lines;
  - the discovery cache: the second attach is a cache hit, much faster, and
    says the same; --no-cache neither reads nor writes it; a guest reboot (new
    KASLR offset) is noticed and triggers full discovery;
  - failures: no kernel in the target (a file of zeros), no such target, bad
    usage: exit 2 with a message saying what failed.
Attach times are printed with -s.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'lab'))
import vmlab  # noqa: E402
from schemas import validate  # noqa: E402

RELEASES = {'6.1': '6.1.0-47-amd64', '6.12': '6.12.117+deb12-amd64'}
# Checked in every run: plain data, an array, a per-CPU variable, the image start.
SYMBOLS = ['init_task', 'jiffies_64', '__per_cpu_offset', 'runqueues', '_stext', 'init_top_pgt',
           'page_offset_base']
TIMES = []


def info(vmwatch, target, *args, cache=None, check=True):
    """Run `vmwatch info --json`; cache is an XDG_CACHE_HOME (None: --no-cache)."""
    env = dict(os.environ)
    argv = [vmwatch, 'info', '--json']
    if cache is None:
        argv.append('--no-cache')
    else:
        env['XDG_CACHE_HOME'] = str(cache)
    for s in SYMBOLS:
        argv += ['--symbol', s]
    argv += [*args, target]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    wall = time.monotonic() - t0
    if not check:
        return p
    assert p.returncode == 0, f'{" ".join(argv)} failed ({p.returncode}): {p.stderr}'
    out = validate('info', json.loads(p.stdout))
    # The assertions below read the kernel's and the VM's fields side by side.
    d = {**out['vm'], **out['kernel'], **({'symbols': out['symbols']} if 'symbols' in out else {})}
    d['_wall_ms'] = wall * 1000
    return d


_KALLSYMS = {}


def guest_kallsyms(g, names=None, fresh=False):
    """name -> address of SYMBOLS and _text from the guest's own /proc/kallsyms.
    Generating /proc/kallsyms (160,000 lines on 6.12) takes the TCG guest
    longer than the agent's 60 s limit for one command when the host is busy,
    so grep runs in the background there and the result is polled for; it is
    read once per guest (fresh=True: again, e.g. after a reboot)."""
    names = names or SYMBOLS + ['_text']
    if fresh or g.name not in _KALLSYMS:
        want = SYMBOLS + ['_text']
        pattern = ' '.join(f'-e {n}' for n in want)
        g.sh('rm -f /tmp/vmw-ks', check=True)
        g.run('sh', '-c', f'grep -w {pattern} /proc/kallsyms > /tmp/vmw-ks.tmp && '
                          f'mv /tmp/vmw-ks.tmp /tmp/vmw-ks')
        deadline = time.monotonic() + 600
        while True:
            rc, out = g.sh('cat /tmp/vmw-ks 2>/dev/null')
            if rc == 0:
                break
            assert time.monotonic() < deadline, 'guest grep of /proc/kallsyms did not finish'
            time.sleep(2)
        got = {}
        for line in out.splitlines():
            addr, _type, name = line.split()[:3]
            got.setdefault(name, int(addr, 16))
        _KALLSYMS[g.name] = got
    got = _KALLSYMS[g.name]
    assert set(names) <= set(got), f'guest /proc/kallsyms lacks {set(names) - set(got)}'
    return got


def guest_possible_cpus(g):
    rc, out = g.sh('cat /sys/devices/system/cpu/possible', check=True)
    n = 0
    for part in out.strip().split(','):
        lo, _, hi = part.partition('-')
        n += int(hi or lo) - int(lo) + 1
    return n


def check_against_guest(d, g, kernel, levels):
    assert d['release'] == RELEASES[kernel]
    assert d['release'] == g.truth().release
    assert d['paging_levels'] == levels
    want = guest_kallsyms(g)
    for name in SYMBOLS:
        assert d['symbols'][name] is not None, name
        assert int(d['symbols'][name]['addr'], 16) == want[name], name
    assert d['symbols']['runqueues']['percpu'] is True
    assert d['symbols']['init_task']['percpu'] is False
    # KASLR: _text moved from its link address 0xffffffff81000000.
    assert d['kaslr_offset'] == want['_text'] - 0xffffffff81000000
    assert d['nr_cpus'] == guest_possible_cpus(g)
    pob = int(d['page_offset_base'], 16)
    assert pob >> 56 == 0xff and pob % (1 << 30) == 0
    if levels == 5:
        assert pob < 0xff80000000000000   # 5-level direct map, not the 4-level one
    else:
        assert pob >= 0xffff800000000000
    mem = vmlab.parse_mem(g.config.mem) << 20
    assert mem - (2 << 20) <= d['ram_bytes'] <= mem
    assert len(d['build_id']) == 40
    assert d['types_from'].startswith('BTF in guest RAM')
    assert d['nr_symbols'] > 50000


def record(what, d):
    t = d['timings_ms']
    TIMES.append(f'{what}: attach {d["attach_ms"]:.1f} ms (scan {t["vmcoreinfo_scan"]:.1f}, '
                 f'kallsyms {t["kallsyms"]:.1f}, btf {t["btf"]:.1f}; '
                 f'{"cache hit" if d["from_cache"] else "full discovery"}), '
                 f'process {d["_wall_ms"]:.1f} ms')


@pytest.fixture(scope='module', autouse=True)
def print_times():
    yield
    print('\n' + '\n'.join('  ' + t for t in TIMES))


# (kernel, cpu, backing, paging levels)
CONFIGS = [
    ('6.1', 'qemu64', 'shm', 4),
    ('6.12', 'qemu64', 'shm', 4),
    ('6.12', 'qemu64,+la57', 'memfd', 5),
]
IDS = ['6.1', '6.12', '6.12-la57']


@pytest.fixture(scope='module', params=CONFIGS, ids=IDS)
def kguest(request, guest):
    kernel, cpu, backing, levels = request.param
    return guest(kernel=kernel, mem='512M', machine='pc', backing=backing, cpu=cpu), kernel, levels


def targets_of(g):
    t = [f'qemu:{g.pid}']
    if g.ram_path:
        t.append(f'file:{g.ram_path}')
    return t


def test_info_matches_the_guest(kguest, vmwatch):
    g, kernel, levels = kguest
    for target in targets_of(g):
        d = info(vmwatch, target)
        check_against_guest(d, g, kernel, levels)
        assert d['symbols_from'] == 'kallsyms via VMCOREINFO'
        assert not d['from_cache']
        assert d['target'] == target
        record(f'{kernel} {target.split(":")[0]} ({levels}-level, 512 MiB)', d)


def test_structural_fallback_finds_the_same_symbols(kguest, vmwatch):
    g, kernel, levels = kguest
    target = targets_of(g)[-1]
    normal = info(vmwatch, target)
    fallback = info(vmwatch, target, '--ignore-vmcoreinfo-kallsyms')
    assert fallback['symbols_from'] == 'kallsyms located by structure'
    assert fallback['symbols'] == normal['symbols']
    assert fallback['nr_symbols'] == normal['nr_symbols']
    for k in ('release', 'build_id', 'kaslr_offset', 'phys_base', 'page_offset_base', 'nr_cpus'):
        assert fallback[k] == normal[k], k
    check_against_guest(fallback, g, kernel, levels)
    record(f'{kernel} fallback (structure)', fallback)


def test_cache_second_attach_is_a_hit(kguest, vmwatch, tmp_path):
    g, kernel, levels = kguest
    target = targets_of(g)[-1]
    cold = info(vmwatch, target, cache=tmp_path)
    warm = info(vmwatch, target, cache=tmp_path)
    warm2 = info(vmwatch, target, cache=tmp_path)
    assert not cold['from_cache']
    assert warm['from_cache'] and warm2['from_cache']
    assert warm['symbols_from'] == 'discovery cache (kallsyms via VMCOREINFO)'
    for k in ('release', 'build_id', 'kaslr_offset', 'phys_base', 'page_offset_base', 'nr_cpus',
              'paging_levels', 'pgd_phys', 'vmcoreinfo_phys', 'symbols', 'nr_symbols', 'types_from'):
        assert warm[k] == cold[k], k
    # Cached attach skips the scan and the kallsyms decode.
    assert warm['timings_ms']['vmcoreinfo_scan'] == 0
    assert min(warm['attach_ms'], warm2['attach_ms']) * 5 < cold['attach_ms']
    entries = list((tmp_path / 'vmwatch' / 'discovery').iterdir())
    assert any(e.name == f'{cold["build_id"]}-{cold["kaslr_offset"]:x}' for e in entries), entries
    record(f'{kernel} cold (cache written)', cold)
    record(f'{kernel} cached', min(warm, warm2, key=lambda d: d['attach_ms']))


def test_warm_attach_reads_only_the_entry_head_and_the_memo(guest, vmwatch, tmp_path):
    """Once a run has asked its symbols, a warm attach takes them from the
    per-build memo: a damaged symbol table in the entry goes unnoticed (it is
    neither read nor summed), a damaged head does not (full discovery)."""
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    target = f'file:{g.ram_path}'
    cold = info(vmwatch, target, cache=tmp_path)
    d = tmp_path / 'vmwatch' / 'discovery'
    entry = d / f'{cold["build_id"]}-{cold["kaslr_offset"]:x}'
    memo = (d / f'{cold["build_id"]}.layout').read_text()
    assert all(f' Y {name}\n' in memo for name in SYMBOLS), memo
    data = bytearray(entry.read_bytes())
    data[-100] ^= 0xff   # a symbol name near the end of the table
    entry.write_bytes(bytes(data))
    warm = info(vmwatch, target, cache=tmp_path)
    assert warm['from_cache']
    assert warm['symbols'] == cold['symbols'] and warm['nr_symbols'] == cold['nr_symbols']
    data[200] ^= 0xff    # the VMCOREINFO text in the head
    entry.write_bytes(bytes(data))
    again = info(vmwatch, target, cache=tmp_path)
    assert not again['from_cache']
    assert again['symbols'] == cold['symbols']


def _libs_loaded(vmwatch, target, cache, *env_extra, prefix=()):
    """Run `vmwatch ps` with LD_DEBUG=files: (process, the libraries it loaded)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), LD_DEBUG='files')
    env.update(env_extra)
    p = subprocess.run([*prefix, vmwatch, 'ps', '--no-cmdline', target],
                       capture_output=True, text=True, env=env, timeout=300)
    return p, {w.split('=', 1)[1] for w in p.stderr.split() if w.startswith('file=')}


def test_warm_attach_never_loads_libbpf(guest, vmwatch, tmp_path):
    """libbpf (with libelf and zlib) is dlopen()ed only to parse BTF: a cold
    attach loads it, a warm one (the layout memo answers) does not, nor one
    to another VM of the same build: an agent's samplers and a `vmwatch ps`
    in a loop never map it."""
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    target = f'file:{g.ram_path}'
    cold, cold_libs = _libs_loaded(vmwatch, target, tmp_path)
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert 'libbpf.so.1' in cold_libs, sorted(cold_libs)
    warm, warm_libs = _libs_loaded(vmwatch, target, tmp_path)
    assert warm.returncode == 0, warm.stderr[-2000:]
    assert len(warm.stdout.splitlines()) > 10
    assert not {'libbpf.so.1', 'libelf.so.1', 'libz.so.1'} & warm_libs, sorted(warm_libs)
    # Another target of the same build (no hint for it: a full discovery)
    # takes its layout from the build's memo, and still needs no libbpf.
    other = tmp_path / 'other-vm-ram'
    other.symlink_to(g.ram_path)
    again, again_libs = _libs_loaded(vmwatch, f'file:{other}', tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(again.stdout.splitlines()) > 10
    assert 'libbpf.so.1' not in again_libs, sorted(again_libs)


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root: a private mount namespace')
def test_cold_attach_without_libbpf_says_what_to_install(guest, vmwatch, tmp_path):
    """Without libbpf, a cold attach fails with exit 2 and names the package;
    nothing it caches stands in the way once libbpf is there."""
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    lib = os.path.realpath('/lib/x86_64-linux-gnu/libbpf.so.1')
    p = subprocess.run(['unshare', '-m', 'sh', '-c', f'mount --bind /dev/null {lib} && exec "$@"', 'sh',
                        vmwatch, 'ps', '--no-cmdline', f'file:{g.ram_path}'],
                       capture_output=True, text=True, env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path)),
                       timeout=300)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert 'cannot load libbpf to parse BTF (install libbpf1)' in p.stderr, p.stderr
    assert not p.stdout
    after = subprocess.run([vmwatch, 'ps', '--no-cmdline', f'file:{g.ram_path}'], capture_output=True,
                           text=True, env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path)), timeout=300)
    assert after.returncode == 0, after.stderr
    assert len(after.stdout.splitlines()) > 10
    # Now the build's layout memo is cached: another VM of the build (a full
    # discovery, no hint for its path) needs no libbpf at all.
    other = tmp_path / 'other-vm-ram'
    other.symlink_to(g.ram_path)
    p = subprocess.run(['unshare', '-m', 'sh', '-c', f'mount --bind /dev/null {lib} && exec "$@"', 'sh',
                        vmwatch, 'ps', '--no-cmdline', f'file:{other}'],
                       capture_output=True, text=True, env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path)),
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout == after.stdout or len(p.stdout.splitlines()) > 10


def test_no_cache_neither_reads_nor_writes(guest, vmwatch, tmp_path):
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    p = subprocess.run([vmwatch, 'info', '--no-cache', '--json', f'file:{g.ram_path}'],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert not validate('info', json.loads(p.stdout))['kernel']['from_cache']
    assert not (tmp_path / 'vmwatch').exists()


def _start_ticks(pid):
    """Field 22 of /proc/PID/stat (after the command name, which may hold spaces)."""
    stat = Path(f'/proc/{pid}/stat').read_text()
    return int(stat[stat.rindex(')') + 2:].split()[19])


def test_ram_owner_hint_is_checked_before_use(guest, vmwatch, tmp_path):
    """A file: target remembers which QEMU maps the file (ram-owners in the
    cache directory) and checks that process first next time. A hint naming
    a live process that is no QEMU (with its real start time), or the right
    QEMU with another start time, is found out: the scan runs, the right
    owner is named and remembered."""
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    target = f'file:{g.ram_path}'
    hints = tmp_path / 'vmwatch' / 'discovery' / 'ram-owners'
    st = os.stat(g.ram_path)
    key = f'{st.st_dev:x} {st.st_ino:x}'
    right = f'{key} {g.pid} {_start_ticks(g.pid)}\n'
    source = f'RAM file {g.ram_path} of qemu:{g.pid}, '

    first = info(vmwatch, target, cache=tmp_path)
    assert first['source'].startswith(source), first['source']
    assert hints.read_text() == 'vmwatch ram-owners 1\n' + right
    assert hints.stat().st_mode & 0o777 == 0o600
    forged = [f'{key} {os.getpid()} {_start_ticks(os.getpid())}\n',   # alive, not QEMU
              f'{key} {g.pid} {_start_ticks(g.pid) + 1}\n']             # QEMU, not that one
    for line in forged:
        hints.write_text('vmwatch ram-owners 1\n' + line)
        again = info(vmwatch, target, cache=tmp_path)
        assert again['source'] == first['source'], (line, again['source'])
        assert hints.read_text() == 'vmwatch ram-owners 1\n' + right, line
    # --no-cache neither reads nor writes it (a forged hint stays as it was).
    hints.write_text('vmwatch ram-owners 1\n' + forged[0])
    p = subprocess.run([vmwatch, 'info', '--no-cache', '--json', target], capture_output=True, text=True,
                       env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path)), timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)['vm']['source'] == first['source']
    assert hints.read_text() == 'vmwatch ram-owners 1\n' + forged[0]


def test_text_output(guest, vmwatch):
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    p = subprocess.run([vmwatch, 'info', '--no-cache', f'file:{g.ram_path}'], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    for needle in ('kernel:           Linux 6.1.0-47-amd64', 'kaslr offset:', 'phys_base:',
                   'paging:           4-level', 'cpus:', 'symbols:', 'kallsyms via VMCOREINFO',
                   'types:            BTF in guest RAM', 'attach:', 'full discovery'):
        assert needle in p.stdout, (needle, p.stdout)


def test_elf_core_and_live_sources_agree(guest, vmwatch, tmp_path):
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    core = tmp_path / 'core.elf'
    with g.paused():
        live = info(vmwatch, f'file:{g.ram_path}')
        g.dump_guest_memory(core)
    try:
        dumped = info(vmwatch, f'file:{core}')
    finally:
        core.unlink()
    for k in ('release', 'build_id', 'kaslr_offset', 'phys_base', 'page_offset_base', 'nr_cpus',
              'vmcoreinfo_phys', 'symbols'):
        assert dumped[k] == live[k], k
    record('6.1 ELF core', dumped)


@pytest.mark.slow
def test_5g_q35_private_ram(fresh_guest, vmwatch, tmp_path):
    """RAM split around the PCI hole (q35: 2 GiB low, the rest at 4 GiB), read
    from QEMU's private memory with process_vm_readv."""
    g = fresh_guest(kernel='6.12', mem='5G', machine='q35', backing='private')
    d = info(vmwatch, f'qemu:{g.pid}')
    check_against_guest(d, g, '6.12', 4)
    record('6.12 qemu: private 5 GiB q35', d)
    cold = info(vmwatch, f'qemu:{g.pid}', cache=tmp_path)
    warm = info(vmwatch, f'qemu:{g.pid}', cache=tmp_path)
    assert warm['from_cache'] and warm['symbols'] == cold['symbols']
    record('6.12 qemu: private 5 GiB q35 cached', warm)


def test_reboot_is_detected(fresh_guest, vmwatch, tmp_path):
    """After a guest reboot (same QEMU process, same RAM file, new KASLR
    offset) the cached kernel must not be used: the next attach finds the new
    one. (-action reboot=reset undoes the lab's -no-reboot.)"""
    g = fresh_guest(kernel='6.12', mem='512M', machine='pc', backing='shm',
                    qemu_args=['-action', 'reboot=reset'])
    target = f'file:{g.ram_path}'
    first = info(vmwatch, target, cache=tmp_path)
    assert info(vmwatch, target, cache=tmp_path)['from_cache']
    t_hint = time.monotonic()
    uptime = g.truth().uptime_seconds
    g.qmp('system_reset')
    # Back up: the truth agent answers once the new kernel has booted.
    time.sleep(1)
    g._wait_ready(120)
    assert g.truth().uptime_seconds < uptime + (time.monotonic() - t_hint) - 0.5
    # Give the liveness check its grace period since the last hint (a copy
    # left by the previous boot is told from the live kernel by its frozen
    # jiffies, which needs some wall-clock time to show).
    time.sleep(max(0.0, 25 - (time.monotonic() - t_hint)))
    after = info(vmwatch, target, cache=tmp_path)
    want = guest_kallsyms(g, fresh=True)
    assert after['kaslr_offset'] == want['_text'] - 0xffffffff81000000
    assert int(after['symbols']['init_task']['addr'], 16) == want['init_task']
    if after['kaslr_offset'] != first['kaslr_offset']:
        assert not after['from_cache']
    assert info(vmwatch, target, cache=tmp_path)['from_cache']


def test_no_kernel_in_a_file_of_zeros(vmwatch, tmp_path):
    zeros = tmp_path / 'zeros.img'
    with open(zeros, 'wb') as f:
        f.truncate(64 << 20)
    p = info(vmwatch, f'file:{zeros}', check=False)
    assert p.returncode == 2
    assert p.stdout == ''
    assert 'no Linux kernel found in guest RAM: no VMCOREINFO' in p.stderr
    assert 'is the guest running Linux' in p.stderr


def test_usage_and_target_errors(vmwatch, tmp_path):
    def run(*args):
        return subprocess.run([vmwatch, 'info', *args], capture_output=True, text=True, timeout=60)

    p = run(f'file:{tmp_path}/missing')
    assert p.returncode == 2 and 'vmwatch: ' in p.stderr and p.stdout == ''
    p = run('qemu:999999999')
    assert p.returncode == 2 and p.stderr
    p = run()
    assert p.returncode == 2 and 'missing TARGET' in p.stderr
    p = run('a', 'b')
    assert p.returncode == 2 and 'too many arguments' in p.stderr
    p = run('--bogus', 'file:x')
    assert p.returncode == 2
    p = run('--help')
    assert p.returncode == 0 and 'Usage: vmwatch info' in p.stdout
