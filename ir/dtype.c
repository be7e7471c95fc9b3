/* ir/dtype.c -- element type helpers, all generated from ir/dtypes.def.
 *
 * Names, packed widths, weight.bin codes and MIL.proto codes come from the
 * table rows; the in-memory storage rule (mil_dtype_storage_size) is the one
 * stated in ir/ir.h.  fp16/bf16 conversions wrap the shared ir/fp16.h.
 */
#include "ir/ir_int.h"
#include "ir/fp16.h"

#include <string.h>

typedef struct DTypeRow {
    const char *name;
    int bits, blob, proto, flags;
} DTypeRow;

static const DTypeRow dtypes[MIL_DT_COUNT] = {
    [MIL_DT_NONE] = { "?", 0, 0, 0, 0 },
#define DT(id, name, bits, blob, proto, flags) [MIL_DT_##id] = { name, bits, blob, proto, flags },
#include "ir/dtypes.def"
#undef DT
};

static bool valid(MilDType dt) { return dt > MIL_DT_NONE && dt < MIL_DT_COUNT; }

const char *mil_dtype_name(MilDType dt) { return valid(dt) ? dtypes[dt].name : "?"; }

MilDType mil_dtype_from_name(const char *s, size_t n) {
    if (!s) return MIL_DT_NONE;
    for (int i = 1; i < MIL_DT_COUNT; i++)
        if (strlen(dtypes[i].name) == n && memcmp(dtypes[i].name, s, n) == 0) return (MilDType)i;
    return MIL_DT_NONE;
}

int mil_dtype_bits(MilDType dt) { return valid(dt) ? dtypes[dt].bits : 0; }
int mil_dtype_blob_code(MilDType dt) { return valid(dt) ? dtypes[dt].blob : 0; }
int mil_dtype_proto_code(MilDType dt) { return valid(dt) ? dtypes[dt].proto : 0; }

MilDType mil_dtype_from_blob_code(int code) {
    if (code <= 0) return MIL_DT_NONE;
    for (int i = 1; i < MIL_DT_COUNT; i++)
        if (dtypes[i].blob == code) return (MilDType)i;
    return MIL_DT_NONE;
}

MilDType mil_dtype_from_proto_code(int code) {
    if (code <= 0) return MIL_DT_NONE;
    for (int i = 1; i < MIL_DT_COUNT; i++)
        if (dtypes[i].proto == code) return (MilDType)i;
    return MIL_DT_NONE;
}

bool mil_dtype_is_float(MilDType dt) { return valid(dt) && (dtypes[dt].flags & DTF_FLOAT); }
bool mil_dtype_is_int(MilDType dt) { return valid(dt) && (dtypes[dt].flags & DTF_INT); }
bool mil_dtype_is_signed(MilDType dt) { return valid(dt) && (dtypes[dt].flags & DTF_SIGNED); }

size_t mil_dtype_storage_size(MilDType dt) {
    if (!valid(dt)) return 0;
    if (dt == MIL_DT_STRING) return sizeof(char *);
    int bits = dtypes[dt].bits;
    if (bits <= 8) return 1;       /* bool, sub-byte ints, int8/uint8, fp8 */
    return (size_t)bits / 8;       /* fp16/bf16 raw bits, fp32 float, fp64 double, intN */
}

float mil_fp16_to_f32(uint16_t h) { return mil_h2f(h); }
uint16_t mil_f32_to_fp16(float f) { return mil_f2h(f); }
float mil_bf16_to_f32(uint16_t h) { return mil_bf2f(h); }
uint16_t mil_f32_to_bf16(float f) { return mil_f2bf(f); }
