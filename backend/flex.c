/* backend/flex.c -- reading a function's FlexibleShapeInformation attribute
 * (docs/mil-format.md §4.2): a tuple of ("DefaultShapes", dict name -> shape)
 * and ("RangeDims", dict name -> [[lo, hi], ...]) or ("EnumeratedShapes",
 * ...).  The runtime has its own reader for .milb programs
 * (mil_rt_milb_view_flex_limits); this one works on the IR. */
#include <string.h>

#include "backend/backend.h"

const MilConst *mil_flex_entry(const MilFunc *f, const char *key, const char *name) {
    const MilConst *fsi = NULL;
    for (int i = 0; i < f->nattrs; i++)
        if (!strcmp(f->attrs[i].name, "FlexibleShapeInformation")) fsi = f->attrs[i].val;
    if (!fsi || fsi->kind != MIL_CONST_TUPLE) return NULL;
    for (int i = 0; i < fsi->nitems; i++) {
        const MilConst *pair = fsi->items[i];
        if (pair->kind != MIL_CONST_TUPLE || pair->nitems != 2) continue;
        const char *k = mil_const_get_str(pair->items[0]);
        const MilConst *dict = pair->items[1];
        if (!k || strcmp(k, key) || dict->kind != MIL_CONST_DICT) continue;
        for (int d = 0; d + 1 < dict->nitems; d += 2) {
            const char *n = mil_const_get_str(dict->items[d]);
            if (n && !strcmp(n, name)) return dict->items[d + 1];
        }
    }
    return NULL;
}

bool mil_flex_default_shape(const MilFunc *f, const char *name, int rank, int64_t *dims) {
    const MilConst *shape = f ? mil_flex_entry(f, "DefaultShapes", name) : NULL;
    if (!shape || shape->kind != MIL_CONST_TENSOR || shape->count != rank) return false;
    for (int d = 0; d < rank; d++) dims[d] = mil_const_get_i64(shape, d);
    return true;
}
