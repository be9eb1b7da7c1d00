/// The vsnfs release both binaries print for `--version` (the server and the
/// guest helper come from one tree and are released together).
public let vsnfsVersion = "0.5.0-dev"
