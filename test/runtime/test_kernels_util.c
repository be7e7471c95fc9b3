/* test/runtime/test_kernels_util.c -- the kernel test harness (see
 * test_kernels.h), with its own minimal .npy reader so that the kernel tests
 * depend on nothing but the kernel contract. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fp16.h"
#include "test_kernels.h"
#include "testutil.h"

typedef struct { int op, slot; const char *name; } KtArg;
static const KtArg kt_args[] = {
#define OP(id, name, wire, nres, flags)
#define ARG(op, name, flags, def) {MIL_OP_##op, MIL_A_##op##_##name, #name},
#include "ir/ops.def"
#undef OP
#undef ARG
};

static size_t dt_size(MilDType dt) {
    switch (dt) {
    case MIL_DT_FP16: case MIL_DT_BF16: case MIL_DT_INT16: case MIL_DT_UINT16: return 2;
    case MIL_DT_FP32: case MIL_DT_INT32: case MIL_DT_UINT32: return 4;
    case MIL_DT_FP64: case MIL_DT_INT64: case MIL_DT_UINT64: return 8;
    case MIL_DT_STRING: return sizeof(const char *);
    default: return 1;
    }
}

static int64_t numel(const MilRtTensor *x) {
    int64_t n = 1;
    for (int i = 0; i < x->rank; i++) n *= x->dims[i];
    return n;
}

void kt_init(KT *t, MilOpKind kind, int nout) {
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->nout = nout;
    for (size_t i = 0; i < sizeof kt_args / sizeof kt_args[0]; i++)
        if (kt_args[i].op == (int)kind && kt_args[i].slot + 1 > t->nslots) t->nslots = kt_args[i].slot + 1;
}

void kt_free(KT *t) {
    for (int i = 0; i < t->npool; i++) free(t->pool[i].data);
    for (int i = 0; i < 8; i++) free(t->outs[i].data);
    free(t->scratch);
    t->npool = 0;
}

int kt_slot(const KT *t, const char *name) {
    for (size_t i = 0; i < sizeof kt_args / sizeof kt_args[0]; i++)
        if (kt_args[i].op == (int)t->kind && !strcmp(kt_args[i].name, name)) return kt_args[i].slot;
    return -1;
}

MilRtTensor *kt_tensor(KT *t, MilDType dt, int rank, const int64_t *dims, const void *data) {
    if (t->npool >= KT_MAXT) return NULL;
    MilRtTensor *x = &t->pool[t->npool++];
    memset(x, 0, sizeof *x);
    x->dtype = dt;
    x->rank = rank;
    for (int i = 0; i < rank; i++) x->dims[i] = dims[i];
    size_t nb = (size_t)numel(x) * dt_size(dt);
    x->data = calloc(1, nb ? nb : 1);
    if (data && nb) memcpy(x->data, data, nb);
    return x;
}

void kt_bind(KT *t, int slot, const MilRtTensor *x) {
    if (slot < 0 || slot >= KT_MAXSLOT || t->slot_n[slot] >= KT_MAXVAR) {
        fprintf(stderr, "kt_bind: bad slot %d\n", slot);
        abort();
    }
    t->slotv[slot][t->slot_n[slot]++] = x;
}

static void bind_name(KT *t, const char *arg, const MilRtTensor *x) {
    int s = kt_slot(t, arg);
    if (s < 0) { fprintf(stderr, "kt: op has no argument '%s'\n", arg); abort(); }
    kt_bind(t, s, x);
}

void kt_f32(KT *t, const char *arg, float v) { bind_name(t, arg, kt_tensor(t, MIL_DT_FP32, 0, NULL, &v)); }
void kt_i32(KT *t, const char *arg, int32_t v) { bind_name(t, arg, kt_tensor(t, MIL_DT_INT32, 0, NULL, &v)); }
void kt_bool(KT *t, const char *arg, bool v) {
    uint8_t b = v;
    bind_name(t, arg, kt_tensor(t, MIL_DT_BOOL, 0, NULL, &b));
}
void kt_str(KT *t, const char *arg, const char *s) {
    MilRtTensor *x = kt_tensor(t, MIL_DT_STRING, 0, NULL, NULL);
    t->strs[t->npool - 1] = s;
    *(const char **)x->data = s;
    bind_name(t, arg, x);
}
void kt_i32v(KT *t, const char *arg, int n, const int32_t *v) {
    int64_t d = n;
    bind_name(t, arg, kt_tensor(t, MIL_DT_INT32, 1, &d, v));
}

/* ------------------------------------------------------------------ .npy */

