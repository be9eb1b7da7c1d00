// Declarations only (include/FuzzDriver.h); SwiftPM wants a source file per C target.
#include "FuzzDriver.h"
