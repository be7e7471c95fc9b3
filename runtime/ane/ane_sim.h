/* runtime/ane/ane_sim.h -- libmilanesim: the ANE device over a recording test
 * double of Apple's private in-memory API (docs/ane-notes.md §3).  The one
 * public header of the library.
 *
 * The device is the runtime's own ANE device (runtime/ane/device.c, the same
 * code that runs on macOS); only the Apple entry points it calls (objc
 * runtime incl. objc_msgSend with its real calling convention, CoreFoundation,
 * IOSurface, dlopen of the framework path) are replaced by the double.  The
 * double records every call, rejects what the documented route rejects, and
 * "executes" a compiled model by parsing the MIL text it was given with
 * milc's frontend and running it on the CPU device over the IOSurface bytes
 * (packed [1, C, 1, S], the declared dtype).  It simulates the documented
 * contract, not the hardware's numerics beyond fp16 storage: a program that
 * runs here is contract-tested, not verified on hardware.
 *
 * The double's state (recording, compile count, limits) is per process, as
 * the real framework's is; not thread-safe. */
#ifndef MILC_RUNTIME_ANE_SIM_H
#define MILC_RUNTIME_ANE_SIM_H

#include <stddef.h>

#include "runtime/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The "ane-sim" device (an ANE device: mil_rt_ane_stats etc. work on it). */
MilRtDevice *mil_ane_sim_device_new(MilRtErr *e);

/* The recording: one line per call, e.g.
 *   "-[_ANEInMemoryModel compileWithQoS:options:error:] 21, NSDictionary{0}, &err -> YES"
 * "!! reason" lines for every contract violation the double rejected and
 * "~~" lines for failures injected with mil_ane_sim_fail. */
int mil_ane_sim_ncalls(void);
const char *mil_ane_sim_call(int i);
int mil_ane_sim_violations(void);            /* "!!" lines so far */
/* Clears the recording and the process compile count. */
void mil_ane_sim_reset(void);
/* Compiles the double accepts per process before failing like the real
 * route (default 119). */
void mil_ane_sim_set_compile_limit(int n);
/* Makes the next `times` calls of step ("descriptor": modelWithMILText:...
 * returns nil; "compile", "load", "evaluate": NO with an NSError of `text`)
 * fail, as the real route can (ANECompilerService crashes, busy device).
 * step NULL clears it. */
void mil_ane_sim_fail(const char *step, int times, const char *text);
/* The MIL text and weight blob of the last compile request (NULL before). */
const char *mil_ane_sim_last_mil(size_t *len);
const void *mil_ane_sim_last_weights(const char **key, size_t *len);
/* Objects of the double alive now (leak check: 0 once everything is freed). */
long mil_ane_sim_live_objects(void);

#ifdef __cplusplus
}
#endif

#endif /* MILC_RUNTIME_ANE_SIM_H */