static MilDType descr_dtype(const char *d) {
    if (!strcmp(d, "<f2")) return MIL_DT_FP16;
    if (!strcmp(d, "<f4")) return MIL_DT_FP32;
    if (!strcmp(d, "<f8")) return MIL_DT_FP64;
    if (!strcmp(d, "|i1")) return MIL_DT_INT8;
    if (!strcmp(d, "<i2")) return MIL_DT_INT16;
    if (!strcmp(d, "<i4")) return MIL_DT_INT32;
    if (!strcmp(d, "<i8")) return MIL_DT_INT64;
    if (!strcmp(d, "|u1")) return MIL_DT_UINT8;
    if (!strcmp(d, "<u2")) return MIL_DT_UINT16;
    if (!strcmp(d, "<u4")) return MIL_DT_UINT32;
    if (!strcmp(d, "|b1")) return MIL_DT_BOOL;
    return MIL_DT_NONE;
}

static char *fixture_path(const char *file) {
    static char buf[8][1024];
    static int r;
    char *b = buf[r++ & 7];
    snprintf(b, 1024, "%s/test/runtime/fixtures/%s", MILC_SOURCE_DIR, file);
    return b;
}

MilRtTensor *kt_npy(KT *t, const char *file) {
    size_t len;
    char *buf = tu_read_file(fixture_path(file), &len);
    if (!buf) return NULL;
    MilRtTensor *res = NULL;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6)) goto out;
    size_t hl, ho;
    if (buf[6] == 1) { hl = (uint8_t)buf[8] | (size_t)(uint8_t)buf[9] << 8; ho = 10; }
    else { hl = (uint8_t)buf[8] | (size_t)(uint8_t)buf[9] << 8 | (size_t)(uint8_t)buf[10] << 16 | (size_t)(uint8_t)buf[11] << 24; ho = 12; }
    if (ho + hl > len) goto out;
    char hdr[4096];
    size_t n = hl < sizeof hdr - 1 ? hl : sizeof hdr - 1;
    memcpy(hdr, buf + ho, n);
    hdr[n] = 0;
    char descr[16] = {0};
    const char *p = strstr(hdr, "'descr': '");
    if (!p) goto out;
    p += 10;
    for (int i = 0; i < 15 && p[i] != '\''; i++) descr[i] = p[i];
    if (strstr(hdr, "'fortran_order': True")) goto out;
    p = strstr(hdr, "'shape': (");
    if (!p) goto out;
    p += 10;
    int64_t dims[MIL_MAX_RANK];
    int rank = 0;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        dims[rank++] = strtoll(p, (char **)&p, 10);
    }
    MilDType dt = descr_dtype(descr);
    if (dt == MIL_DT_NONE) { fprintf(stderr, "kt_npy: %s: unsupported descr %s\n", file, descr); goto out; }
    res = kt_tensor(t, dt, rank, dims, NULL);
    size_t nb = (size_t)numel(res) * dt_size(dt);
    if (ho + hl + nb > len) { res = NULL; goto out; }
    memcpy(res->data, buf + ho + hl, nb);
out:
    free(buf);
    if (!res) fprintf(stderr, "kt_npy: cannot read %s\n", file);
    return res;
}

static bool file_exists(const char *file) {
    FILE *f = fopen(fixture_path(file), "rb");
    if (f) fclose(f);
    return f != NULL;
}

