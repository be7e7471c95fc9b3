/* passes/taps.c -- forward taps: named intermediate values of a forward
 * function become extra function outputs, so a backward kernel can read
 * them (docs/ane-notes.md §13.4: the forward kernels return their taps).
 *
 * The names come from --taps=v1,v2,... or from a function attribute `taps`
 * (a string with the same comma-separated list).  Without --pack-taps each
 * tap is appended as its own output.  With --pack-taps every tap must be a
 * [1, C, 1, S] tensor of one dtype and one S; they are concatenated along the
 * channel axis (concat(axis = 1, interleave = false)) into one output named
 * `taps`, and the channel map goes to MilPassOptions.taps_json:
 *   {"function": "main", "output": "taps", "taps": [{"name": "q", "offset": 0, "channels": 64}, ...]}
 * (unpacked: "output" is null and each entry names its own output).
 */
#include <stdlib.h>
#include <string.h>

#include "passes/pass_int.h"

typedef struct Buf {
    char *s;
    size_t n, cap;
} Buf;

static void put(Buf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

static void put_json_str(Buf *b, const char *s) {
    put(b, "\"");
    char t[8];
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') { t[0] = '\\'; t[1] = *s; t[2] = 0; }
        else if ((unsigned char)*s < 0x20) snprintf(t, sizeof t, "\\u%04x", (unsigned char)*s);
        else { t[0] = *s; t[1] = 0; }
        put(b, t);
    }
    put(b, "\"");
}

static const char *func_taps_attr(MilFunc *f) {
    for (int j = 0; j < f->nattrs; j++)
        if (!strcmp(f->attrs[j].name, "taps")) return mil_const_get_str(f->attrs[j].val);
    return NULL;
}

static int tap_func(MilFunc *f, const char *list, const MilPassOptions *o, MilDiag *d, Buf *json, bool *first_fn) {
    MilValue *vals[256];
    int n = 0;
    for (const char *q = list; *q && n < 256;) {
        size_t len = strcspn(q, ",");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len < 255 ? len : 255), q);
        q += len;
        if (*q == ',') q++;
        if (!name[0]) continue;
        MilValue *v = mil_func_find_value(f, name);
        if (!v) {
            mil_error(d, f->loc, "taps: function '%s' has no value named '%s'", f->name, name);
            return -1;
        }
        vals[n++] = v;
    }
    if (!n) return 0;
    if (!*first_fn) put(json, ", ");
    *first_fn = false;
    put(json, "{\"function\": ");
    put_json_str(json, f->name);
    char tmp[128];
    if (o->pack_taps) {
        int64_t S = -2, off = 0;
        MilDType dt = MIL_DT_NONE;
        for (int i = 0; i < n; i++) {
            const MilType *t = vals[i]->type;
            bool ok = ty_known(t) && t->rank == 4 && t->dims[0] == 1 && t->dims[2] == 1 &&
                      (S == -2 || t->dims[3] == S) && (dt == MIL_DT_NONE || t->dtype == dt);
            if (!ok) {
                mil_error(d, vals[i]->def ? vals[i]->def->loc : f->loc,
                          "taps: cannot pack '%s': every packed tap must be [1, C, 1, S] with the same S and dtype",
                          vals[i]->name);
                return -1;
            }
            S = t->dims[3];
            dt = t->dtype;
        }
        MilOp *cat = pb_op(f, MIL_OP_CONCAT, f->body.last ? f->body.last->loc : f->loc);
        MilBinding *items = calloc((size_t)n, sizeof *items);
        for (int i = 0; i < n; i++) items[i].value = vals[i];
        mil_op_add_arg(cat, "axis", pb_const_scalar(f, NULL, MIL_DT_INT32, 1, "taps_axis"));
        mil_op_add_arg(cat, "interleave", pb_const_bool(f, NULL, false, "taps_interleave"));
        mil_op_add_arg_tuple(cat, "values", n, items);
        free(items);
        MilValue *out = pb_finish(f, cat, NULL, "taps");
        mil_func_add_output(f, out);
        put(json, ", \"output\": ");
        put_json_str(json, out->name);
        put(json, ", \"taps\": [");
        for (int i = 0; i < n; i++) {
            put(json, i ? ", {\"name\": " : "{\"name\": ");
            put_json_str(json, vals[i]->name);
            snprintf(tmp, sizeof tmp, ", \"offset\": %lld, \"channels\": %lld}", (long long)off,
                     (long long)vals[i]->type->dims[1]);
            put(json, tmp);
            off += vals[i]->type->dims[1];
        }
        put(json, "]}");
    } else {
        put(json, ", \"output\": null, \"taps\": [");
        for (int i = 0; i < n; i++) {
            if (!value_is_output(f, vals[i])) mil_func_add_output(f, vals[i]);
            put(json, i ? ", {\"name\": " : "{\"name\": ");
            put_json_str(json, vals[i]->name);
            const MilType *t = vals[i]->type;
            long long ch = ty_tensor(t) && t->rank >= 2 ? (long long)t->dims[1] : -1;
            snprintf(tmp, sizeof tmp, ", \"offset\": 0, \"channels\": %lld}", ch);
            put(json, tmp);
        }
        put(json, "]}");
    }
    return 1;
}

int mil_pass_taps(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    Buf json = {0};
    put(&json, "{\"functions\": [");
    bool first = true;
    int changed = 0;
    for (int i = 0; i < p->nfuncs; i++) {
        MilFunc *f = p->funcs[i];
        const char *list = o->taps;
        if (list) {
            /* --taps names values of the function(s) that have them */
            bool any = false;
            for (const char *q = list; *q;) {
                size_t len = strcspn(q, ",");
                char name[256];
                snprintf(name, sizeof name, "%.*s", (int)(len < 255 ? len : 255), q);
                any |= mil_func_find_value(f, name) != NULL;
                q += len;
                if (*q == ',') q++;
            }
            if (!any && p->nfuncs > 1) continue;
        } else {
            list = func_taps_attr(f);
            if (!list) continue;
        }
        int r = tap_func(f, list, o, d, &json, &first);
        use_counts_dirty();   /* outputs and a concat were added */
        if (r < 0) {
            free(json.s);
            return -1;
        }
        changed |= r;
    }
    put(&json, "]}\n");
    MilPassOptions *mo = (MilPassOptions *)o;   /* taps_json is the one output field */
    free(mo->taps_json);
    mo->taps_json = changed ? json.s : NULL;
    if (!changed) free(json.s);
    return changed;
}
