# The test guest's kernel choice, in one place (sourced by sh scripts; the
# Makefiles ask it too). GUEST_KERNEL (environment):
#   6.1   (default) Debian 12 (bookworm)'s linux-image-amd64: cache/, out/
#   6.12  Debian 13 (trixie)'s linux-image-amd64:             cache/6.12/, out/6.12/
# Sets guest_kernel, guest_suite (the Debian release the kernel and busybox
# come from), guest_cache and guest_out (relative to vm-images/), and
# guest_tag: "" for the default, "-6.12" otherwise (suffix of logs and work
# directories, so runs on both kernels keep their files apart).
guest_kernel=${GUEST_KERNEL:-6.1}
case $guest_kernel in
6.1)  guest_suite=bookworm guest_cache=cache guest_out=out guest_tag= ;;
6.12) guest_suite=trixie guest_cache=cache/6.12 guest_out=out/6.12 guest_tag=-6.12 ;;
*) echo "GUEST_KERNEL=$guest_kernel: 6.1 (Debian 12) or 6.12 (Debian 13)" >&2; exit 1 ;;
esac
