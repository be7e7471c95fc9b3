/* backend/synth.c -- synthetic weight files for programs whose weights are
 * not available (see backend/backend.h, "synthetic weights").
 *
 * Every BLOBFILE constant of the program is collected (op arguments, op
 * attributes, function and program attributes, aggregates recursively) with
 * its resolved file, metadata offset, dtype and element count.  Per file the
 * references are sorted by offset; a file that already exists is left alone,
 * otherwise it is written with the runtime's MILBlob v2 writer so that every
 * record lands at exactly the referenced offset: references sharing an
 * offset become one record (they must agree on dtype and size), and a gap
 * before a record is bridged by one uint8 filler record whose payload ends
 * exactly where the next record starts.  Offsets that cannot be produced
 * (not 64-aligned, inside the header, overlapping the previous record) are
 * reported and nothing is written for that file. */
#define _XOPEN_SOURCE 700   /* realpath */
#include "backend/backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYNTH_MAX_FILLER ((uint64_t)1 << 30)   /* largest gap bridged (bytes) */

typedef struct SynRef {
    char *file;          /* resolved path under the target dir (malloc'd) */
    const char *blob_path;
    uint64_t offset;
    MilDType dt;
    int64_t count;
    MilLoc loc;
    int order;           /* discovery order (stable sort) */
} SynRef;

typedef struct Synth {
    const MilSynthOptions *o;
    MilDiag *d;
    SynRef *refs;
    int n, cap;
    int errors;
} Synth;

