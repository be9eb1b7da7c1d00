# vsnfs: build, test, and the end-to-end test in a real guest kernel.
#
#   make            build (debug)
#   make test       swift test
#   make test-virtio-vsock  only the vhost-user-vsock device's unit tests (fast; tests/virtio-vsock-unit.sh)
#   make smoke-vhost-user   vsnfs on the host as QEMU's vhost-user-vsock back-end: a real guest kernel's
#                           virtio-vsock speaks RPC to it across reboots and QEMU restarts, and port
#                           forwarding both ways (tests/vhost-user/qemu-smoke.sh)
#   make images     the test guest: Debian kernel + busybox initramfs + our binaries (vm-images/)
#   make e2e        boot the test guest and run the NFS workload over vsock (E2E_VERS, default "3 4.1"; 4.2 too),
#                   with vsnfs inside the guest on the loopback CID (tests/e2e/run.sh)
#                   GUEST_KERNEL (images, e2e, e2e-host, e2e-share): the guest's kernel, 6.1 (Debian 12,
#                   default) or 6.12 (Debian 13); vm-images/scripts/guest-kernel.sh
#   make e2e-host   vsnfs on the host behind vhost-user-vsock devices; the test guest mounts it with
#                   mount -t vsnfs and runs the same checks, a second guest (CID 5) is refused
#                   (tests/e2e/host-run.sh); E2E_HOST_VERS: the NFS version (3)
#   make e2e-share  `vsnfs share DIR -- qemu-system-x86_64 <test guest>` with the vhost-user device: the
#                   guest mounts by itself (vsnfs-mount --auto) from fw_cfg, then from the kernel command
#                   line, and vsnfs share returns its status (tests/e2e/share-run.sh)
#   make e2e-all    the whole matrix: NFSv3, 4.1, 4.2 x kernels 6.1, 6.12 x in-guest and host path, and
#                   e2e-share on each kernel; a table of results and durations (tests/e2e/all.sh)
#   make bench      vsnfs vs nfs-ganesha, the guest kernel's nfsd, virtio-fs and 9p, side by side (bench/run.sh, docs/bench.md)
#   make fuzz       build the libFuzzer targets (Fuzz/) and run each for FUZZ_SECS (60) over fuzz/corpus/
#   make fuzz-ci    the same, FUZZ_SECS=10 (.ci/run)
#   make fuzz-merge fold the seeds and what runs found into a minimal fuzz/corpus/ (set-cover merge)
#   make test-asan  swift test under the address sanitizer (.build-asan)
#   make test-tsan  swift test under the thread sanitizer (.build-tsan; TSAN_FILTER narrows it)
#   make install    vsnfs, vsnfs-mount, /sbin/mount.vsnfs, the systemd units (host server, guest
#                   auto-mount) and the docs; PREFIX (/usr/local), DESTDIR, BINDIR, UNITDIR,
#                   MOUNTHELPERDIR (/sbin), SYSCONFDIR (/etc), DOCDIR
#   make install-initramfs  the initramfs-tools hook and script that mount at boot (guests without systemd)
#   make guest-mount  the guest's vsnfs-mount alone (static Swift runtime), to copy into a guest
#   make test-install  make install into a temporary DESTDIR; checks the files and the units (tests/install.sh)
#
# The guest binaries are built in release mode with their own scratch path
# (.build-guest) so they never disturb the default .build.

SWIFT    ?= swift
E2E_VERS ?= 3 4.1
E2E_HOST_VERS ?= 3
GUEST_KERNEL ?= 6.1
export GUEST_KERNEL
TEST_TIMEOUT ?= 1800

.PHONY: all build test test-virtio-vsock smoke-vhost-user images e2e e2e-host e2e-share e2e-all bench clean fuzz fuzz-build fuzz-ci fuzz-merge test-asan test-tsan \
	release guest-mount install install-initramfs test-install
all: build

build:
	$(SWIFT) build

# tests/prepare.sh installs the clients the tests drive (as root, if missing)
# and starts rpcbind. Output is line-buffered so a stuck test shows its name,
# and bounded so a stuck suite fails instead of hanging.
test:
	@bash tests/lint.sh
	@bash tests/prepare.sh
	timeout -k 30 $(TEST_TIMEOUT) stdbuf -oL -eL $(SWIFT) test

test-virtio-vsock:
	sh tests/virtio-vsock-unit.sh

smoke-vhost-user:
	$(SWIFT) build --product vsnfs
	sh tests/vhost-user/qemu-smoke.sh

# The sanitizer builds have their own scratch paths; the integration tests
# start the vsnfs binary built beside them, so it runs sanitized too.
test-asan:
	@bash tests/prepare.sh
	VSNFS_SANITIZER=address LSAN_OPTIONS="suppressions=$(CURDIR)/tests/lsan.supp $(LSAN_OPTIONS)" \
	timeout -k 30 $(TEST_TIMEOUT) stdbuf -oL -eL $(SWIFT) test --sanitize=address --scratch-path .build-asan

