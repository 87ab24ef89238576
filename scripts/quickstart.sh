#!/bin/bash
# The main job on a fresh Debian 12 machine: install, build, make sure a lab
# guest runs (boots one when no VM exists), then show its processes.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

pid=$(lab/vmlab list --pids 2>/dev/null | head -n1 || true)
if [ -z "$pid" ]; then
  echo "quickstart: no lab VM running; booting one (Debian 6.1 kernel, 512 MiB, TCG)..." >&2
  lab/vmlab boot --name quickstart --kernel 6.1 --mem 512M --run 'swarm 50' >/dev/null
  pid=$(lab/vmlab list --pids | head -n1)
fi
echo "quickstart: QEMU pid $pid" >&2
./build/vmwatch info "qemu:$pid"
echo
./build/vmwatch ps "qemu:$pid"
echo
echo "quickstart: the guest keeps running; stop it with: lab/vmlab stop --all" >&2