static void syn_error(Synth *S, MilLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void syn_error(Synth *S, MilLoc loc, const char *fmt, ...) {
    char msg[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (S->d) mil_error(S->d, loc, "%s", msg);
    S->errors++;
}

static void add_const(Synth *S, const MilConst *c, MilLoc loc) {
    if (!c) return;
    if (c->kind == MIL_CONST_LIST || c->kind == MIL_CONST_TUPLE || c->kind == MIL_CONST_DICT) {
        for (int i = 0; i < c->nitems; i++) add_const(S, c->items[i], loc);
        return;
    }
    if (c->kind != MIL_CONST_BLOB) return;
    const char *bp = c->blob_path ? c->blob_path : "?";
    int64_t n = c->type && c->type->kind == MIL_TY_TENSOR ? mil_type_numel(c->type) : -1;
    if (n < 0) {
        syn_error(S, loc, "%s: cannot synthesise the blob at offset %llu: its type has an unknown size", bp,
                  (unsigned long long)c->blob_offset);
        return;
    }
    if (mil_dtype_blob_code(c->type->dtype) == 0) {
        syn_error(S, loc, "%s: dtype %s cannot be stored in a weight file", bp, mil_dtype_name(c->type->dtype));
        return;
    }
    char path[4096];
    MilRtErr e;
    if (mil_rt_blob_resolve(bp, S->o->model_dir, S->o->weights_dir, path, sizeof path, &e)) {
        syn_error(S, loc, "%s", e.msg);
        return;
    }
    if (S->n == S->cap) {
        int nc = S->cap ? S->cap * 2 : 64;
        SynRef *r = realloc(S->refs, sizeof *r * (size_t)nc);
        if (!r) { syn_error(S, loc, "out of memory"); return; }
        S->refs = r;
        S->cap = nc;
    }
    char *f = strdup(path);
    if (!f) { syn_error(S, loc, "out of memory"); return; }
    S->refs[S->n] = (SynRef){f, bp, c->blob_offset, c->type->dtype, n, loc, S->n};
    S->n++;
}

static int cmp_ref(const void *a, const void *b) {
    const SynRef *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    if (c) return c;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->order - y->order;
}

int mil_mkdirs(const char *dir) {
    char buf[4096];
    if (!dir || !*dir) {
        errno = EINVAL;
        return -1;
    }
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* mkdir -p of the directory part of path. */
static int make_parent(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return 0;
    *slash = 0;
    return mil_mkdirs(buf);
}

/* True when a BLOBFILE path as written stays inside the directory it is
 * resolved against: not absolute, and no ".." component. */
static bool path_inside(const char *blob_path) {
    static const char key[] = "@model_path";
    const char *p = blob_path;
    if (!strncmp(p, key, sizeof key - 1)) p += sizeof key - 1;
    else if (*p == '/') return false;
    for (;;) {
        while (*p == '/') p++;
        if (!*p) return true;
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return false;
        p += n;
    }
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The values of one record depend only on (seed, blob path as written, offset). */
static uint64_t record_seed(uint64_t seed, const char *blob_path, uint64_t offset) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)blob_path; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    uint64_t s = seed ^ h;
    splitmix(&s);
    s ^= offset * 0x9e3779b97f4a7c15ull;
    return s;
}

/* Fills t (rank 1, allocated) with the documented value ranges. */
static void fill_values(MilRtTensor *t, uint64_t state) {
    int64_t n = t->dims[0];
    MilDType dt = t->dtype;
    if (dt == MIL_DT_FP8E4M3FN || dt == MIL_DT_FP8E5M2) {
        /* raw bytes of small magnitude: exponent field low, sign random */
        uint8_t *b = t->data;
        for (int64_t k = 0; k < n; k++) {
            uint64_t r = splitmix(&state);
            b[k] = (uint8_t)((r & 0x80) | (dt == MIL_DT_FP8E4M3FN ? (0x08 + (r >> 8) % 0x10) : (0x04 + (r >> 8) % 0x08)));
        }
        return;
    }
    bool fl = mil_rt_dtype_is_float(dt);
    uint64_t range = dt == MIL_DT_BOOL || mil_rt_dtype_bits(dt) == 1 ? 2 : 4;
    for (int64_t k = 0; k < n; k++) {
        uint64_t r = splitmix(&state);
        double v = fl ? ((double)(r >> 11) * 0x1p-53 - 0.5) * 0.1 : (double)(r % range);
        mil_rt_set_f64(t, k, v);
    }
}

/* Writes one file holding refs[a..b) (sorted by offset); checks the layout
 * first so that nothing is created for an impossible one. */
static int write_file(Synth *S, int a, int b) {
    SynRef *R = S->refs;
    const char *path = R[a].file;
    /* plan */
    uint64_t end = 64;
    for (int i = a; i < b; i++) {
        if (i > a && R[i].offset == R[i - 1].offset) {
            if (R[i].dt != R[i - 1].dt || R[i].count != R[i - 1].count) {
                syn_error(S, R[i].loc,
                          "%s: cannot synthesise the blob at offset %llu: constants of different types share it "
                          "(%s x %lld and %s x %lld)",
                          R[i].blob_path, (unsigned long long)R[i].offset, mil_dtype_name(R[i - 1].dt),
                          (long long)R[i - 1].count, mil_dtype_name(R[i].dt), (long long)R[i].count);
                return -1;
            }
            continue;
        }
        uint64_t m = (end + 63) & ~(uint64_t)63, o = R[i].offset;
        if (o % 64) {
            syn_error(S, R[i].loc, "%s: cannot synthesise the blob at offset %llu: not a multiple of 64",
                      R[i].blob_path, (unsigned long long)o);
            return -1;
        }
        if (o < m) {
            if (o < 64)
                syn_error(S, R[i].loc, "%s: cannot synthesise the blob at offset %llu: inside the file header",
                          R[i].blob_path, (unsigned long long)o);
            else
                syn_error(S, R[i].loc,
                          "%s: cannot synthesise the blob at offset %llu: it overlaps the previous blob (which ends at %llu)",
                          R[i].blob_path, (unsigned long long)o, (unsigned long long)end);
            return -1;
        }
        if (o > m && o - m - 64 > SYNTH_MAX_FILLER) {
            syn_error(S, R[i].loc, "%s: cannot synthesise the blob at offset %llu: the gap before it (%llu bytes) is too large",
                      R[i].blob_path, (unsigned long long)o, (unsigned long long)(o - m));
            return -1;
        }
        end = o + 64 + mil_rt_blob_payload_size(R[i].dt, R[i].count);
    }
    /* write */
    MilRtErr e;
    if (make_parent(path)) {
        syn_error(S, R[a].loc, "%s: cannot create the directory of %s: %s", R[a].blob_path, path, strerror(errno));
        return -1;
    }
    MilRtBlobWriter *w = mil_rt_blob_writer_open(path, &e);
    if (!w) {
        syn_error(S, R[a].loc, "%s", e.msg);
        return -1;
    }
    int rc = 0;
    end = 64;
    for (int i = a; i < b && rc == 0; i++) {
        if (i > a && R[i].offset == R[i - 1].offset) continue;
        uint64_t m = (end + 63) & ~(uint64_t)63, got = 0;
        if (R[i].offset > m) {  /* filler record ending exactly at the next record */
            int64_t fill = (int64_t)(R[i].offset - m - 64);
            uint8_t *z = calloc((size_t)fill + 1, 1);
            if (!z || mil_rt_blob_writer_append(w, MIL_DT_UINT8, z, fill, NULL, &e)) {
                syn_error(S, R[i].loc, "%s", z ? e.msg : "out of memory");
                free(z);
                rc = -1;
                break;
            }
            free(z);
        }
        MilRtTensor t = {.dtype = R[i].dt, .rank = 1, .dims = {R[i].count}};
        if (mil_rt_tensor_alloc(&t, &e)) {
            syn_error(S, R[i].loc, "%s", e.msg);
            rc = -1;
            break;
        }
        fill_values(&t, record_seed(S->o->seed, R[i].blob_path, R[i].offset));
        if (mil_rt_blob_writer_append(w, t.dtype, t.data, R[i].count, &got, &e)) {
            syn_error(S, R[i].loc, "%s", e.msg);
            rc = -1;
        } else if (got != R[i].offset) {  /* cannot happen after the plan */
            syn_error(S, R[i].loc, "%s: synthetic blob landed at %llu instead of %llu", R[i].blob_path,
                      (unsigned long long)got, (unsigned long long)R[i].offset);
            rc = -1;
        }
        mil_rt_tensor_free(&t);
        end = got + 64 + mil_rt_blob_payload_size(R[i].dt, R[i].count);
    }
    if (mil_rt_blob_writer_close(w, &e) && rc == 0) {
        syn_error(S, R[a].loc, "%s", e.msg);
        rc = -1;
    }
    if (rc) unlink(path);
    return rc;
}

/* Symlinks path -> the same weight file resolved against the link dir, if
 * that exists.  1 = linked, 0 = no such file, -1 = error. */
static int link_existing(Synth *S, const SynRef *r) {
    char real[4096], abs_real[4096];
    MilRtErr e;
    if (mil_rt_blob_resolve(r->blob_path, S->o->link_dir, S->o->link_weights_dir, real, sizeof real, &e)) return 0;
    if (!realpath(real, abs_real)) return 0; /* no such file */
    if (make_parent(r->file) || symlink(abs_real, r->file) != 0) {
        syn_error(S, r->loc, "%s: cannot link %s to %s: %s", r->blob_path, r->file, abs_real, strerror(errno));
        return -1;
    }
    return 1;
}

int mil_synth_weights_opt(const MilProgram *p, const MilSynthOptions *o, MilDiag *d) {
    Synth S = {.o = o, .d = d};
    for (int i = 0; i < p->nattrs; i++) add_const(&S, p->attrs[i].val, p->attrs[i].loc);
    for (int fi = 0; fi < p->nfuncs; fi++) {
        const MilFunc *f = p->funcs[fi];
        for (int i = 0; i < f->nattrs; i++) add_const(&S, f->attrs[i].val, f->attrs[i].loc);
        for (const MilOp *op = f->body.first; op; op = op->next) {
            for (int a = 0; a < op->nattrs; a++) add_const(&S, op->attrs[a].val, op->attrs[a].loc);
            for (int a = 0; a < op->nargs; a++)
                for (int j = 0; j < op->args[a].n; j++) add_const(&S, op->args[a].items[j].cst, op->args[a].loc);
        }
    }
    int written = 0;
    if (S.errors == 0) {
        if (S.n) qsort(S.refs, (size_t)S.n, sizeof *S.refs, cmp_ref);
        for (int a = 0, b; a < S.n; a = b) {
            for (b = a; b < S.n && !strcmp(S.refs[b].file, S.refs[a].file); b++) {}
            if (access(S.refs[a].file, F_OK) == 0) continue;  /* exists: used as it is */
            if (!path_inside(S.refs[a].blob_path)) {
                syn_error(&S, S.refs[a].loc, "weight path '%s' is outside the model directory; not synthesised",
                          S.refs[a].blob_path);
                continue;
            }
            if (o->link_dir && link_existing(&S, &S.refs[a])) continue; /* linked, or reported */
            if (write_file(&S, a, b) == 0) written++;
        }
    }
    for (int i = 0; i < S.n; i++) free(S.refs[i].file);
    free(S.refs);
    if (o->stats) *o->stats = (MilSynthStats){.files = written, .blobs = S.n};
    return S.errors ? -1 : written;
}

int mil_synth_weights(const MilProgram *p, const char *model_dir, uint64_t seed, MilDiag *d) {
    MilSynthOptions o = {.model_dir = model_dir, .seed = seed};
    return mil_synth_weights_opt(p, &o, d);
}