# TSAN_FILTER: a `swift test --filter` pattern, to run only some suites.
TSAN_FILTER ?=
test-tsan:
	@bash tests/prepare.sh
	bash tests/run-tsan.sh '$(SWIFT)' $(TEST_TIMEOUT) '$(TSAN_FILTER)'

# libFuzzer targets (Package.swift adds them when VSNFS_FUZZ is set): built with
# the fuzzer and address sanitizer instrumentation; each target's entry point
# runs libFuzzer's driver (fuzz/run.sh runs them).
FUZZ_SECS ?= 60
FUZZ_TARGETS ?= FuzzRecordMarking FuzzRPCMessage FuzzProcedures FuzzFileHandle FuzzExports FuzzCompound FuzzNFS4
FUZZ_BUILD = VSNFS_FUZZ=1 $(SWIFT) build -c debug --scratch-path .build-fuzz \
	-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library

fuzz-build:
	@for t in $(FUZZ_TARGETS); do $(FUZZ_BUILD) --product $$t || exit 1; done

fuzz: fuzz-build
	bash fuzz/run.sh $(FUZZ_SECS) $(FUZZ_TARGETS)

fuzz-ci:
	$(MAKE) fuzz FUZZ_SECS=10

fuzz-merge: fuzz-build
	bash fuzz/run.sh merge $(FUZZ_TARGETS)

images:
	$(MAKE) -C vm-images

e2e: images
	@rc=0; for v in $(E2E_VERS); do sh tests/e2e/run.sh $$v || rc=1; done; exit $$rc

# The server is the release vsnfs that `make images` builds for the guest
# (.build-guest): no second build.
e2e-host: images
	sh tests/e2e/host-run.sh $(E2E_HOST_VERS)

# vsnfs share from .build-guest too (it runs on the host, as in e2e-host).
e2e-share: images
	sh tests/e2e/share-run.sh

# Builds the images of each kernel itself (make images GUEST_KERNEL=...).
e2e-all:
	sh tests/e2e/all.sh

bench:
	bash bench/run.sh

# ---- install ----
# The installed binaries are the release build with the Swift runtime linked
# in (--static-swift-stdlib; they need only glibc), the same build the test
# guest carries (.build-guest, vm-images/Makefile's `binaries`).
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
# mount(8) runs filesystem helpers from /sbin only (util-linux searches
# /sbin, /sbin/fs.d and /sbin/fs), so mount.vsnfs goes there whatever PREFIX is.
MOUNTHELPERDIR ?= /sbin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
DOCDIR     ?= $(PREFIX)/share/doc/vsnfs
RELEASE_BIN = $(CURDIR)/.build-guest/release
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'

release:
	$(MAKE) -C vm-images binaries

guest-mount:
	$(MAKE) -C vm-images binaries PRODUCTS=vsnfs-mount
	@echo "The guest's vsnfs-mount (Swift runtime linked in; needs the guest's glibc, $$(ldd --version | head -n 1 | sed 's/.* //') or newer):"
	@echo "  $(RELEASE_BIN)/vsnfs-mount"
	@echo "Copy it into the guest as /usr/bin/vsnfs-mount and link /sbin/mount.vsnfs to it (docs/guest.md)."

install: release
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MOUNTHELPERDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/docs
	install -m 0755 -s $(RELEASE_BIN)/vsnfs $(RELEASE_BIN)/vsnfs-mount $(DESTDIR)$(BINDIR)/
	ln -sf $(BINDIR)/vsnfs-mount $(DESTDIR)$(MOUNTHELPERDIR)/mount.vsnfs
	for u in vsnfs vsnfs-mount-auto; do \
	    $(SUBST) dist/systemd/$$u.service.in > $(DESTDIR)$(UNITDIR)/$$u.service && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.service || exit 1; done
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	@echo "Installed. Host: put exports in $(SYSCONFDIR)/vsnfs/exports, then systemctl enable --now vsnfs."
	@echo "Guest: systemctl enable vsnfs-mount-auto (mounts what the hypervisor asks for at boot)."

install-initramfs:
	install -d $(DESTDIR)$(SYSCONFDIR)/initramfs-tools/hooks $(DESTDIR)$(SYSCONFDIR)/initramfs-tools/scripts/init-bottom
	$(SUBST) dist/initramfs-tools/hooks/vsnfs.in > $(DESTDIR)$(SYSCONFDIR)/initramfs-tools/hooks/vsnfs
	chmod 0755 $(DESTDIR)$(SYSCONFDIR)/initramfs-tools/hooks/vsnfs
	install -m 0755 dist/initramfs-tools/scripts/init-bottom/vsnfs $(DESTDIR)$(SYSCONFDIR)/initramfs-tools/scripts/init-bottom/
	@echo "Installed the initramfs-tools hook; update-initramfs -u puts vsnfs-mount in the initramfs."

test-install:
	sh tests/install.sh

clean:
	$(MAKE) -C vm-images clean
	rm -rf .e2e
