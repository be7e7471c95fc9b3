/* runtime/cpu/k_rnn.c -- lstm, gru and rnn (coremltools iOS15/iOS17 semantics).
 *
 * x [T, B, I]; weight_ih [G*H, I], weight_hh [G*H, H], bias [G*H] (= b_ih + b_hh);
 * initial_h / initial_c [B, D*H] (D = 2 for a bidirectional lstm: [:, :H]
 * forward, [:, H:] backward).  Gate order: lstm i, f, o, z (cell); gru r, o, z
 * with o = act(W_io x + b_o + W_ho (r * h)) (the reset gate scales the state
 * before the matmul, as in coremltools' reference); rnn one gate.
 * Outputs: the sequence [T or 1, B, D*H], the final h [B, D*H] (and for lstm
 * the final c).  direction "reverse" writes the sequence in processing order
 * (step k = input T-1-k); the backward half of a bidirectional lstm is aligned
 * with the input time; output_sequence false gives the final states.
 * lstm clip clamps the cell state after each update; peephole [3H] (i, f, o)
 * reads c_{t-1} for i and f and c_t for o.
 *
 * Everything is computed in fp32 (x W_ih^T + b for all steps with one sgemm,
 * then h W_hh^T per step), states stay fp32, outputs are rounded once. */
#include <cblas.h>

#include "runtime/cpu/kutil.h"

KDECLS(k_lstm) KDECLS(k_gru) KDECLS(k_rnn)

enum { ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_HSIG, ACT_LINEAR };

typedef enum { RK_LSTM, RK_GRU, RK_RNN } RKind;

typedef struct {
    RKind kind;
    int G, ndir;
    const MilRtTensor *x, *h0, *c0, *wih[2], *whh[2], *b[2], *peep[2];
    int64_t T, B, NI, H;
    bool seq, reverse, has_clip;
    int ract, cact, act;
    float clip;
} RP;

static int parse_act(MilKernelCtx *k, int slot, const char *def, int *out) {
    const char *s;
    int rc = k_arg_str(k, slot, def, &s);
    if (rc) return rc;
    if (!strcmp(s, "sigmoid")) *out = ACT_SIGMOID;
    /* coremltools uses each activation with its default parameters, so
     * scaled_tanh (alpha = beta = 1) is tanh and linear is the identity */
    else if (!strcmp(s, "tanh") || !strcmp(s, "scaled_tanh")) *out = ACT_TANH;
    else if (!strcmp(s, "relu")) *out = ACT_RELU;
    else if (!strcmp(s, "sigmoid_hard") || !strcmp(s, "hard_sigmoid")) *out = ACT_HSIG;
    else if (!strcmp(s, "linear")) *out = ACT_LINEAR;
    else return mil_k_fail(k, "%s: unsupported activation \"%s\" for '%s'", k_opname(k), s, k_argname(k, slot));
    return 0;
}

static inline float actf(int a, float v) {
    switch (a) {
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case ACT_TANH: return tanhf(v);
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_HSIG: { float r = 0.2f * v + 0.5f; return r < 0 ? 0 : r > 1 ? 1 : r; }
    default: return v;
    }
}

static int chk_float(MilKernelCtx *k, const MilRtTensor *t, const char *what) {
    return t ? k_need_float(k, t, what) : 0;
}

static int chk_mat(MilKernelCtx *k, const MilRtTensor *w, const char *what, int64_t r, int64_t c) {
    int rc = k_need_float(k, w, what);
    if (rc) return rc;
    if (w->rank != 2 || w->dims[0] != r || w->dims[1] != c)
        return mil_k_fail(k, "%s: %s must have shape [%lld, %lld]", k_opname(k), what, (long long)r, (long long)c);
    return 0;
}

static int chk_vec(MilKernelCtx *k, const MilRtTensor *v, const char *what, int64_t n) {
    if (!v) return 0;
    int rc = k_need_float(k, v, what);
    if (rc) return rc;
    if (v->rank != 1 || v->dims[0] != n)
        return mil_k_fail(k, "%s: %s must have shape [%lld]", k_opname(k), what, (long long)n);
    return 0;
}

