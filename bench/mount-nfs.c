/* mount-nfs SOURCE DIR OPTIONS: mount(2) of type "nfs" with OPTIONS as the
 * kernel's text mount data, as mount.nfs hands them over. The share benchmark's
 * guest (busybox, no nfs-utils) mounts the nfs-net column with it: busybox's
 * own NFS mount speaks the legacy binary mount data and the MOUNT protocol
 * itself; with mountport= and mountproto=tcp the kernel does MOUNT itself. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: mount-nfs SOURCE DIR OPTIONS\n");
        return 2;
    }
    if (mount(argv[1], argv[2], "nfs", 0, argv[3]) != 0) {
        fprintf(stderr, "mount-nfs: mount(\"%s\", \"%s\", \"nfs\", 0, \"%s\"): %s\n",
                argv[1], argv[2], argv[3], strerror(errno));
        return 32;
    }
    return 0;
}
