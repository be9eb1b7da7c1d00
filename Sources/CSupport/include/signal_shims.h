#ifndef VSNFS_SIGNAL_SHIMS_H
#define VSNFS_SIGNAL_SHIMS_H

/// Installs an async-signal-safe handler for each signal in `signals` that
/// writes the signal number (one byte) to a pipe, and returns the pipe's
/// read end (or -errno). sigaction takes effect at once, so no signal that
/// arrives after this returns is lost or handled by its default action.
int vsnfs_signal_pipe(const int *signals, int count);
#endif
