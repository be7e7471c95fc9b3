/* runtime/ane/platform_none.c -- the Apple entry points on a system without
 * AppleNeuralEngine.framework (Linux, BSD): only dlopen is real.  Opening the
 * framework fails there, and the device stops at that first step with
 * "ANE device: not available on this system (...)"; the other entries are
 * never reached and stay NULL. */
#include "runtime/ane/ane_api.h"

#include <dlfcn.h>

static int compiles;

const AneApi mil_ane_platform_api = {
    .name = "unavailable",
    .framework = "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine",
    .dl_open = dlopen,
    .dl_error = dlerror,
    .compile_count = &compiles,
};
