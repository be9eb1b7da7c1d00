// vsnfs-mount: mounts a vsnfs export into this guest (also installed as
// mount.vsnfs, the mount(8) helper for `-t vsnfs`).
//
// The Linux NFS client has no AF_VSOCK transport, so the kernel talks TCP to
// a relay on this guest's loopback, which forwards each connection to a new
// vsock connection to the server. `__relay` is the hidden subcommand the
// helper re-executes itself with to run that relay, detached.
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
if arguments.count > 1 && arguments[1] == RelayCommand.subcommandName {
    exit(RelayCommand.run(Array(arguments.dropFirst(2))))
}
MountCommand.main()