int kt_load_case(KT *t, const char *name) {
    char f[512];
    for (size_t i = 0; i < sizeof kt_args / sizeof kt_args[0]; i++) {
        if (kt_args[i].op != (int)t->kind) continue;
        const char *a = kt_args[i].name;
        snprintf(f, sizeof f, "%s.%s.npy", name, a);
        if (file_exists(f)) { kt_bind(t, kt_args[i].slot, kt_npy(t, f)); continue; }
        snprintf(f, sizeof f, "%s.%s.str", name, a);
        if (file_exists(f)) {
            size_t len;
            char *s = tu_read_file(fixture_path(f), &len);
            while (len && (s[len - 1] == '\n')) s[--len] = 0;
            MilRtTensor *x = kt_tensor(t, MIL_DT_STRING, 0, NULL, NULL);
            /* keep the string alive with the tensor: stash it in a pool tensor */
            MilRtTensor *hold = kt_tensor(t, MIL_DT_UINT8, 1, (int64_t[]){(int64_t)len + 1}, s);
            free(s);
            *(const char **)x->data = hold->data;
            kt_bind(t, kt_args[i].slot, x);
            continue;
        }
        for (int j = 0; j < KT_MAXVAR; j++) {
            snprintf(f, sizeof f, "%s.%s.%d.npy", name, a, j);
            if (!file_exists(f)) break;
            kt_bind(t, kt_args[i].slot, kt_npy(t, f));
        }
    }
    int nout = 0;
    for (; nout < 8; nout++) {
        snprintf(f, sizeof f, "%s.out%d.npy", name, nout);
        if (!file_exists(f)) break;
    }
    return nout;
}

static void build_ctx(KT *t) {
    for (int s = 0; s < KT_MAXSLOT; s++) t->slotp[s] = t->slotv[s];
    for (int i = 0; i < 8; i++) t->outp[i] = &t->outs[i];
    t->ctx.kind = t->kind;
    t->ctx.nslots = t->nslots;
    t->ctx.slot_n = t->slot_n;
    t->ctx.slot = t->slotp;
    t->ctx.nout = t->nout;
    t->ctx.out = t->outp;
    t->ctx.err = t->err;
    t->ctx.errsize = sizeof t->err;
    t->err[0] = 0;
}

int kt_shape(KT *t) {
    build_ctx(t);
    const MilKernel *kn = &mil_cpu_kernels[t->kind];
    if (!kn->shape) { snprintf(t->err, sizeof t->err, "no kernel"); return MIL_K_UNSUPPORTED; }
    return kn->shape(&t->ctx);
}

int kt_run(KT *t) {
    int rc = kt_shape(t);
    if (rc) return rc;
    const MilKernel *kn = &mil_cpu_kernels[t->kind];
    for (int i = 0; i < t->nout; i++) {
        free(t->outs[i].data);
        size_t nb = (size_t)numel(&t->outs[i]) * dt_size(t->outs[i].dtype);
        t->outs[i].data = calloc(1, nb ? nb : 1);
    }
    size_t ss = kn->scratch ? kn->scratch(&t->ctx) : 0;
    free(t->scratch);
    t->scratch = NULL;
    if (ss) {
        size_t al = (ss + 63) & ~(size_t)63;
        t->scratch = aligned_alloc(64, al);
        /* poison: kernels must not rely on zeroed scratch */
        memset(t->scratch, 0xA5, al);
    }
    t->ctx.scratch = t->scratch;
    t->ctx.scratch_size = ss;
    if (!kn->run) { snprintf(t->err, sizeof t->err, "no run"); return MIL_K_UNSUPPORTED; }
    return kn->run(&t->ctx);
}

