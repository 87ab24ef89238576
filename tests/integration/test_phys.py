"""`vmwatch phys`: every guest-memory source returns exactly the bytes QEMU itself
sees (QMP pmemsave) over all of guest RAM, for a paused guest:

  file:RAMFILE           the shared memory-backend-file, mapped read-only
  qemu:PID               the same file found through /proc/PID/maps
  --process-read qemu:PID  the same RAM read with process_vm_readv
  qemu:PID (memfd)       memory-backend-memfd, opened through QEMU's maps/fds
  qemu:PID (private)     anonymous RAM, process_vm_readv
  file:DUMP.elf          an ELF core from dump-guest-memory

on a 512 MiB pc guest (all of RAM) and 5 GiB pc and q35 guests (RAM below and
above 4 GiB: 64 MiB windows at both ends of every RAM range, where a layout
error shows first, and two inside each, of ~5 GiB; a whole-RAM pass there
cost CI ~5 minutes and found nothing the windows and the 512 MiB pass miss).
Each source streams a RAM range in one `vmwatch phys` process, read in
lockstep with 256 MiB pmemsave pieces, so memory and /dev/shm use stay bounded.
Also: the RAM ranges each layout reports, failures (exit 2 with a message,
exit 1 for holes) and --hex.
"""
import collections
import os
import re
import shutil
import subprocess
import time

import pytest

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 256 * MiB
LEGACY = (0xA0000, 0x100000)  # VGA/BIOS window: never part of a QEMU layout's RAM ranges

# (machine, mem) -> guest RAM ranges [start, end) that qemu:/file: sources report
LAYOUTS = {
    ('pc', '512M'): [(0, 0xA0000), (0x100000, 512 * MiB)],
    # i440fx: RAM >= 3.5 GiB is split at 3 GiB; the rest goes to 4 GiB
    ('pc', '5G'): [(0, 0xA0000), (0x100000, 3 * GiB), (4 * GiB, 6 * GiB)],
    # q35: RAM >= 2.75 GiB is split at 2 GiB
    ('q35', '5G'): [(0, 0xA0000), (0x100000, 2 * GiB), (4 * GiB, 7 * GiB)],
}
CONFIGS = list(LAYOUTS)

# bytes and seconds spent reading each kind of source, printed at the end (-s)
THROUGHPUT = collections.defaultdict(lambda: [0, 0.0])


def run(vmwatch, *args, **kw):
    return subprocess.run([vmwatch, 'phys', *args], capture_output=True, timeout=600, **kw)


def ranges_of(vmwatch, *target):
    """(description, [(start, end)]) from `vmwatch phys --ranges`."""
    p = run(vmwatch, '--ranges', *target)
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode()
    desc = re.search(r'^source: (.*)$', out, re.M).group(1)
    ranges = [(int(a, 16), int(b, 16) + 1) for a, b in re.findall(r'^0x([0-9a-f]+)-0x([0-9a-f]+)', out, re.M)]
    total = int(re.search(r'^ram: (\d+) bytes', out, re.M).group(1))
    assert total == sum(e - s for s, e in ranges)
    return desc, ranges


def pmem(guest, addr, size):
    """Guest-physical bytes as QEMU reads them (the guest must be paused)."""
    path = f'/dev/shm/vmwatch-test-pmem-{os.getpid()}'
    try:
        guest.pmemsave(addr, size, path)
        with open(path, 'rb') as f:
            return f.read()
    finally:
        if os.path.exists(path):
            os.unlink(path)


