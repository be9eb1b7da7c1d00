#!/bin/sh
# Downloads the Debian packages the test guest is made of into CACHE and
# unpacks each into CACHE/<package>/ (dpkg -x; nothing is installed).
#   fetch-debs.sh CACHE
# linux-image-amd64 is a meta package: the versioned package it depends on
# is the one with the kernel and modules.
set -eu
cache=$1
mkdir -p "$cache"
cd "$cache"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
    apt-get update -qq >/dev/null
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kpkg" ] || { echo "fetch-debs: cannot resolve linux-image-amd64" >&2; exit 1; }
for pkg in "$kpkg" busybox-static; do
    if [ ! -f "$pkg.unpacked" ]; then
        rm -rf "$pkg" ./"$pkg"_*.deb
        apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null
        dpkg -x ./"$pkg"_*.deb "$pkg"
        touch "$pkg.unpacked"
    fi
done
echo "$kpkg" > kernel-package
