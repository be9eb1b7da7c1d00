# vsnfs: build, test, and the end-to-end test in a real guest kernel.
#
#   make            build (debug)
#   make test       swift test
#   make test-virtio-vsock  only the vhost-user-vsock device's unit tests (fast; tests/virtio-vsock-unit.sh)
#   make smoke-vhost-user   vsnfs on the host as QEMU's vhost-user-vsock back-end; a real guest kernel's
#                           virtio-vsock reaches it, and its NFSv3 client mounts, reads and writes, through
#                           a C relay and through vsnfs-mount (debug build) (tests/vhost-user/qemu-{smoke,nfs}.sh)
#   make images     the test guest: Debian kernel + busybox initramfs + our binaries (vm-images/)
#   make e2e        boot the test guest and run the NFS workload over vsock (E2E_VERS=3 or "3 4.1")
#   make bench      vsnfs vs nfs-ganesha, the guest kernel's nfsd, virtio-fs and 9p, side by side (bench/run.sh, docs/bench.md)
#
# The guest binaries are built in release mode with their own scratch path
# (.build-guest) so they never disturb the default .build.

SWIFT    ?= swift
E2E_VERS ?= 3
TEST_TIMEOUT ?= 1800

.PHONY: all build test test-virtio-vsock smoke-vhost-user images e2e bench clean
all: build

build:
	$(SWIFT) build

# tests/prepare.sh installs the clients the tests drive (as root, if missing)
# and starts rpcbind. Output is line-buffered so a stuck test shows its name,
# and bounded so a stuck suite fails instead of hanging.
test:
	@bash tests/prepare.sh
	timeout -k 30 $(TEST_TIMEOUT) stdbuf -oL -eL $(SWIFT) test

test-virtio-vsock:
	sh tests/virtio-vsock-unit.sh

smoke-vhost-user:
	$(SWIFT) build --product vsnfs
	$(SWIFT) build --product vsnfs-mount
	sh tests/vhost-user/qemu-smoke.sh
	sh tests/vhost-user/qemu-nfs.sh
	sh tests/vhost-user/qemu-nfs.sh .build/debug/vsnfs .build/debug/vsnfs-mount

images:
	$(MAKE) -C vm-images

e2e: images
	@rc=0; for v in $(E2E_VERS); do sh tests/e2e/run.sh $$v || rc=1; done; exit $$rc

bench:
	bash bench/run.sh

clean:
	$(MAKE) -C vm-images clean
	rm -rf .e2e