def first_diff(a, b):
    for i in range(0, min(len(a), len(b)), 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            return i + next(k for k in range(4096) if a[i + k:i + k + 1] != b[i + k:i + k + 1])
    return min(len(a), len(b))


def compare_with_pmemsave(guest, vmwatch, sources, ranges):
    """Stream each source over each range and compare it, piece by piece, with
    pmemsave. sources: {name: [args before ADDR]}."""
    for start, end in ranges:
        procs = {name: subprocess.Popen([vmwatch, 'phys', *args, hex(start), str(end - start)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for name, args in sources.items()}
        try:
            for addr in range(start, end, CHUNK):
                n = min(CHUNK, end - addr)
                truth = pmem(guest, addr, n)
                assert len(truth) == n
                for name, p in procs.items():
                    t0 = time.monotonic()
                    got = p.stdout.read(n)
                    THROUGHPUT[name][0] += len(got)
                    THROUGHPUT[name][1] += time.monotonic() - t0
                    if got != truth:
                        p.kill()
                        err = p.communicate()[1].decode()
                        off = first_diff(got, truth)
                        pytest.fail(f'{name} ({" ".join(sources[name])}): {len(got)} of {n} bytes at '
                                    f'{addr:#x}, first difference at guest-physical {addr + off:#x}; '
                                    f'stderr: {err}')
            for name, p in procs.items():
                rest, err = p.communicate(timeout=60)
                assert rest == b'' and p.returncode == 0, f'{name}: rc={p.returncode} {err.decode()}'
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()


WINDOW = 64 * MiB


def windows(ranges):
    """Ranges to compare: all of them up to 1 GiB of RAM in total; beyond,
    WINDOW-sized pieces at both ends of every range and at two fixed points
    inside it (1/3 and 2/3, page-aligned), merged where they touch."""
    if sum(e - s for s, e in ranges) <= GiB:
        return ranges
    out = []
    for s, e in ranges:
        picks = [s, e - WINDOW] + [(s + (e - s) * k // 3) & ~0xfff for k in (1, 2)]
        for a in sorted(max(s, p) for p in picks):
            b = min(e, a + WINDOW)
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
    return out


def subtract(ranges, minus):
    """ranges minus the union of `minus` (both sorted lists of [start, end))."""
    out = []
    for s, e in ranges:
        for ms, me in minus:
            if me <= s or ms >= e:
                continue
            if ms > s:
                out.append((s, ms))
            s = max(s, me)
        if s < e:
            out.append((s, e))
    return out


@pytest.fixture(scope='module')
def report():
    yield
    for name, (nbytes, secs) in sorted(THROUGHPUT.items()):
        if secs:
            print(f'\n  {name}: {nbytes / MiB:.0f} MiB in {secs:.1f} s of reading = '
                  f'{nbytes / MiB / secs:.0f} MiB/s (through a pipe into Python)')


def lab_guest(guest, fresh_guest, machine, mem, backing):
    """512 MiB guests come from the session's shared `guest` factory. 5 GiB
    guests are private to the test and shut down right after it: read in
    full, a shared-file or memfd guest pins all of its RAM, and several kept
    alive at once would not fit in the machine's 24 GiB."""
    boot = guest if mem == '512M' else fresh_guest
    return boot(mem=mem, machine=machine, backing=backing)


def check_holes(vmwatch, targets, ranges):
    """Reads that touch a hole (legacy window, PCI hole, past the end) fail
    with exit 1 and write nothing."""
    holes = [LEGACY[0]] + [e for s, e in ranges]
    for hole in holes:
        for target in targets:
            p = run(vmwatch, target, hex(hole - 16), '32')
            err = p.stderr.decode()
            assert p.returncode == 1, (target, hex(hole), err)
            assert p.stdout == b''
            assert f'vmwatch: {hole:#x} is not guest RAM (RAM ranges: ' in err
            assert 'nothing written' in err


def check_shared_file_guest(g, vmwatch, tmp_path_factory, machine, mem):
    want = LAYOUTS[(machine, mem)]
    pretty = mem.replace('M', ' MiB').replace('G', ' GiB')
    assert g.ram_path and os.path.getsize(g.ram_path) == sum(e - s for s, e in want) + LEGACY[1] - LEGACY[0]

    desc, ranges = ranges_of(vmwatch, f'qemu:{g.pid}')
    assert ranges == want
    assert desc == f'qemu:{g.pid}, shared file {g.ram_path}, {machine} layout, {pretty} RAM'
    desc, ranges = ranges_of(vmwatch, f'file:{g.ram_path}')
    assert ranges == want
    assert desc == f'RAM file {g.ram_path} of qemu:{g.pid}, {machine} layout, {pretty} RAM'
    desc, ranges = ranges_of(vmwatch, '--process-read', f'qemu:{g.pid}')
    assert ranges == want
    assert desc.startswith(f'qemu:{g.pid}, shared {g.ram_path} read with process_vm_readv, ')

    elf = tmp_path_factory.mktemp('dump') / 'guest.elf'
    try:
        with g.paused():
            g.dump_guest_memory(elf)
            desc, elf_ranges = ranges_of(vmwatch, f'file:{elf}')
            assert desc.startswith(f'ELF core {elf}, ')
            # the dump holds all of RAM, plus device memory (VGA RAM, BIOS)
            assert subtract(want, elf_ranges) == []
            compare_with_pmemsave(g, vmwatch, {
                'file: shared RAM file': [f'file:{g.ram_path}'],
                'qemu: shared mapping': [f'qemu:{g.pid}'],
                'qemu: --process-read': ['--process-read', f'qemu:{g.pid}'],
                'file: ELF core': [f'file:{elf}'],
            }, windows(want))
            # what only the dump has (legacy window, VGA RAM, BIOS) matches too
            compare_with_pmemsave(g, vmwatch, {'file: ELF core': [f'file:{elf}']},
                                  subtract(elf_ranges, want))
    finally:
        if elf.exists():
            elf.unlink()
    check_holes(vmwatch, [f'qemu:{g.pid}', f'file:{g.ram_path}'], want)


def check_process_guest(g, vmwatch, machine, mem, backing):
    desc, ranges = ranges_of(vmwatch, f'qemu:{g.pid}')
    assert ranges == LAYOUTS[(machine, mem)]
    if backing == 'memfd':
        assert desc.startswith(f'qemu:{g.pid}, memfd ')
    else:
        assert desc.startswith(f'qemu:{g.pid}, private memory read with process_vm_readv, ')
    with g.paused():
        compare_with_pmemsave(g, vmwatch, {f'qemu: {backing}': [f'qemu:{g.pid}']}, windows(ranges))
    check_holes(vmwatch, [f'qemu:{g.pid}'], ranges)


@pytest.mark.parametrize('backing', ['shm', 'memfd', 'private'])
@pytest.mark.parametrize('machine,mem', [
    pytest.param(m, s, id=f'{m}-{s}', marks=[pytest.mark.slow] if s != '512M' else [])
    for m, s in CONFIGS])
def test_every_source_matches_pmemsave(guest, fresh_guest, vmwatch, tmp_path_factory, report,
                                       machine, mem, backing):
    g = lab_guest(guest, fresh_guest, machine, mem, backing)
    if backing == 'shm':
        check_shared_file_guest(g, vmwatch, tmp_path_factory, machine, mem)
    else:
        check_process_guest(g, vmwatch, machine, mem, backing)


@pytest.fixture(scope='module')
def small(guest):
    return guest(mem='512M', machine='pc', backing='shm')


def test_bad_targets_exit_2_with_a_message(vmwatch, small, tmp_path):
    truncated = tmp_path / 'truncated.elf'
    elf = tmp_path / 'full.elf'
    small.dump_guest_memory(str(elf))
    with open(elf, 'rb') as f:
        truncated.write_bytes(f.read(MiB))  # headers intact, segments cut off
    elf.unlink()
    with open(f'/proc/{os.getpid()}/cmdline', 'rb') as f:
        me = os.path.basename(f.read().split(b'\0')[0].decode())

    cases = [
        ('qemu:999999999', 'no process with PID 999999999'),
        (f'qemu:{os.getpid()}', f'PID {os.getpid()} is not a QEMU process (its command is'),
        (f'qemu:{os.getpid()}', me),
        ('qemu:abc', 'not a process id'),
        ('file:/nonexistent/ram', '/nonexistent/ram: no such file'),
        (f'file:{tmp_path}', 'is a directory'),
        (f'file:{truncated}', f'{truncated}: segment'),
        (f'file:{truncated}', 'truncated dump?'),
        # Other names are libvirt domains (phys opens targets like ps does).
        ('vm1', 'cannot connect to libvirt'),
    ]
    no_libvirt = dict(os.environ, LIBVIRT_DEFAULT_URI='qemu+unix:///system?socket=/nonexistent/sock')
    for target, message in cases:
        p = run(vmwatch, target, '0', '16', env=no_libvirt)
        err = p.stderr.decode()
        assert p.returncode == 2, (target, err)
        assert p.stdout == b''
        assert err.startswith('vmwatch: ') and err.count('\n') == 1, err
        assert message in err, (target, err)


def test_kdump_compressed_dump_is_refused_with_advice(vmwatch, small, tmp_path):
    path = tmp_path / 'guest.kdump'
    small.qmp('dump-guest-memory', paging=False, protocol=f'file:{path}', format='kdump-zlib')
    p = run(vmwatch, f'file:{path}', '0', '16')
    assert p.returncode == 2
    err = p.stderr.decode()
    assert 'kdump-compressed' in err and '--format elf' in err and 'dump-guest-memory' in err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('setpriv'), reason='needs root and setpriv')
def test_permission_denied_says_run_as_root(vmwatch, small):
    nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', vmwatch, 'phys']
    p = subprocess.run([*nobody, '--ranges', f'qemu:{small.pid}'], capture_output=True)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert f'/proc/{small.pid}/' in err and 'permission denied' in err and 'run as root' in err, err
    if os.stat(small.ram_path).st_mode & 0o004 == 0:
        p = subprocess.run([*nobody, '--ranges', f'file:{small.ram_path}'], capture_output=True)
        assert p.returncode == 2 and 'permission denied' in p.stderr.decode()


def hexdump_c(data, base):
    """What `hexdump -C` prints, with offsets starting at base."""
    lines, prev, star = [], None, False
    for i in range(0, len(data), 16):
        row = data[i:i + 16]
        if len(row) == 16 and row == prev:
            if not star:
                lines.append('*')
            star = True
            continue
        star = False
        prev = row
        hexes = ' '.join(f'{b:02x}' for b in row[:8]) + '  ' + ' '.join(f'{b:02x}' for b in row[8:])
        text = ''.join(chr(b) if 0x20 <= b < 0x7F else '.' for b in row)
        lines.append(f'{base + i:08x}  {hexes:<48}  |{text}|')
    lines.append(f'{base + len(data):08x}')
    return '\n'.join(lines) + '\n'


def test_hex_output(vmwatch, small, tmp_path):
    # guest memory: offsets are guest-physical addresses
    addr, n = 0x100000, 0x123
    with small.paused():
        raw = run(vmwatch, f'qemu:{small.pid}', hex(addr), hex(n))
        hexed = run(vmwatch, '--hex', f'qemu:{small.pid}', hex(addr), hex(n))
    assert raw.returncode == 0 and hexed.returncode == 0
    assert hexed.stdout.decode() == hexdump_c(raw.stdout, addr)
    assert hexed.stdout.decode().startswith('00100000  ')

    # a known image: repeated lines squeeze to '*', partial last line, like hexdump -C
    data = b'A' * 16 + bytes(64) + b'hello, world\x00\x01\x7f\xff' + b'tail'
    img = tmp_path / 'img.raw'
    img.write_bytes(data)
    p = run(vmwatch, '--hex', f'file:{img}', '0', str(len(data)))
    assert p.returncode == 0
    assert p.stdout.decode() == hexdump_c(data, 0)
    if shutil.which('hexdump'):
        assert p.stdout == subprocess.run(['hexdump', '-C', str(img)], capture_output=True).stdout
    assert '*\n' in p.stdout.decode()


def test_ranges_layout_option_and_sizes(vmwatch, small, tmp_path):
    # a file with no known header is a flat raw image by definition
    junk = tmp_path / 'junk.bin'
    junk.write_bytes(os.urandom(12288))
    desc, ranges = ranges_of(vmwatch, f'file:{junk}')
    assert ranges == [(0, 12288)] and desc == f'raw image {junk}, flat (file offset = guest-physical address), 12 KiB'
    assert run(vmwatch, f'file:{junk}', '4K', '4K').stdout == junk.read_bytes()[4096:8192]

    # a RAM file read with an explicit layout, and LEN/ADDR suffixes
    desc, ranges = ranges_of(vmwatch, '--layout', 'flat', f'file:{small.ram_path}')
    assert ranges == [(0, 512 * MiB)] and 'flat' in desc
    desc, ranges = ranges_of(vmwatch, '--layout', 'q35', f'file:{small.ram_path}')
    assert ranges == LAYOUTS[('pc', '512M')] and 'q35 layout' in desc
    p = run(vmwatch, f'file:{small.ram_path}', '1M', '4K')
    assert p.returncode == 0 and len(p.stdout) == 4096
    p = run(vmwatch, '--layout', 'isapc', f'file:{small.ram_path}', '0', '1')
    assert p.returncode == 2 and 'unknown layout' in p.stderr.decode()
    p = run(vmwatch, f'qemu:{small.pid}', '0')
    assert p.returncode == 2
    p = run(vmwatch, '--help')
    assert p.returncode == 0 and b'Usage: vmwatch phys' in p.stdout
