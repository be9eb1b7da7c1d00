#ifndef VSNFS_CSUPPORT_H
#define VSNFS_CSUPPORT_H
// Umbrella header: each layer keeps its shims in its own header.
#include "transport_shims.h"
#include "signal_shims.h"
#include "mount_shims.h"
#include "hostfs_shims.h"
#include "vhost_shims.h"
#include "diag_shims.h"
#include "lease_shims.h"
#endif
