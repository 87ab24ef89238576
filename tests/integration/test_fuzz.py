"""Fuzzing discovery + the process walk (libFuzzer, ASan + UBSan) over mutated
guest-memory images, seeded from real Debian 6.1 and 6.12 guests.

  - build-fuzz/ (clang, sanitizers, libFuzzer coverage) is built by
    tests/fuzz/setup.sh if it is not there yet;
  - make_seed traces the pages that discovery and a walk (threads, command
    lines) read in a paused guest and writes them as a sparse image (a few
    MiB, made here rather than kept in the repository); once more with the
    structural kallsyms fallback;
  - the fuzz target run on an unmutated seed alone finds the guest's
    processes (the same ones as on the whole guest, and those of its /proc);
  - the fuzzer runs for a bounded time on each seed: it must exit 0 with no
    crash-, timeout-, leak- or oom- artifact. An input taking more than
    max(5 s, 10x the seed's own run) counts as a hang.

The fast targets (thousands of inputs a second, no guest memory image):
  - fuzz_btf: seeds are the BTF of the lab's 6.1 and 6.12 kernels (the .BTF
    section of the vmlinux inside the Debian vmlinuz), reduced by
    make_btf_seed to the types the Linux model asks about; the seed must
    answer every query as the whole BTF does (make_btf_seed checks), then the
    fuzzer runs VMWATCH_FUZZ_FAST_SECONDS (default 25) on both seeds;
  - fuzz_cache: seeds are the discovery-cache entry, layout memo and hint that
    `vmwatch ps` writes for the 6.1 and 6.12 guests (XDG_CACHE_HOME in a
    private directory), reduced by make_cache_seed; the seed must load whole,
    then the fuzzer runs VMWATCH_FUZZ_FAST_SECONDS;
  - fuzz_vmcoreinfo: seeds are the VMCOREINFO texts those cache entries hold;
    15 s;
  - fuzz_frame: the bytes a privilege-separated sampler sends the agent's
    front (src/sampler/wire.c); seeds are two frames of the 6.1 guest
    (make_frame_seed, with command lines and threads); 15 s.

VMWATCH_FUZZ_SECONDS (default 60) is fuzz_walk's fuzzing time, split across
the seeds; VMWATCH_FUZZ_BUILD (default build-fuzz) the build directory.
Longer runs: tests/fuzz/README.md.
"""
import lzma
import math
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KERNELS = ['6.1', '6.12']
MAX_LEN = 24 << 20
FUZZ_SECONDS = float(os.environ.get('VMWATCH_FUZZ_SECONDS', '60'))
FAST_SECONDS = float(os.environ.get('VMWATCH_FUZZ_FAST_SECONDS', '25'))


@pytest.fixture(scope='session')
def fuzz_build():
    if not shutil.which('clang'):
        pytest.skip('clang is not installed (scripts/setup.sh installs it)')
    build = Path(os.environ.get('VMWATCH_FUZZ_BUILD') or REPO / 'build-fuzz')
    if not build.is_absolute():
        build = REPO / build
    p = subprocess.run([str(REPO / 'tests/fuzz/setup.sh'), str(build)], capture_output=True,
                       text=True, timeout=1800)
    assert p.returncode == 0, f'tests/fuzz/setup.sh failed:\n{p.stdout}\n{p.stderr}'
    return build / 'tests' / 'fuzz'


def fuzz_env(**extra):
    env = dict(os.environ)
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
    env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1')
    env.update(extra)
    return env


def parse_walk(text):
    """procs=N ... from a fuzz_result_print() block."""
    m = re.search(r'walk: procs=(\d+) threads=(\d+) cmdlines=(\d+) skipped=(\d+) '
                  r'truncated=(\d) fingerprint=([0-9a-f]+)', text)
    assert m, f'no walk result in:\n{text}'
    return {'procs': int(m[1]), 'threads': int(m[2]), 'cmdlines': int(m[3]),
            'skipped': int(m[4]), 'truncated': m[5] == '1', 'fingerprint': m[6]}


