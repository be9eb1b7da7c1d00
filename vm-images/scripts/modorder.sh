#!/bin/sh
# Prints the .ko files (relative to MODDIR) needed to load MODULE..., each
# after the modules it depends on, each once. Debian's linux-image package
# ships no modules.dep, so the order comes from `modinfo -F depends`.
# Modules may be xz-compressed (Debian 13's kernel ships .ko.xz): the paths
# printed are the files as they are (build-initramfs.sh decompresses them).
#   modorder.sh MODDIR MODULE...
set -eu
moddir=$1; shift
PATH=$PATH:/usr/sbin:/sbin
index=$(mktemp); trap 'rm -f "$index" "$index.seen"' EXIT
# name (with '-' folded to '_') -> path
(cd "$moddir" && find . -name '*.ko' -o -name '*.ko.xz' | sed 's|^\./||') |
    awk '{ n=$0; sub(/.*\//, "", n); sub(/\.ko(\.xz)?$/, "", n); gsub(/-/, "_", n); print n, $0 }' > "$index"
: > "$index.seen"
visit() {
    local name path dep
    name=$(echo "$1" | tr - _)
    grep -qx "$name" "$index.seen" && return 0
    echo "$name" >> "$index.seen"
    path=$(awk -v n="$name" '$1 == n { print $2; exit }' "$index")
    if [ -z "$path" ]; then
        # Built into the kernel (or absent): nothing to load.
        grep -qw "$name" "$moddir/modules.builtin" 2>/dev/null ||
            echo "modorder: module $name not found under $moddir" >&2
        return 0
    fi
    for dep in $(modinfo -F depends "$moddir/$path" | tr , ' '); do
        visit "$dep"
    done
    echo "$path"
}
for m in "$@"; do visit "$m"; done