static double getd(const MilRtTensor *x, int64_t i) {
    const void *p = x->data;
    switch (x->dtype) {
    case MIL_DT_FP16: return mil_h2f(((const uint16_t *)p)[i]);
    case MIL_DT_FP32: return ((const float *)p)[i];
    case MIL_DT_FP64: return ((const double *)p)[i];
    case MIL_DT_INT8: return ((const int8_t *)p)[i];
    case MIL_DT_INT16: return ((const int16_t *)p)[i];
    case MIL_DT_INT32: return ((const int32_t *)p)[i];
    case MIL_DT_INT64: return (double)((const int64_t *)p)[i];
    case MIL_DT_UINT16: return ((const uint16_t *)p)[i];
    case MIL_DT_UINT32: return ((const uint32_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}

bool kt_check(KT *t, const char *name, int i, double rtol, double atol) {
    char f[512];
    snprintf(f, sizeof f, "%s.out%d.npy", name, i);
    MilRtTensor *w = kt_npy(t, f);
    MilRtTensor *g = &t->outs[i];
    if (!w) return false;
    if (w->dtype != g->dtype) {
        fprintf(stderr, "%s out%d: dtype %d, expected %d\n", name, i, g->dtype, w->dtype);
        return false;
    }
    bool ok = w->rank == g->rank;
    for (int a = 0; ok && a < w->rank; a++) ok = w->dims[a] == g->dims[a];
    if (!ok) {
        fprintf(stderr, "%s out%d: shape mismatch (rank %d vs %d; dims", name, i, g->rank, w->rank);
        for (int a = 0; a < g->rank; a++) fprintf(stderr, " %lld", (long long)g->dims[a]);
        fprintf(stderr, " vs");
        for (int a = 0; a < w->rank; a++) fprintf(stderr, " %lld", (long long)w->dims[a]);
        fprintf(stderr, ")\n");
        return false;
    }
    bool fl = w->dtype == MIL_DT_FP16 || w->dtype == MIL_DT_FP32 || w->dtype == MIL_DT_FP64;
    int64_t n = numel(w);
    for (int64_t j = 0; j < n; j++) {
        double a = getd(g, j), b = getd(w, j);
        bool good;
        if (!fl) good = a == b;
        else if (isnan(b)) good = isnan(a);
        else if (isinf(b)) good = a == b;
        else good = fabs(a - b) <= atol + rtol * fabs(b);
        if (!good) {
            fprintf(stderr, "%s out%d: element %lld: got %.9g, expected %.9g\n", name, i, (long long)j, a, b);
            return false;
        }
    }
    return true;
}

bool kt_case(MilOpKind kind, const char *name, double rtol, double atol) {
    KT *t = malloc(sizeof *t);
    kt_init(t, kind, 0);
    int nout = kt_load_case(t, name);
    t->nout = nout;
    bool ok = nout > 0;
    if (!ok) fprintf(stderr, "%s: no expected outputs\n", name);
    int rc = ok ? kt_run(t) : -1;
    if (ok && rc) {
        fprintf(stderr, "%s: kernel failed (%d): %s\n", name, rc, t->err);
        ok = false;
    }
    for (int i = 0; ok && i < nout; i++) {
        MilDType dt = t->outs[i].dtype;
        double r = rtol > 0 ? rtol : (dt == MIL_DT_FP16 ? 1e-3 : 1e-5);
        double a = atol > 0 ? atol : (dt == MIL_DT_FP16 ? 1e-3 : 1e-5);
        ok = kt_check(t, name, i, r, a);
    }
    kt_free(t);
    free(t);
    return ok;
}

bool kt_case_fails(MilOpKind kind, const char *name, const char *needle) {
    KT *t = malloc(sizeof *t);
    kt_init(t, kind, 1);
    int nout = kt_load_case(t, name);
    t->nout = nout ? nout : 1;
    int rc = kt_run(t);
    bool ok = rc == MIL_K_ERROR && strstr(t->err, needle) != NULL;
    if (!ok) fprintf(stderr, "%s: expected an error containing \"%s\", got rc %d \"%s\"\n", name, needle, rc, t->err);
    kt_free(t);
    free(t);
    return ok;
}
