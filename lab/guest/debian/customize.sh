#!/bin/sh
# Turns the mmdebstrap tree $1 into the lab's Debian guest; $2 holds the
# staged files (units, the lab's programs in usr/local/bin). Run by
# lab/vmlab/debian.py as an mmdebstrap customize hook (as root).
set -eu
root=$1 stage=$2
cp -a "$stage/." "$root/"
echo vmwatch-debian > "$root/etc/hostname"
# A fixed machine id: no first-boot units, the same id on every boot.
echo 5d0b7c1e3a2f4e6b8c9d0a1b2c3d4e5f > "$root/etc/machine-id"
: > "$root/etc/fstab"
# The kernel runs /init from the initramfs: systemd as PID 1.
ln -sf /lib/systemd/systemd "$root/init"
chroot "$root" groupadd -g 1100 devs
chroot "$root" useradd -m -u 1001 -G devs -s /bin/bash -c "Alice Lab" alice
chroot "$root" useradd -m -u 1002 -G devs -s /bin/bash -c "Bob Lab" bob
# alice lingers: user@1001.service (systemd --user, "(sd-pam)") runs at boot.
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/alice"
chroot "$root" systemctl enable vmw-truth.service alice-hog.service bob-worker.service bob-loop.service
# Nothing that starts at random times (apt's timers).
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer
# Smaller image: no hardware database, no apt caches.
rm -rf "$root/usr/lib/udev/hwdb.bin" "$root/usr/lib/udev/hwdb.d" "$root/var/lib/apt/lists/"* \
	"$root/var/cache/apt/"*.bin "$root/var/cache/debconf/"*-old