static int rnn_params(MilKernelCtx *k, RKind kind, RP *p) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    int rc;
    const char *dir;
    int sx, sh, sih, shh, sb, sdir, sseq;
    switch (kind) {
    case RK_LSTM:
        p->G = 4;
        sx = MIL_A_LSTM_x; sh = MIL_A_LSTM_initial_h; sih = MIL_A_LSTM_weight_ih; shh = MIL_A_LSTM_weight_hh;
        sb = MIL_A_LSTM_bias; sdir = MIL_A_LSTM_direction; sseq = MIL_A_LSTM_output_sequence;
        break;
    case RK_GRU:
        p->G = 3;
        sx = MIL_A_GRU_x; sh = MIL_A_GRU_initial_h; sih = MIL_A_GRU_weight_ih; shh = MIL_A_GRU_weight_hh;
        sb = MIL_A_GRU_bias; sdir = MIL_A_GRU_direction; sseq = MIL_A_GRU_output_sequence;
        break;
    default:
        p->G = 1;
        sx = MIL_A_RNN_x; sh = MIL_A_RNN_initial_h; sih = MIL_A_RNN_weight_ih; shh = MIL_A_RNN_weight_hh;
        sb = MIL_A_RNN_bias; sdir = MIL_A_RNN_direction; sseq = MIL_A_RNN_output_sequence;
        break;
    }
    if (!(p->x = k_req(k, sx)) || !(p->h0 = k_req(k, sh)) || !(p->wih[0] = k_req(k, sih)) ||
        !(p->whh[0] = k_req(k, shh)))
        return MIL_K_ERROR;
    if (kind == RK_LSTM && !(p->c0 = k_req(k, MIL_A_LSTM_initial_c))) return MIL_K_ERROR;
    p->b[0] = mil_k_in(k, sb);
    if ((rc = k_arg_str(k, sdir, "forward", &dir))) return rc;
    if ((rc = k_arg_bool(k, sseq, false, &p->seq))) return rc;
    p->ndir = 1;
    if (!strcmp(dir, "reverse")) p->reverse = true;
    else if (!strcmp(dir, "bidirectional") && kind == RK_LSTM) p->ndir = 2;
    else if (strcmp(dir, "forward"))
        return mil_k_fail(k, "%s: unsupported direction \"%s\"", k_opname(k), dir);
    switch (kind) {
    case RK_LSTM:
        if ((rc = parse_act(k, MIL_A_LSTM_recurrent_activation, "sigmoid", &p->ract)) ||
            (rc = parse_act(k, MIL_A_LSTM_cell_activation, "tanh", &p->cact)) ||
            (rc = parse_act(k, MIL_A_LSTM_activation, "tanh", &p->act)))
            return rc;
        p->peep[0] = mil_k_in(k, MIL_A_LSTM_peephole);
        if (mil_k_in(k, MIL_A_LSTM_clip)) {
            double c;
            if ((rc = k_arg_float(k, MIL_A_LSTM_clip, 0, &c))) return rc;
            p->has_clip = true;
            p->clip = (float)c;
        }
        if (p->ndir == 2) {
            if (!(p->wih[1] = mil_k_in(k, MIL_A_LSTM_weight_ih_back)) ||
                !(p->whh[1] = mil_k_in(k, MIL_A_LSTM_weight_hh_back)))
                return mil_k_fail(k, "lstm: a bidirectional lstm needs weight_ih_back and weight_hh_back");
            p->b[1] = mil_k_in(k, MIL_A_LSTM_bias_back);
            p->peep[1] = mil_k_in(k, MIL_A_LSTM_peephole_back);
        }
        break;
    case RK_GRU: {
        bool ra;
        if ((rc = parse_act(k, MIL_A_GRU_recurrent_activation, "sigmoid", &p->ract)) ||
            (rc = parse_act(k, MIL_A_GRU_activation, "tanh", &p->act)))
            return rc;
        if ((rc = k_arg_bool(k, MIL_A_GRU_reset_after, false, &ra))) return rc;
        if (ra) return mil_k_fail(k, "gru: reset_after = true is not supported");
        break;
    }
    default:
        if ((rc = parse_act(k, MIL_A_RNN_activation, "tanh", &p->act))) return rc;
        break;
    }
    const MilRtTensor *x = p->x;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if (x->rank != 3) return mil_k_fail(k, "%s: x must have rank 3 ([T, B, I])", k_opname(k));
    p->T = x->dims[0]; p->B = x->dims[1]; p->NI = x->dims[2];
    if (p->whh[0]->rank != 2) return mil_k_fail(k, "%s: weight_hh must have rank 2", k_opname(k));
    p->H = p->whh[0]->dims[1];
    int64_t GH = p->G * p->H;
    for (int d = 0; d < p->ndir; d++) {
        if ((rc = chk_mat(k, p->wih[d], d ? "weight_ih_back" : "weight_ih", GH, p->NI)) ||
            (rc = chk_mat(k, p->whh[d], d ? "weight_hh_back" : "weight_hh", GH, p->H)) ||
            (rc = chk_vec(k, p->b[d], d ? "bias_back" : "bias", GH)) ||
            (rc = chk_vec(k, p->peep[d], d ? "peephole_back" : "peephole", 3 * p->H)))
            return rc;
    }
    int64_t DH = p->ndir * p->H;
    const MilRtTensor *st[2] = {p->h0, p->c0};
    for (int i = 0; i < 2; i++) {
        if (!st[i]) continue;
        if ((rc = chk_float(k, st[i], i ? "initial_c" : "initial_h"))) return rc;
        if (st[i]->rank != 2 || st[i]->dims[0] != p->B || st[i]->dims[1] != DH)
            return mil_k_fail(k, "%s: %s must have shape [%lld, %lld]", k_opname(k), i ? "initial_c" : "initial_h",
                              (long long)p->B, (long long)DH);
    }
    return 0;
}