def make_seed(fuzz, g, out, *args):
    with g.paused():
        p = subprocess.run([str(fuzz / 'make_seed'), *args, f'file:{g.ram_path}', str(out)],
                           capture_output=True, text=True, timeout=600, env=fuzz_env())
    assert p.returncode == 0, f'make_seed {" ".join(args)} failed:\n{p.stderr}'
    # the first result block is the run on the whole guest
    whole = parse_walk(p.stderr.split('make_seed: image of')[0])
    return whole, p.stderr


def run_seed(fuzz, seed):
    """The fuzz target on one unmutated input: (result, processes, ms)."""
    p = subprocess.run([str(fuzz / 'fuzz_walk'), str(seed)], capture_output=True, text=True,
                       timeout=300, env=fuzz_env(FUZZ_VERBOSE='2'))
    assert p.returncode == 0, p.stderr
    procs = {}
    for line in p.stderr.splitlines():
        if line.startswith('proc '):
            _, pid, ppid, nthreads, comm = line.split(' ', 4)
            procs[int(pid)] = (int(ppid), int(nthreads), comm)
    ms = int(re.search(r'Executed .* in (\d+) ms', p.stderr)[1])
    return parse_walk(p.stderr), procs, ms, p.stderr


@pytest.fixture(scope='module', params=KERNELS)
def seeded(request, guest, fuzz_build, tmp_path_factory):
    """A shared guest of that kernel, its /proc, and seeds made from it."""
    kernel = request.param
    g = guest(kernel=kernel, mem='512M', machine='pc', backing='shm')
    d = tmp_path_factory.mktemp(f'seed-{kernel}')
    truth = g.truth()
    seed, fallback = d / 'seed.img', d / 'fallback.img'
    whole, log = make_seed(fuzz_build, g, seed)
    whole_fb, log_fb = make_seed(fuzz_build, g, fallback, '--fallback')
    yield {'kernel': kernel, 'guest': g, 'truth': truth, 'dir': d, 'seed': seed,
           'fallback': fallback, 'whole': whole, 'whole_fb': whole_fb, 'log': log}
    shutil.rmtree(d, ignore_errors=True)


def test_seed_alone_finds_the_guests_processes(seeded, fuzz_build):
    seed, truth = seeded['seed'], seeded['truth']
    size = seed.stat().st_size
    assert 1 << 20 < size < MAX_LEN, f'seed of {size} bytes'
    got, procs, ms, log = run_seed(fuzz_build, seed)
    print(f"\n  {seeded['kernel']}: seed of {size / 2**20:.1f} MiB, {got['procs']} processes, "
          f"{got['threads']} threads, {got['cmdlines']} command lines, {ms} ms per run")
    assert 'kallsyms via VMCOREINFO' in log
    # exactly what the walk finds on the whole guest
    assert got == seeded['whole'], log
    assert not got['truncated'] and got['skipped'] == 0
    assert len(procs) == got['procs'] and got['cmdlines'] > 0
    # and what the guest's own /proc showed just before the pause
    want = {pid: p for pid, p in truth.procs.items() if pid != truth.agent_pid}
    common = set(want) & set(procs)
    assert {1, 2} <= common
    assert len(common) >= 0.9 * len(want), (sorted(want), sorted(procs))
    assert len(common) >= 0.9 * len(procs), (sorted(want), sorted(procs))
    for pid in common:
        if not want[pid].kthread:
            assert procs[pid][2] == want[pid].comm, pid
            assert procs[pid][0] == want[pid].ppid, pid


def test_fallback_seed_alone_finds_the_same_processes(seeded, fuzz_build):
    got, procs, ms, log = run_seed(fuzz_build, seeded['fallback'])
    assert 'kallsyms located by structure' in log
    assert got == seeded['whole_fb'] == seeded['whole']


