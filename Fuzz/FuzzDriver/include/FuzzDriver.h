// libFuzzer's entry for programs that have their own main (compiler-rt's
// FuzzerInterface.h). SwiftPM links every executable's entry point as
// `<module>_main`, so libFuzzer's own main is never linked: each fuzz target
// defines `<module>_main` and runs the driver from there.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
