#!/bin/bash
# Configure and build the fuzz build directory (default build-fuzz): clang,
# the library and the targets with ASan + UBSan (UB is fatal) and libFuzzer
# coverage. Idempotent. Prints nothing on success.
#   tests/fuzz/setup.sh [BUILDDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build-fuzz}
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dfuzz=true -Dtests=false --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="-fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist=$PWD/tests/fuzz/coverage-ignore.txt -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    >/dev/null
fi
# quiet on success; ninja's output on failure
if ! out=$(ninja -C "$dir" -j2 tests/fuzz/fuzz_walk tests/fuzz/make_seed tests/fuzz/fuzz_btf \
    tests/fuzz/make_btf_seed tests/fuzz/fuzz_cache tests/fuzz/make_cache_seed \
    tests/fuzz/fuzz_vmcoreinfo tests/fuzz/fuzz_frame tests/fuzz/make_frame_seed 2>&1); then
  printf '%s\n' "$out" >&2
  exit 1
fi
