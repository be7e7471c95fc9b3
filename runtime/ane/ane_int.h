/* runtime/ane/ane_int.h -- internals of the ANE device shared by its source
 * files and the test double (libmilanesim): the MIL text renderer and the
 * constructor over an explicit AneApi table. */
#ifndef MILC_RUNTIME_ANE_INT_H
#define MILC_RUNTIME_ANE_INT_H

#include "runtime/ane/ane_api.h"
#include "runtime/runtime.h"

/* The one BLOBFILE path of a rendered program (the weights dictionary key). */
#define ANE_WEIGHT_PATH "@model_path/weights/weight.bin"
#define ANE_QOS 21

/* A function rendered for Apple's in-memory compiler. */
typedef struct AneRender {
    char *text;                  /* MIL text (UTF-8, NUL-terminated) */
    size_t len;
    uint8_t *blob;               /* MILBlob v2 for ANE_WEIGHT_PATH; NULL when no constant needs one */
    size_t blob_len;
    int nin, nout;
    int *in_order;               /* binding order: indices into f->inputs, alphabetical by name */
    int *out_order;              /* indices into f->outputs, alphabetical by name */
} AneRender;

/* What the device refuses before rendering, with the reason: unknown dims,
 * rank > 5, I/O other than fp16/fp32, extension ops, ops with no ANE path or
 * rejected by the in-memory route, masked SDPA, a non-constant conv bias or
 * matmul flag, outputs that no op computes. */
int mil_ane_check(const MilRtFunc *f, MilRtErr *e);
/* Renders f (checked by mil_ane_check).  scratch_dir is where the weight
 * blob is staged.  Free with mil_ane_render_free (also after errors). */
int mil_ane_render(const MilRtFunc *f, const char *scratch_dir, AneRender *r, MilRtErr *e);
void mil_ane_render_free(AneRender *r);

/* The ANE device over api (mil_rt_device_ane_new uses mil_ane_platform_api;
 * libmilanesim its recording double).  what names the device in messages
 * ("ANE device", "ANE device (simulated)"); iface_name is the device name. */
MilRtDevice *mil_ane_device_new_api(const AneApi *api, const char *iface_name, MilRtErr *e);

#endif /* MILC_RUNTIME_ANE_INT_H */
