#!/bin/sh
# Installs the host tools the image build and the guest boot need, if missing.
# Debian packages only; run as root (CI and the dev machines are root).
set -eu
need=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
command -v cpio >/dev/null 2>&1 || need="$need cpio"
command -v modinfo >/dev/null 2>&1 || [ -x /usr/sbin/modinfo ] || [ -x /sbin/modinfo ] || need="$need kmod"
[ -z "$need" ] && exit 0
echo "vm-images: installing$need" >&2
apt-get update -qq >/dev/null
# --no-install-recommends: the full set of recommends of qemu failed once with a dpkg error.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