static int rnn_shape(MilKernelCtx *k, RKind kind) {
    RP p;
    int rc = rnn_params(k, kind, &p);
    if (rc) return rc;
    int64_t DH = p.ndir * p.H;
    int64_t d0[3] = {p.seq ? p.T : 1, p.B, DH}, d1[2] = {p.B, DH};
    k_set_shape(k->out[0], p.x->dtype, 3, d0);
    for (int i = 1; i < k->nout && i < (kind == RK_LSTM ? 3 : 2); i++) k_set_shape(k->out[i], p.x->dtype, 2, d1);
    return 0;
}

static size_t rnn_scratch_of(const RP *p) {
    int64_t GH = p->G * p->H, BH = p->B * p->H;
    return k_al64((size_t)(p->T * p->B * p->NI) * 4) + k_al64((size_t)(GH * p->NI) * 4) +
           k_al64((size_t)(GH * p->H) * 4) + k_al64((size_t)GH * 4) + k_al64((size_t)(3 * p->H) * 4) +
           k_al64((size_t)(p->T * p->B * GH) * 4) + k_al64((size_t)(p->B * GH) * 4) + 4 * k_al64((size_t)BH * 4);
}

static size_t rnn_scratch(const MilKernelCtx *k, RKind kind) {
    RP p;
    if (rnn_params((MilKernelCtx *)k, kind, &p)) return 0;
    return rnn_scratch_of(&p);
}