def test_fuzzing_finds_no_crash_or_hang(seeded, fuzz_build, tmp_path):
    seconds = max(5, int(FUZZ_SECONDS / len(KERNELS)))
    _, _, ms, _ = run_seed(fuzz_build, seeded['seed'])
    timeout = max(5, math.ceil(10 * ms / 1000))
    seeds, corpus, art = tmp_path / 'seeds', tmp_path / 'corpus', tmp_path / 'artifacts'
    for x in (seeds, corpus, art):
        x.mkdir()
    shutil.copy(seeded['seed'], seeds / 'seed.img')
    # libFuzzer keeps its corpus of multi-MiB images in memory: ~200 new ones
    # in 300 s passed 2 GiB (tests/fuzz/README.md); a single huge allocation
    # is still flagged by -malloc_limit_mb.
    rss_mb = 2048 if seconds <= 60 else 6144
    argv = [str(fuzz_build / 'fuzz_walk'), f'-max_len={MAX_LEN}', f'-timeout={timeout}',
            f'-rss_limit_mb={rss_mb}', '-malloc_limit_mb=2048', f'-max_total_time={seconds}',
            '-print_final_stats=1',
            f'-artifact_prefix={art}/', str(corpus), str(seeds)]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 300,
                           env=fuzz_env())
        log = p.stderr
        artifacts = sorted(x.name for x in art.iterdir())
        stats = dict(re.findall(r'^stat::(\w+):\s*(\d+)', log, re.M))
        print(f"\n  {seeded['kernel']}: {stats.get('number_of_executed_units')} inputs in "
              f"{stats.get('average_exec_per_sec')}/s, "
              f"{len(list(corpus.iterdir()))} new, timeout {timeout} s, "
              f"{log.strip().splitlines()[-1] if log.strip() else ''}")
        tail = '\n'.join(log.splitlines()[-60:])
        assert not artifacts, f'fuzzer artifacts {artifacts}:\n{tail}'
        assert p.returncode == 0, f'fuzzer exited {p.returncode}:\n{tail}'
        assert int(stats.get('number_of_executed_units', 0)) > 1, tail
    finally:
        # new inputs are a few MiB each: do not leave them to pytest's tmp retention
        shutil.rmtree(corpus, ignore_errors=True)


# ---- fast targets: fuzz_btf, fuzz_cache --------------------------------------

def run_fuzzer(fuzz, target, seeds_dir, tmp_path, seconds, *extra):
    """Run a libFuzzer target for `seconds` on a seed directory; assert it
    exits 0 leaving no artifact. Returns the final stats."""
    corpus, art = tmp_path / 'corpus', tmp_path / 'artifacts'
    corpus.mkdir()
    art.mkdir()
    argv = [str(fuzz / target), '-timeout=10', '-rss_limit_mb=2048',
            f'-max_total_time={int(seconds)}', '-print_final_stats=1',
            f'-artifact_prefix={art}/', *extra, str(corpus), str(seeds_dir)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 300, env=fuzz_env())
    log = p.stderr
    stats = dict(re.findall(r'^stat::(\w+):\s*(\d+)', log, re.M))
    artifacts = sorted(x.name for x in art.iterdir())
    tail = '\n'.join(log.splitlines()[-60:])
    cov = re.findall(r'cov: (\d+)', log)
    print(f"\n  {target}: {stats.get('number_of_executed_units')} inputs, "
          f"{stats.get('average_exec_per_sec')}/s, {len(list(corpus.iterdir()))} new, "
          f"cov {cov[-1] if cov else '?'}")
    assert not artifacts, f'fuzzer artifacts {artifacts}:\n{tail}'
    assert p.returncode == 0, f'fuzzer exited {p.returncode}:\n{tail}'
    assert int(stats.get('number_of_executed_units', 0)) > 100, tail
    return stats


