#!/bin/bash
# Install what vmwatch needs on Debian 12 and build it (build/ and, with
# --asan, the sanitizer build build-asan/). Idempotent: skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  # build
  gcc meson ninja-build pkg-config
  # libraries, each for one job
  libbpf-dev        # parse the guest kernel's BTF
  libjansson-dev    # JSON output
  libcmocka-dev     # unit tests
  libvirt-dev libxml2-dev   # finding VMs through libvirt; parsing domain XML
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients   # real libvirtd for tests
  libmicrohttpd-dev libncurses-dev  # the agent's HTTP server; top's terminal view
  libcurl4-gnutls-dev libgnutls28-dev  # vmwatch-controller: requests to Keystone and agents; token hashes, mTLS
  python3-keystone uwsgi-core uwsgi-plugin-python3  # tests: a real Keystone for the controller
  prometheus chromium chromium-driver openssl  # tests: promtool, the web page in a real browser, TLS
  python3-jsonschema python3-yaml  # tests: JSON output against docs/schemas/; promtool rule tests
  libclang-rt-14-dev clang  # fuzzing (libFuzzer) and sanitizers
  # the lab: real guests under QEMU
  qemu-system-x86 busybox-static cpio xz-utils zstd
  mmdebstrap        # the lab's Debian 12 guest (systemd), built from the Debian archive
  python3 python3-pytest
  tmux
  # tests: the Debian package (tests/integration/test_package.py)
  debhelper dpkg-dev lintian bash-completion procps
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq || { echo "setup: apt-get update failed: is the Debian archive reachable?" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null
if [ "${1:-}" = "--asan" ]; then
  [ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debugoptimized \
      -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
  ninja -C build-asan >/dev/null
  # The libFuzzer target (clang, ASan+UBSan) for tests/integration/test_fuzz.py.
  tests/fuzz/setup.sh >/dev/null
fi
echo "setup: built build/vmwatch${1:+ and build-asan/vmwatch}" >&2
