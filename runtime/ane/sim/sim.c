/* runtime/ane/sim/sim.c -- the "ane-sim" device: the runtime's ANE device
 * (runtime/ane/device.c) bound to the recording double (double.c). */
#include "runtime/ane/sim/sim_int.h"

MilRtDevice *mil_ane_sim_device_new(MilRtErr *e) {
    return mil_ane_device_new_api(mil_ane_sim_api(), "ane-sim", e);
}