def vmlinux_btf(vmlinuz):
    """The .BTF section of the vmlinux inside a bzImage (xz or zstd)."""
    data = Path(vmlinuz).read_bytes()
    i = data.find(b'\xfd7zXZ\x00')
    if i >= 0:
        elf = lzma.LZMADecompressor().decompress(data[i:])
    else:
        i = data.find(b'\x28\xb5\x2f\xfd')
        if i < 0 or not shutil.which('zstd'):
            pytest.skip(f'{vmlinuz}: no xz payload, and no zstd payload or zstd tool')
        # the payload is followed by other bytes: zstd stops at the frame's end
        elf = subprocess.run(['zstd', '-dc'], input=data[i:], capture_output=True).stdout
    assert elf[:4] == b'\x7fELF', vmlinuz
    shoff, = struct.unpack_from('<Q', elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', elf, 0x3a)
    secs = [struct.unpack_from('<IIQQQQIIQQ', elf, shoff + k * shentsize) for k in range(shnum)]
    names = secs[shstrndx][4]
    for sec in secs:
        name = elf[names + sec[0]:elf.index(b'\0', names + sec[0])]
        if name == b'.BTF':
            return elf[sec[4]:sec[4] + sec[5]]
    pytest.skip(f'{vmlinuz}: no .BTF section')


@pytest.fixture(scope='module')
def btf_seeds(lab, fuzz_build, tmp_path_factory):
    d = tmp_path_factory.mktemp('btf-seeds')
    for k in KERNELS:
        whole = d / f'whole-{k}.btf'
        whole.write_bytes(vmlinux_btf(lab.kernel(k)))
        p = subprocess.run([str(fuzz_build / 'make_btf_seed'), str(whole), str(d / f'seed-{k}.btf')],
                           capture_output=True, text=True, timeout=600, env=fuzz_env())
        assert p.returncode == 0, p.stderr
        print(f'\n  {k}: {p.stderr.strip()}')
        whole.unlink()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_btf_seeds_answer_the_models_queries(btf_seeds, fuzz_build):
    for k in KERNELS:
        p = subprocess.run([str(fuzz_build / 'fuzz_btf'), str(btf_seeds / f'seed-{k}.btf')],
                           capture_output=True, text=True, timeout=120,
                           env=fuzz_env(FUZZ_VERBOSE='1'))
        assert p.returncode == 0, p.stderr
        assert 'parse: 0' in p.stderr
        for line in ('M task_struct pid: 0 ', 'M task_struct se.sum_exec_runtime: 0 ',
                     'M mm_struct rss_stat: 0 ', 'E MM_ANONPAGES: 0 ', 'S zone: 0 ',
                     'T tk_core: 0 '):
            assert line in p.stderr, (k, line, p.stderr[-3000:])


def test_fuzz_btf_finds_no_crash_or_hang(btf_seeds, fuzz_build, tmp_path):
    run_fuzzer(fuzz_build, 'fuzz_btf', btf_seeds, tmp_path, FAST_SECONDS, '-max_len=200000')


@pytest.fixture(scope='module')
def cache_seeds(guest, vmwatch, fuzz_build, tmp_path_factory):
    """Cache files `vmwatch ps` writes for each lab kernel, as fuzz_cache seeds."""
    d = tmp_path_factory.mktemp('cache-seeds')
    xdg = d / 'xdg'
    xdg.mkdir(mode=0o700)
    seeds = d / 'seeds'
    seeds.mkdir()
    for k in KERNELS:
        g = guest(kernel=k, mem='512M', machine='pc', backing='shm')
        p = subprocess.run([str(vmwatch), 'ps', f'file:{g.ram_path}'], capture_output=True,
                           text=True, timeout=300, env=dict(os.environ, XDG_CACHE_HOME=str(xdg)))
        assert p.returncode == 0, p.stderr
    disc = xdg / 'vmwatch' / 'discovery'
    entries = sorted(x for x in disc.iterdir() if re.fullmatch(r'[0-9a-f]+-[0-9a-f]+', x.name))
    assert len(entries) == len(KERNELS), sorted(disc.iterdir())
    vmci = d / 'vmcoreinfo'
    vmci.mkdir()
    for e in entries:
        build_id = e.name.split('-')[0]
        # the entry's VMCOREINFO text (struct vmw_kcache_disk_header in
        # kernel_internal.h: 136 bytes, symbols_from_len and text_len at 104),
        # a fuzz_vmcoreinfo seed
        head = e.read_bytes()[:1 << 16]
        sf_len, text_len = struct.unpack_from('<II', head, 104)
        (vmci / build_id).write_bytes(head[136 + sf_len:136 + sf_len + text_len])
        p = subprocess.run([str(fuzz_build / 'make_cache_seed'), str(e), str(disc / f'{build_id}.layout'),
                            str(seeds / f'seed-{build_id}')],
                           capture_output=True, text=True, timeout=300, env=fuzz_env())
        assert p.returncode == 0, p.stderr
        print(f'\n  {p.stderr.strip()}')
    yield {'cache': seeds, 'vmcoreinfo': vmci}
    shutil.rmtree(d, ignore_errors=True)


def test_cache_seeds_load_whole(cache_seeds, fuzz_build):
    for seed in sorted(cache_seeds['cache'].iterdir()):
        p = subprocess.run([str(fuzz_build / 'fuzz_cache'), str(seed)], capture_output=True,
                           text=True, timeout=120, env=fuzz_env(FUZZ_VERBOSE='1'))
        assert p.returncode == 0, p.stderr
        assert re.search(r'^entry: 0 \d+ symbols', p.stderr, re.M), p.stderr
        assert re.search(r'^memo: 0, [1-9]\d* answers', p.stderr, re.M), p.stderr
        assert re.search(r'^hint: 0 ', p.stderr, re.M), p.stderr


def test_fuzz_cache_finds_no_crash_or_hang(cache_seeds, fuzz_build, tmp_path):
    run_fuzzer(fuzz_build, 'fuzz_cache', cache_seeds['cache'], tmp_path, FAST_SECONDS,
               '-max_len=65536')


def test_fuzz_vmcoreinfo_finds_no_crash_or_hang(cache_seeds, fuzz_build, tmp_path):
    for seed in cache_seeds['vmcoreinfo'].iterdir():
        assert seed.read_bytes().startswith(b'OSRELEASE='), seed
    run_fuzzer(fuzz_build, 'fuzz_vmcoreinfo', cache_seeds['vmcoreinfo'], tmp_path,
               min(FAST_SECONDS, 15), '-max_len=4096',
               f"-dict={REPO / 'tests/fuzz/vmcoreinfo.dict'}")


@pytest.fixture(scope='session')
def frame_seeds(guest, fuzz_build, tmp_path_factory):
    """Two encoded frames of the 6.1 guest (the second with rates and events)."""
    d = tmp_path_factory.mktemp('frame-seeds')
    g = guest(kernel='6.1', mem='512M', machine='pc', backing='shm')
    p = subprocess.run([str(fuzz_build / 'make_frame_seed'), f'file:{g.ram_path}', str(d)],
                       capture_output=True, text=True, timeout=300, env=fuzz_env())
    assert p.returncode == 0, p.stderr
    return d


def test_frame_seeds_decode(frame_seeds, fuzz_build):
    """An unmutated frame runs through the target (decode, invariants, encode again) cleanly."""
    for seed in sorted(frame_seeds.iterdir()):
        assert seed.stat().st_size > 10000, seed   # a real guest's processes, not a stub
        p = subprocess.run([str(fuzz_build / 'fuzz_frame'), str(seed)], capture_output=True, text=True,
                           timeout=60, env=fuzz_env())
        assert p.returncode == 0, p.stderr[-3000:]


def test_fuzz_frame_finds_no_crash_or_hang(frame_seeds, fuzz_build, tmp_path):
    run_fuzzer(fuzz_build, 'fuzz_frame', frame_seeds, tmp_path, min(FAST_SECONDS, 15), '-max_len=1048576')
