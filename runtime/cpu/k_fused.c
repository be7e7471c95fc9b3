/* runtime/cpu/k_fused.c -- kernels of the multi-op patterns the device fuses
 * at prepare (kutil.h KF_*, matched in device.c fuse_patterns).  Each one
 * computes, per element, the same float operations as the ops it replaces,
 * rounds where they would have stored (k_round_n) and sums in their order,
 * so a fused plan gives bit-identical results to the unfused one. */
#include "runtime/cpu/kutil.h"

void k_round_n(MilDType dt, float *v, int64_t n) {
    if (dt == MIL_DT_FP16) {
        uint16_t h[KCHUNK];
        for (int64_t s = 0; s < n; s += KCHUNK) {
            int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
            k_f2h_n(v + s, h, c);
            k_h2f_n(h, v + s, c);
        }
    } else if (dt != MIL_DT_FP32) {
        for (int64_t i = 0; i < n; i++) v[i] = k_roundf_dt(v[i], dt);
    }
}

/* ------------------------------------------------------ softmax backward */

/* The unfused ops: t = mul(dp, p); s = reduce_sum(t, [-1], keep) (k_sum8
 * order, stored); u = sub(dp, s); o = mul(p, u) [; o = mul(o, scale)]. */
typedef struct {
    const KFused *f;
    int64_t n;
} SmbJob;

K_VEC static void smb_mul(const float *a, const float *b, float *r, int64_t n) {
    for (int64_t i = 0; i < n; i++) r[i] = a[i] * b[i];
}

K_VEC static void smb_out(const float *dp, const float *p, float s, float *r, int64_t n, MilDType dt, bool has_scale,
                          float scale) {
    for (int64_t i = 0; i < n; i++) r[i] = dp[i] - s;
    k_round_n(dt, r, n);
    for (int64_t i = 0; i < n; i++) r[i] = p[i] * r[i];
    if (has_scale) {
        k_round_n(dt, r, n);
        for (int64_t i = 0; i < n; i++) r[i] = r[i] * scale;
    }
}

static void smb_rows(void *arg, int64_t r0, int64_t r1, int tid) {
    const SmbJob *j = arg;
    const KFused *f = j->f;
    int64_t n = j->n;
    MilDType dt = f->o->dtype;
    float dp[KCHUNK], p[KCHUNK], t[KCHUNK];
    (void)tid;
    for (int64_t r = r0; r < r1; r++) {
        int64_t base = r * n;
        double part[8] = {0};
        for (int64_t c0 = 0; c0 < n; c0 += KCHUNK) {
            int64_t cn = n - c0 < KCHUNK ? n - c0 : KCHUNK;
            k_loadf(f->a, base + c0, 1, cn, dp);
            k_loadf(f->b, base + c0, 1, cn, p);
            smb_mul(dp, p, t, cn);
            k_round_n(dt, t, cn);
            k_sum8(part, t, cn);
        }
        float s = k_roundf_dt((float)k_sum8_total(part), dt);
        for (int64_t c0 = 0; c0 < n; c0 += KCHUNK) {
            int64_t cn = n - c0 < KCHUNK ? n - c0 : KCHUNK;
            k_loadf(f->a, base + c0, 1, cn, dp);
            k_loadf(f->b, base + c0, 1, cn, p);
            smb_out(dp, p, s, t, cn, dt, f->has_scale, f->scale);
            k_storef(f->o, base + c0, cn, t);
        }
    }
}

int k_fused_run(const MilKernelCtx *k, const KFused *f) {
    switch (f->kind) {
    case KF_SOFTMAX_BWD: {
        const MilRtTensor *o = f->o;
        SmbJob j = {f, o->rank ? o->dims[o->rank - 1] : 1};
        int64_t rows = j.n ? k_numel(o) / j.n : 0;
        k_parallel(k, rows, 1, 8.0 * (double)k_numel(o), smb_rows, &j);
        return 0;
    }
    case KF_SOFTMAX_SM: return k_softmax_fused_run(k, f);
    default: return mil_k_fail((MilKernelCtx *)k, "unknown fused pattern %d", f->kind);
    }
}
