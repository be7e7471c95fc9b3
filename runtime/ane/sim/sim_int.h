/* runtime/ane/sim/sim_int.h -- internals of libmilanesim for its own sources
 * and the contract tests (test/ane/): the double's AneApi table, so a test
 * can drive the double directly the way a wrong caller would. */
#ifndef MILC_RUNTIME_ANE_SIM_INT_H
#define MILC_RUNTIME_ANE_SIM_INT_H

#include "runtime/ane/ane_int.h"
#include "runtime/ane/ane_sim.h"

const AneApi *mil_ane_sim_api(void);

#endif /* MILC_RUNTIME_ANE_SIM_INT_H */
