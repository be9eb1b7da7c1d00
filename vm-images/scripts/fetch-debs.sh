#!/bin/sh
# Downloads the Debian packages the test guest is made of into CACHE and
# unpacks each into CACHE/<package>/ (dpkg -x; nothing is installed).
#   fetch-debs.sh CACHE [SUITE]
# linux-image-amd64 is a meta package: the versioned package it depends on
# is the one with the kernel and modules.
# SUITE (e.g. trixie): take both packages from that Debian release instead of
# the machine's own apt sources. apt then reads a private sources list and
# keeps its package lists under CACHE/apt/ (options on the command line):
# the machine's apt configuration is not touched.
set -eu
cache=$1 suite=${2:-}
mkdir -p "$cache"
cd "$cache"
set --
if [ -n "$suite" ]; then
    apt_dir=$(pwd)/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/sources.list.d"
    touch "$apt_dir/status"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
        > "$apt_dir/sources.list"
    set -- -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts="$apt_dir/sources.list.d" \
        -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status" \
        -o Dir::Cache="$apt_dir" -o Dir::Cache::archives="$apt_dir/archives" \
        -o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache="" -o APT::Get::List-Cleanup=false
fi
kpkg=$(apt-cache "$@" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
    apt-get "$@" update -qq >/dev/null
    kpkg=$(apt-cache "$@" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kpkg" ] || { echo "fetch-debs: cannot resolve linux-image-amd64${suite:+ in $suite}" >&2; exit 1; }
for pkg in "$kpkg" busybox-static; do
    if [ ! -f "$pkg.unpacked" ]; then
        rm -rf "$pkg" ./"$pkg"_*.deb
        # Package lists older than the archive name a .deb that is gone: update once.
        apt-get "$@" download -q -o APT::Sandbox::User=root "$pkg" >/dev/null ||
            { apt-get "$@" update -qq >/dev/null; apt-get "$@" download -q -o APT::Sandbox::User=root "$pkg" >/dev/null; }
        dpkg -x ./"$pkg"_*.deb "$pkg"
        touch "$pkg.unpacked"
    fi
done
echo "$kpkg" > kernel-package