/* One direction d: runs the recurrence and writes its part of the outputs. */
static void rnn_dir(MilKernelCtx *k, const RP *p, int d, const float *X, char *sp) {
    int64_t T = p->T, B = p->B, NI = p->NI, H = p->H, G = p->G, GH = G * H, DH = p->ndir * H;
    float *W = k_take(&sp, GH * NI), *R = k_take(&sp, GH * H), *bias = k_take(&sp, GH), *pp = k_take(&sp, 3 * H);
    float *XP = k_take(&sp, T * B * GH), *gt = k_take(&sp, B * GH);
    float *h = k_take(&sp, B * H), *c = k_take(&sp, B * H), *t1 = k_take(&sp, B * H), *t2 = k_take(&sp, B * H);
    k_tof32(p->wih[d], W);
    k_tof32(p->whh[d], R);
    if (p->b[d]) k_tof32(p->b[d], bias);
    else memset(bias, 0, (size_t)GH * 4);
    if (p->peep[d]) k_tof32(p->peep[d], pp);
    else memset(pp, 0, (size_t)(3 * H) * 4);
    for (int64_t b = 0; b < B; b++) {
        k_loadf(p->h0, b * DH + d * H, 1, H, h + b * H);
        if (p->c0) k_loadf(p->c0, b * DH + d * H, 1, H, c + b * H);
    }
    /* XP[t, b, :] = x[t, b, :] W^T + bias */
    for (int64_t r = 0; r < T * B; r++) memcpy(XP + r * GH, bias, (size_t)GH * 4);
    if (T * B > 0 && NI > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(T * B), (int)GH, (int)NI, 1.0f, X, (int)NI, W, (int)NI,
                    1.0f, XP, (int)GH);
    bool rev = p->reverse || d == 1;
    MilRtTensor *o0 = k->out[0];
    for (int64_t s = 0; s < T; s++) {
        int64_t t = rev ? T - 1 - s : s;
        memcpy(gt, XP + t * B * GH, (size_t)(B * GH) * 4);
        if (p->kind == RK_GRU) {
            /* r and z gates: rows [0, H) and [2H, 3H) of R */
            if (H > 0) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)H, (int)H, 1.0f, h, (int)H, R,
                            (int)H, 0.0f, t1, (int)H);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)H, (int)H, 1.0f, h, (int)H,
                            R + 2 * H * H, (int)H, 0.0f, t2, (int)H);
            }
            for (int64_t i = 0; i < B * H; i++) {
                int64_t b = i / H, j = i % H;
                float r = actf(p->ract, gt[b * GH + j] + t1[i]);
                float z = actf(p->ract, gt[b * GH + 2 * H + j] + t2[i]);
                t1[i] = r * h[i];
                t2[i] = z;
            }
            /* c (unused by gru) holds (r * h) W_o^T */
            if (H > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)H, (int)H, 1.0f, t1, (int)H,
                            R + H * H, (int)H, 0.0f, c, (int)H);
            for (int64_t i = 0; i < B * H; i++) {
                int64_t b = i / H, j = i % H;
                float o = actf(p->act, gt[b * GH + H + j] + c[i]);
                h[i] = (1.0f - t2[i]) * o + t2[i] * h[i];
            }
        } else {
            if (H > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)GH, (int)H, 1.0f, h, (int)H, R,
                            (int)H, 1.0f, gt, (int)GH);
            if (p->kind == RK_RNN) {
                for (int64_t i = 0; i < B * H; i++) h[i] = actf(p->act, gt[i]);
            } else {
                for (int64_t b = 0; b < B; b++) {
                    const float *g = gt + b * GH;
                    float *hb = h + b * H, *cb = c + b * H;
                    for (int64_t j = 0; j < H; j++) {
                        float cp = cb[j];
                        float ig = actf(p->ract, g[j] + pp[j] * cp);
                        float fg = actf(p->ract, g[H + j] + pp[H + j] * cp);
                        float zg = actf(p->cact, g[3 * H + j]);
                        float cn = fg * cp + ig * zg;
                        if (p->has_clip) cn = cn > p->clip ? p->clip : cn < -p->clip ? -p->clip : cn;
                        float og = actf(p->ract, g[2 * H + j] + pp[2 * H + j] * cn);
                        cb[j] = cn;
                        hb[j] = og * actf(p->act, cn);
                    }
                }
            }
        }
        if (p->seq) {
            int64_t pos = d == 1 ? t : s;
            for (int64_t b = 0; b < B; b++) k_storef(o0, (pos * B + b) * DH + d * H, H, h + b * H);
        }
    }
    for (int64_t b = 0; b < B; b++) {
        if (!p->seq) k_storef(o0, b * DH + d * H, H, h + b * H);
        if (k->nout > 1) k_storef(k->out[1], b * DH + d * H, H, h + b * H);
        if (p->kind == RK_LSTM && k->nout > 2) k_storef(k->out[2], b * DH + d * H, H, c + b * H);
    }
}

static int rnn_run(MilKernelCtx *k, RKind kind) {
    RP p;
    int rc = rnn_params(k, kind, &p);
    if (rc) return rc;
    if (k->scratch_size < rnn_scratch_of(&p)) return mil_k_fail(k, "%s: scratch too small", k_opname(k));
    char *sp = k->scratch;
    float *X = k_take(&sp, p.T * p.B * p.NI);
    k_tof32(p.x, X);
    for (int d = 0; d < p.ndir; d++) rnn_dir(k, &p, d, X, sp);
    return 0;
}

int k_lstm_shape(MilKernelCtx *k) { return rnn_shape(k, RK_LSTM); }
int k_lstm_run(MilKernelCtx *k) { return rnn_run(k, RK_LSTM); }
size_t k_lstm_scratch(const MilKernelCtx *k) { return rnn_scratch(k, RK_LSTM); }
int k_gru_shape(MilKernelCtx *k) { return rnn_shape(k, RK_GRU); }
int k_gru_run(MilKernelCtx *k) { return rnn_run(k, RK_GRU); }
size_t k_gru_scratch(const MilKernelCtx *k) { return rnn_scratch(k, RK_GRU); }
int k_rnn_shape(MilKernelCtx *k) { return rnn_shape(k, RK_RNN); }
int k_rnn_run(MilKernelCtx *k) { return rnn_run(k, RK_RNN); }
size_t k_rnn_scratch(const MilKernelCtx *k) { return rnn_scratch(k, RK_RNN); }
