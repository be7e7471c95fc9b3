/* runtime/cpu/device.c -- the CPU reference device: a planner and an
 * executor around the kernel table mil_cpu_kernels (runtime/cpu/kernel.h).
 *
 * prepare(f, input shapes)
 *   1. Every value gets a MilRtTensor in the plan: inputs take the given
 *      shapes, constants point at their data, temporaries are shaped by
 *      calling each op's kernel shape() in order.  A computed result must
 *      agree with the declared type where that is known (dtype, rank, every
 *      non-`?` dim), else prepare fails with the op's location.
 *   2. An op whose arguments all have data at prepare time (constants, or
 *      results of ops folded before it), and `shape` of a tensor whose shape
 *      is known, is FOLDED: evaluated once now; its results become plan-owned
 *      constants and the op is skipped at run time.
 *   3. An op whose kernel shape() returns MIL_K_NEED_DATA (output shape
 *      depends on runtime data: reshape by a computed shape, range_1d, fill
 *      of a computed shape, ...) is DYNAMIC, and so is every op that consumes
 *      a DYNAMIC result.  At run time the executor calls shape() again (now
 *      with data), checks the declared type, and stores the results in a
 *      per-value buffer owned by the plan that only grows (realloc when a run
 *      needs more than any run before), so steady state does not allocate.
 *   4. The remaining (static) temporaries are placed in ONE arena by a
 *      liveness-based offset allocator (ggml-alloc's idea): walking the ops in
 *      order, an op's results are allocated first (kernels never run in
 *      place), then every value whose last use is this op is freed; free
 *      blocks are reused best-fit and coalesced.  Function outputs are never
 *      freed.  All offsets are 64-byte aligned.
 *   5. One scratch buffer of the largest kernel scratch() is allocated.
 * run(inputs)
 *   sets the inputs' data pointers (inputs are read in place, never copied),
 *   then calls run() of each non-folded op: one indirect call per op, no
 *   allocation except growth of DYNAMIC buffers.
 */
#include "runtime/cpu/kutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W_NONE, W_INPUT, W_CONST, W_ARENA, W_FOLDED, W_DYN };
enum { S_RUN, S_FOLDED, S_DYNAMIC, S_FUSED };

typedef struct Step {
    const MilRtOp *op;
    const MilKernel *k;
    MilKernelCtx ctx;
    int mode;
    size_t slot0;                /* the op's first slot in the plan's flat slot arrays */
    int fuse_from;               /* a S_FUSED unary step computed inside this one, or -1 */
    int fuse_pos;                /* ... as this binary op's operand 0 or 1 */
    KFused fz;                   /* fz.kind != KF_NONE: a multi-op pattern ending here */
    int xr[3], nxr;              /* values this step reads besides its op's arguments */
} Step;

/* The device: its thread pool, created at the first prepare. */
typedef struct CpuDev {
    MilRtDevice base;
    int nthreads;
    MilPool *pool;
    pthread_mutex_t mu;
} CpuDev;

typedef struct CpuPlan {
    MilRtPlan base;
    int nvalues;
    MilRtTensor *t;              /* per value */
    uint8_t *where;              /* per value: W_* */
    size_t *off;                 /* W_ARENA: arena offset */
    void **dynbuf;               /* W_DYN: buffer, capacity in dyncap */
    size_t *dyncap;
    Step *steps;
    int nsteps;
    const MilRtTensor **argp;    /* all ops' argument pointers, flat */
    const MilRtTensor *const **slotp; /* per op per slot: &argp[...] */
    int *slotn;                  /* per op per slot: count */
    MilRtTensor **outp;          /* per op results, flat */
    uint8_t *arena;
    void *scratch;
    size_t scratch_cap;
    void **folded;               /* malloc'd data of folded results */
    int nfolded;
    float **cf32v;               /* per value: fp32 copy of an fp16/bf16 constant (or NULL) */
    const float **cf32p;         /* per op per slot: what ctx.cf32 points at */
    char kerr[512];
} CpuPlan;

static bool cpu_supports_op(MilRtDevice *dev, const MilRtFunc *f, const MilRtOp *op) {
    (void)dev; (void)f;
    if (op->kind <= MIL_OP_UNKNOWN || op->kind >= MIL_OP_COUNT) return false;
    const MilKernel *k = &mil_cpu_kernels[op->kind];
    return k->run != NULL && k->shape != NULL;
}

/* "model.mil:3:5: error: op 'matmul' (x_3): " */
static int op_err(MilRtErr *e, const MilRtFunc *f, const MilRtOp *op, const char *fmt, const char *msg) {
    char where[600];
    mil_rt_op_where(f, op, where, sizeof where);
    if (op->name && *op->name)
        return mil_rt_errf(e, "%sop '%s' ('%s'): %s", where, op->opname, op->name, msg ? msg : fmt);
    return mil_rt_errf(e, "%sop '%s': %s", where, op->opname, msg ? msg : fmt);
}

static int kernel_err(MilRtErr *e, const MilRtFunc *f, const MilRtOp *op, int rc, const char *kmsg) {
    if (rc == MIL_K_UNSUPPORTED && !*kmsg) kmsg = "unsupported by the cpu kernel";
    if (!*kmsg) kmsg = "kernel failed";
    return op_err(e, f, op, NULL, kmsg);
}

/* Computed result vs declared type (and a sanity bound on its size, so
 * that byte counts cannot overflow). */
static int check_declared(const MilRtFunc *f, const MilRtOp *op, int vid, const MilRtTensor *t, MilRtErr *e) {
    const MilRtValue *v = &f->values[vid];
    int64_t numel = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0 || (t->dims[i] > 0 && numel > ((int64_t)1 << 50) / t->dims[i]))
            return op_err(e, f, op, NULL, "result shape out of range");
        numel *= t->dims[i];
    }
    bool ok = v->dtype == t->dtype && v->rank == t->rank;
    for (int i = 0; ok && i < v->rank; i++)
        if (v->dims[i] >= 0 && v->dims[i] != t->dims[i]) ok = false;
    if (ok) return 0;
    char a[256], b[256], msg[700];
    snprintf(msg, sizeof msg, "result '%s' is declared %s but the arguments give %s", v->name,
             mil_rt_format_type(v->dtype, v->rank, v->dims, a, sizeof a),
             mil_rt_format_type(t->dtype, t->rank, t->dims, b, sizeof b));
    return op_err(e, f, op, NULL, msg);
}

/* Binds ctx of op to caller-provided arrays: argp (the arguments, flat in
 * slot order) and outp (the results) filled by the caller, slotp / slotn
 * (the slots' runs of argp) filled here. */
static void bind_ctx(MilKernelCtx *c, const MilRtOp *op, const MilRtTensor **argp, const MilRtTensor *const **slotp,
                     int *slotn, MilRtTensor **outp, char *err, size_t errsize) {
    int a = 0;
    for (int s = 0; s < op->nslots; s++) {
        const int *ids;
        slotn[s] = mil_rt_op_slot(op, s, &ids);
        slotp[s] = &argp[a];
        a += slotn[s];
    }
    memset(c, 0, sizeof *c);
    c->kind = op->kind;
    c->nslots = op->nslots;
    c->slot_n = slotn;
    c->slot = slotp;
    c->nout = op->nout;
    c->out = outp;
    c->err = err;
    c->errsize = errsize;
}

static void reset_outs(MilKernelCtx *c) {
    for (int i = 0; i < c->nout; i++) {
        MilRtTensor *o = c->out[i];
        void *d = o->data;
        memset(o, 0, sizeof *o);
        o->data = d;
    }
}

/* shape + alloc + run with malloc'd outputs (folding and constexpr eval). */
static int eval_now(MilKernelCtx *c, const MilKernel *k, const MilRtFunc *f, const MilRtOp *op, MilRtErr *e) {
    c->err[0] = 0;
    reset_outs(c);
    for (int i = 0; i < c->nout; i++) c->out[i]->data = NULL;
    int rc = k->shape(c);
    if (rc) return kernel_err(e, f, op, rc, c->err);
    for (int i = 0; i < c->nout; i++)
        if (mil_rt_tensor_alloc(c->out[i], e)) goto fail;
    size_t ss = k->scratch ? k->scratch(c) : 0;
    void *scratch = NULL;
    if (ss) {
        scratch = aligned_alloc(64, (ss + 63) & ~(size_t)63);
        if (!scratch) { mil_rt_errf(e, "out of memory"); goto fail; }
    }
    c->scratch = scratch;
    c->scratch_size = ss;
    rc = k->run(c);
    free(scratch);
    c->scratch = NULL;
    if (rc) { kernel_err(e, f, op, rc, c->err); goto fail; }
    return 0;
fail:
    for (int i = 0; i < c->nout; i++) mil_rt_tensor_free(c->out[i]);
    return -1;
}

int mil_rt_eval_const_op(const MilRtFunc *f, const MilRtOp *op, MilRtTensor *outs, MilRtErr *e) {
    if (!cpu_supports_op(NULL, f, op)) return op_err(e, f, op, "is not supported by the cpu device", NULL);
    int nargs = op->slot_start[op->nslots];
    MilRtTensor *args = calloc((size_t)nargs + 1, sizeof *args);
    const MilRtTensor **argp = calloc((size_t)nargs + 1, sizeof *argp);
    const MilRtTensor *const **slotp = calloc((size_t)op->nslots + 1, sizeof *slotp);
    int *slotn = calloc((size_t)op->nslots + 1, sizeof *slotn);
    MilRtTensor **outp = calloc((size_t)op->nout + 1, sizeof *outp);
    char kerr[512] = "";
    int rc = -1;
    if (!args || !argp || !slotp || !slotn || !outp) { mil_rt_errf(e, "out of memory"); goto done; }
    for (int a = 0; a < nargs; a++) {
        const MilRtValue *v = &f->values[op->args[a]];
        if (v->kind != MIL_RT_CONST) {
            char msg[300];
            snprintf(msg, sizeof msg, "argument '%s' is not a constant", v->name);
            op_err(e, f, op, NULL, msg);
            goto done;
        }
        mil_rt_value_tensor(v, &args[a]);
        argp[a] = &args[a];
    }
    for (int i = 0; i < op->nout; i++) {
        memset(&outs[i], 0, sizeof outs[i]);
        outp[i] = &outs[i];
    }
    MilKernelCtx c;
    bind_ctx(&c, op, argp, slotp, slotn, outp, kerr, sizeof kerr);
    rc = eval_now(&c, &mil_cpu_kernels[op->kind], f, op, e);
done:
    free(args);
    free(argp);
    free(slotp);
    free(slotn);
    free(outp);
    return rc;
}

/* ------------------------------------------------------ offset allocator */

typedef struct Block { size_t off, size; } Block;
typedef struct Alloc {
    Block *free;
    int n, cap;
    size_t top;      /* high-water mark */
} Alloc;

static size_t a_round(size_t n) { n = (n + 63) & ~(size_t)63; return n ? n : 64; }

static int a_alloc(Alloc *a, size_t size, size_t *off) {
    size = a_round(size);
    int best = -1;
    for (int i = 0; i < a->n; i++)
        if (a->free[i].size >= size && (best < 0 || a->free[i].size < a->free[best].size)) best = i;
    if (best >= 0) {
        *off = a->free[best].off;
        a->free[best].off += size;
        a->free[best].size -= size;
        if (a->free[best].size == 0) a->free[best] = a->free[--a->n];
        return 0;
    }
    /* extend: merge with a free block touching the top */
    for (int i = 0; i < a->n; i++)
        if (a->free[i].off + a->free[i].size == a->top) {
            *off = a->free[i].off;
            a->top = a->free[i].off + size;
            a->free[i] = a->free[--a->n];
            return 0;
        }
    *off = a->top;
    a->top += size;
    return 0;
}

static int a_free(Alloc *a, size_t off, size_t size) {
    size = a_round(size);
    for (int i = 0; i < a->n; i++) {  /* coalesce with neighbours */
        Block *b = &a->free[i];
        if (b->off + b->size == off) { off = b->off; size += b->size; *b = a->free[--a->n]; i = -1; }
        else if (off + size == b->off) { size += b->size; *b = a->free[--a->n]; i = -1; }
    }
    if (a->n == a->cap) {
        int nc = a->cap ? a->cap * 2 : 16;
        Block *nb = realloc(a->free, sizeof *nb * (size_t)nc);
        if (!nb) return -1;
        a->free = nb;
        a->cap = nc;
    }
    a->free[a->n].off = off;
    a->free[a->n].size = size;
    a->n++;
    return 0;
}

/* ------------------------------------------------------------------ plan */

static void cpu_plan_free(MilRtPlan *bp) {
    CpuPlan *p = (CpuPlan *)bp;
    if (!p) return;
    for (int i = 0; i < p->nfolded; i++) free(p->folded[i]);
    if (p->dynbuf)
        for (int i = 0; i < p->nvalues; i++) free(p->dynbuf[i]);
    if (p->cf32v)
        for (int i = 0; i < p->nvalues; i++) free(p->cf32v[i]);
    free(p->cf32v);
    free(p->cf32p);
    free(p->folded);
    free(p->dynbuf);
    free(p->dyncap);
    free(p->t);
    free(p->where);
    free(p->off);
    free(p->steps);
    free(p->argp);
    free(p->slotp);
    free(p->slotn);
    free(p->outp);
    free(p->arena);
    free(p->scratch);
    free(p);
}

static int add_folded(CpuPlan *p, void *data) {
    void **nf = realloc(p->folded, sizeof *nf * (size_t)(p->nfolded + 1));
    if (!nf) return -1;
    p->folded = nf;
    p->folded[p->nfolded++] = data;
    return 0;
}

static int ensure_scratch(CpuPlan *p, size_t need, MilRtErr *e) {
    if (need <= p->scratch_cap) return 0;
    size_t cap = (need + 63) & ~(size_t)63;
    void *s = aligned_alloc(64, cap);
    if (!s) return mil_rt_errf(e, "out of memory (scratch of %zu bytes)", need);
    free(p->scratch);
    p->scratch = s;
    p->scratch_cap = cap;
    for (int i = 0; i < p->nsteps; i++) {  /* every step shares the one buffer */
        p->steps[i].ctx.scratch = s;
        p->steps[i].ctx.scratch_size = cap;
    }
    return 0;
}

/* fp32 copies of the constant fp16/bf16 arguments in the kernel's f32_slots,
 * made once per plan (and once per value when several ops share a weight). */
static int prep_f32_consts(CpuPlan *p, Step *st, MilRtErr *e) {
    const MilRtOp *op = st->op;
    for (int sl = 0; sl < op->nslots && sl < 32; sl++) {
        const int *ids;
        if (!(st->k->f32_slots & (1u << sl)) || mil_rt_op_slot(op, sl, &ids) < 1) continue;
        int id = ids[0];
        const MilRtTensor *t = &p->t[id];
        if ((p->where[id] != W_CONST && p->where[id] != W_FOLDED) || !t->data ||
            (t->dtype != MIL_DT_FP16 && t->dtype != MIL_DT_BF16))
            continue;
        if (!p->cf32v[id]) {
            int64_t n = mil_rt_numel(t);
            float *d = aligned_alloc(64, ((size_t)n * sizeof(float) + 63) & ~(size_t)63);
            if (!d) return mil_rt_errf(e, "out of memory (fp32 copy of '%s')", p->base.func->values[id].name);
            if (t->dtype == MIL_DT_FP16) k_h2f_n(t->data, d, n);
            else for (int64_t i = 0; i < n; i++) d[i] = mil_bf2f(((const uint16_t *)t->data)[i]);
            p->cf32v[id] = d;
        }
        p->cf32p[st->slot0 + (size_t)sl] = p->cf32v[id];
        st->ctx.cf32 = &p->cf32p[st->slot0];
    }
    return 0;
}

/* ------------------------------------------------------ pattern fusion */

static int arg1(const MilRtOp *op, int slot) {
    const int *ids;
    return mil_rt_op_slot(op, slot, &ids) == 1 ? ids[0] : -1;
}

/* the running (not yet fused) step of kind k that produces v, or -1 */
static int producer(const CpuPlan *p, const int *prod, int v, MilOpKind k) {
    int i = v >= 0 ? prod[v] : -1;
    if (i < 0) return -1;
    const Step *st = &p->steps[i];
    return st->mode == S_RUN && st->fuse_from < 0 && st->fz.kind == KF_NONE && st->op->kind == k ? i : -1;
}

static bool is_fpt(const MilRtTensor *t) { return t->dtype == MIL_DT_FP16 || t->dtype == MIL_DT_FP32; }

/* v is a one-element float constant: its value */
static bool const_scalar(const CpuPlan *p, int v, float *out) {
    if (v < 0 || (p->where[v] != W_CONST && p->where[v] != W_FOLDED)) return false;
    const MilRtTensor *t = &p->t[v];
    if (!t->data || !is_fpt(t) || mil_rt_numel(t) != 1) return false;
    *out = (float)mil_rt_get_f64(t, 0);
    return true;
}

/* the other operand of binary step i, given one of them; -1 if v is neither */
static int other_arg(const Step *st, int v) {
    int x = arg1(st->op, MIL_A_MUL_x), y = arg1(st->op, MIL_A_MUL_y);
    return x == v ? y : y == v ? x : -1;
}

/* A reduction step over exactly the last axis with keep_dims. */
static bool reduces_last_axis(Step *st, int rank) {
    int64_t ax[2];
    int n;
    bool keep;
    if (k_arg_ints(&st->ctx, MIL_A_REDUCE_SUM_axes, ax, 2, &n) || n != 1 ||
        k_arg_bool(&st->ctx, MIL_A_REDUCE_SUM_keep_dims, false, &keep) || !keep)
        return false;
    return ax[0] == -1 || ax[0] == rank - 1;
}

static void fuse_away(CpuPlan *p, int i) {
    p->steps[i].mode = S_FUSED;
    p->where[p->steps[i].op->outs[0]] = W_NONE;
    p->base.info.nfused++;
}

/* o = mul(p, sub(dp, reduce_sum(mul(dp, p), [-1], keep))) [* scale],
 * anchored at the sub.  Every intermediate has one reader. */
static void match_softmax_bwd(CpuPlan *p, const int *prod, const int *uses, const int *cons, int i) {
    Step *sub = &p->steps[i];
    int dp = arg1(sub->op, MIL_A_SUB_x), s = arg1(sub->op, MIL_A_SUB_y), u = sub->op->outs[0];
    int ir = producer(p, prod, s, MIL_OP_REDUCE_SUM);
    if (ir < 0 || uses[s] != 1 || uses[u] != 1) return;
    int t = arg1(p->steps[ir].op, MIL_A_REDUCE_SUM_x), im = producer(p, prod, t, MIL_OP_MUL);
    if (im < 0 || uses[t] != 1) return;
    int pv = other_arg(&p->steps[im], dp);
    int io = cons[u];
    if (pv < 0 || io < 0 || p->steps[io].op->kind != MIL_OP_MUL || p->steps[io].mode != S_RUN ||
        p->steps[io].fuse_from >= 0 || other_arg(&p->steps[io], u) != pv)
        return;
    const MilRtTensor *tdp = &p->t[dp], *tp = &p->t[pv];
    int ov = p->steps[io].op->outs[0];
    if (!is_fpt(tdp) || tdp->rank < 1 || !mil_rt_same_shape(tdp, tp) || tdp->dtype != tp->dtype) return;
    int vals[] = {t, u, ov};
    for (int k = 0; k < 3; k++)
        if (p->t[vals[k]].dtype != tdp->dtype || !mil_rt_same_shape(&p->t[vals[k]], tdp)) return;
    if (p->t[s].dtype != tdp->dtype || !reduces_last_axis(&p->steps[ir], tdp->rank)) return;
    KFused fz = {KF_SOFTMAX_BWD, tdp, tp, NULL, false, 1.0f};
    int last = io, is = cons[ov];
    float sc;
    if (uses[ov] == 1 && is >= 0 && p->steps[is].op->kind == MIL_OP_MUL && p->steps[is].mode == S_RUN &&
        p->steps[is].fuse_from < 0 && const_scalar(p, other_arg(&p->steps[is], ov), &sc) &&
        p->t[p->steps[is].op->outs[0]].dtype == tdp->dtype &&
        mil_rt_same_shape(&p->t[p->steps[is].op->outs[0]], tdp)) {
        fz.has_scale = true;
        fz.scale = sc;
        fuse_away(p, io);
        last = is;
    }
    fuse_away(p, im);
    fuse_away(p, ir);
    fuse_away(p, i);
    Step *a = &p->steps[last];
    fz.o = &p->t[a->op->outs[0]];
    a->fz = fz;
    a->xr[0] = dp;
    a->xr[1] = pv;
    a->nxr = 2;
}

/* softmax(add(mul(x, scale), mask), axis = -1), anchored at the softmax;
 * the mul is optional.  mask: [..., R, n] with only R and n above 1, R 1 or
 * x's second-last dim. */
static void match_softmax_sm(CpuPlan *p, const int *prod, const int *uses, int i) {
    Step *sm = &p->steps[i];
    int64_t axis;
    const MilRtTensor *o = sm->ctx.out[0];
    if (k_arg_int(&sm->ctx, MIL_A_SOFTMAX_axis, -1, &axis) || o->rank < 2 || (axis != -1 && axis != o->rank - 1))
        return;
    int xv = arg1(sm->op, MIL_A_SOFTMAX_x), ia = producer(p, prod, xv, MIL_OP_ADD);
    if (ia < 0 || uses[xv] != 1 || !is_fpt(o)) return;
    if (p->t[xv].dtype != o->dtype || !mil_rt_same_shape(&p->t[xv], o)) return;
    int a = -1, m = -1;
    for (int k = 0; k < 2 && a < 0; k++) {
        int c = arg1(p->steps[ia].op, k ? MIL_A_ADD_y : MIL_A_ADD_x), d = other_arg(&p->steps[ia], c);
        const MilRtTensor *tc = &p->t[c], *td = &p->t[d];
        if (!mil_rt_same_shape(tc, o) || tc->dtype != o->dtype || td->dtype != o->dtype || td->rank > o->rank) continue;
        int64_t n = o->dims[o->rank - 1], R = o->dims[o->rank - 2];
        bool ok = td->rank >= 1 && td->dims[td->rank - 1] == n;
        if (ok && td->rank >= 2) ok = td->dims[td->rank - 2] == R || td->dims[td->rank - 2] == 1;
        for (int q = 0; ok && q + 2 < td->rank; q++) ok = td->dims[q] == 1;
        if (ok) { a = c; m = d; }
    }
    if (a < 0) return;
    KFused fz = {KF_SOFTMAX_SM, &p->t[a], &p->t[m], &p->t[sm->op->outs[0]], false, 1.0f};
    int im = producer(p, prod, a, MIL_OP_MUL), xin = a;
    float sc;
    if (im >= 0 && uses[a] == 1) {
        for (int k = 0; k < 2; k++) {
            int c = arg1(p->steps[im].op, k ? MIL_A_MUL_y : MIL_A_MUL_x), d = other_arg(&p->steps[im], c);
            if (mil_rt_same_shape(&p->t[c], o) && p->t[c].dtype == o->dtype && const_scalar(p, d, &sc)) {
                fz.a = &p->t[c];
                fz.has_scale = true;
                fz.scale = sc;
                xin = c;
                fuse_away(p, im);
                break;
            }
        }
    }
    fuse_away(p, ia);
    sm->fz = fz;
    sm->xr[0] = xin;
    sm->xr[1] = m;
    sm->nxr = 2;
}

/* tile(x) read only by a broadcasting binary op whose result has the same
 * shape when it reads x itself: the op reads x (no copy). */
static void match_tile(CpuPlan *p, const int *prod, const int *uses, int i) {
    Step *b = &p->steps[i];
    if (mil_cpu_kernels[b->op->kind].run != k_binary_run || b->op->nout != 1 || b->fz.kind != KF_NONE) return;
    for (int sl = 0; sl < 2; sl++) {
        int v = arg1(b->op, sl), it = producer(p, prod, v, MIL_OP_TILE);
        if (it < 0 || uses[v] != 1 || other_arg(b, v) == v) continue;
        int x = arg1(p->steps[it].op, MIL_A_TILE_x), w = other_arg(b, v);
        const MilRtTensor *tx = &p->t[x], *tw = &p->t[w], *o = b->ctx.out[0];
        if (tx->dtype != p->t[v].dtype || tx->rank != o->rank || tw->rank != o->rank) continue;
        bool ok = true;  /* broadcast(x, w) == o, dim by dim */
        for (int d = 0; ok && d < o->rank; d++) {
            int64_t a = tx->dims[d], c = tw->dims[d];
            ok = (a == c ? a : a == 1 ? c : c == 1 ? a : -1) == o->dims[d];
        }
        if (!ok) continue;
        /* the op's argument pointer for slot sl now points at x */
        p->argp[b->ctx.slot[sl] - (const MilRtTensor *const *)p->argp] = tx;
        fuse_away(p, it);
        b->xr[b->nxr++] = x;
        return;
    }
}

static void fuse_patterns(CpuPlan *p, int *uses, int *prod, int *cons) {
    const MilRtFunc *f = p->base.func;
    for (int i = 0; i < f->nvalues; i++) uses[i] = 0, prod[i] = -1, cons[i] = -1;
    for (int i = 0; i < f->noutputs; i++) uses[f->outputs[i]] += 2;  /* outputs are stored */
    for (int i = 0; i < f->nops; i++) {
        if (p->steps[i].mode == S_FOLDED) continue;
        for (int j = 0; j < f->ops[i].nout; j++) prod[f->ops[i].outs[j]] = i;
        for (int j = 0; j < f->ops[i].slot_start[f->ops[i].nslots]; j++) {
            uses[f->ops[i].args[j]]++;
            cons[f->ops[i].args[j]] = i;
        }
    }
    for (int i = 0; i < f->nops; i++) {
        if (p->steps[i].mode != S_RUN) continue;
        if (f->ops[i].kind == MIL_OP_SUB) match_softmax_bwd(p, prod, uses, cons, i);
        else if (f->ops[i].kind == MIL_OP_SOFTMAX) match_softmax_sm(p, prod, uses, i);
    }
    for (int i = 0; i < f->nops; i++)
        if (p->steps[i].mode == S_RUN) match_tile(p, prod, uses, i);
}

/* A unary op whose only reader is the next binary element-wise op of the
 * same shape runs inside it (k_fused_unary_binary_run: one pass over memory,
 * e.g. silu(a) * b of SwiGLU); its result is never stored.  uses[] is
 * scratch of nvalues ints. */
static void fuse_steps(CpuPlan *p, int *uses) {
    const MilRtFunc *f = p->base.func;
    for (int i = 0; i < f->nvalues; i++) uses[i] = 0;
    for (int i = 0; i < f->noutputs; i++) uses[f->outputs[i]] += 2;  /* outputs are stored */
    for (int i = 0; i < f->nops; i++) {
        if (p->steps[i].mode == S_FOLDED) continue;
        for (int j = 0; j < f->ops[i].slot_start[f->ops[i].nslots]; j++) uses[f->ops[i].args[j]]++;
    }
    for (int i = 0; i + 1 < f->nops; i++) {
        Step *u = &p->steps[i], *b = &p->steps[i + 1];
        if (u->mode != S_RUN || b->mode != S_RUN || u->op->nout != 1 || b->fuse_from >= 0 ||
            u->fz.kind != KF_NONE || b->fz.kind != KF_NONE || u->nxr || b->nxr)
            continue;
        int v = u->op->outs[0], pos = -1;
        if (uses[v] != 1 || b->op->nslots < 2) continue;
        for (int sl = 0; sl < 2; sl++) {
            const int *ids;
            if (mil_rt_op_slot(b->op, sl, &ids) == 1 && ids[0] == v) pos = sl;
        }
        if (pos < 0 || !k_fusable_unary_binary(&u->ctx, &b->ctx, pos)) continue;
        u->mode = S_FUSED;
        b->fuse_from = i;
        b->fuse_pos = pos;
        p->where[v] = W_NONE;  /* never stored: no arena block */
        p->base.info.nfused++;
    }
}

static MilRtPlan *cpu_prepare(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *inputs, MilRtErr *e) {
    if (mil_rt_check_inputs(f, inputs, false, e)) return NULL;
    CpuDev *cd = (CpuDev *)dev;
    pthread_mutex_lock(&cd->mu);
    if (!cd->pool && cd->nthreads > 1) cd->pool = mil_pool_new(cd->nthreads);
    pthread_mutex_unlock(&cd->mu);
    CpuPlan *p = calloc(1, sizeof *p);
    if (!p) { mil_rt_errf(e, "out of memory"); return NULL; }
    p->base.dev = dev;
    p->base.func = f;
    int nv = p->nvalues = f->nvalues;
    size_t nargs = 0, nslots = 0, nouts = 0;
    for (int i = 0; i < f->nops; i++) {
        nargs += (size_t)f->ops[i].slot_start[f->ops[i].nslots];
        nslots += (size_t)f->ops[i].nslots;
        nouts += (size_t)f->ops[i].nout;
    }
    p->t = calloc((size_t)nv + 1, sizeof *p->t);
    p->where = calloc((size_t)nv + 1, 1);
    p->off = calloc((size_t)nv + 1, sizeof *p->off);
    p->dynbuf = calloc((size_t)nv + 1, sizeof *p->dynbuf);
    p->dyncap = calloc((size_t)nv + 1, sizeof *p->dyncap);
    p->steps = calloc((size_t)f->nops + 1, sizeof *p->steps);
    p->argp = calloc(nargs + 1, sizeof *p->argp);
    p->slotp = calloc(nslots + 1, sizeof *p->slotp);
    p->slotn = calloc(nslots + 1, sizeof *p->slotn);
    p->outp = calloc(nouts + 1, sizeof *p->outp);
    p->cf32v = calloc((size_t)nv + 1, sizeof *p->cf32v);
    p->cf32p = calloc(nslots + 1, sizeof *p->cf32p);
    int *last = calloc((size_t)nv + 1, sizeof *last);
    Alloc al = {0};
    if (!p->t || !p->where || !p->off || !p->dynbuf || !p->dyncap || !p->steps || !p->argp ||
        !p->slotp || !p->slotn || !p->outp || !p->cf32v || !p->cf32p || !last) {
        mil_rt_errf(e, "out of memory");
        goto fail;
    }
    for (int i = 0; i < nv; i++) {
        const MilRtValue *v = &f->values[i];
        if (v->kind == MIL_RT_CONST) {
            mil_rt_value_tensor(v, &p->t[i]);
            p->where[i] = W_CONST;
        }
    }
    for (int i = 0; i < f->ninputs; i++) {
        int id = f->inputs[i];
        p->t[id] = inputs[i];
        p->t[id].data = NULL;
        p->where[id] = W_INPUT;
    }

    /* 1-3: shapes, folding, dynamic ops */
    size_t a = 0, s = 0, o = 0, scratch = 0;
    for (int i = 0; i < f->nops; i++) {
        const MilRtOp *op = &f->ops[i];
        Step *st = &p->steps[i];
        st->op = op;
        st->fuse_from = -1;
        if (!cpu_supports_op(dev, f, op)) {
            op_err(e, f, op, "is not supported by the cpu device", NULL);
            goto fail;
        }
        st->k = &mil_cpu_kernels[op->kind];
        for (int j = 0; j < op->slot_start[op->nslots]; j++) p->argp[a + (size_t)j] = &p->t[op->args[j]];
        for (int j = 0; j < op->nout; j++) p->outp[o + (size_t)j] = &p->t[op->outs[j]];
        bind_ctx(&st->ctx, op, &p->argp[a], &p->slotp[s], &p->slotn[s], &p->outp[o], p->kerr, sizeof p->kerr);
        st->ctx.pool = cd->pool;
        st->slot0 = s;
        a += (size_t)op->slot_start[op->nslots];
        s += (size_t)op->nslots;
        o += (size_t)op->nout;
        bool dyn = false, alldata = true;
        for (int j = 0; j < op->slot_start[op->nslots]; j++) {
            int w = p->where[op->args[j]];
            if (w == W_DYN) dyn = true;
            if (w != W_CONST && w != W_FOLDED) alldata = false;
        }
        int rc = 0;
        if (!dyn) {
            p->kerr[0] = 0;
            reset_outs(&st->ctx);
            rc = st->k->shape(&st->ctx);
            if (rc == MIL_K_NEED_DATA) dyn = true;
            else if (rc) { kernel_err(e, f, op, rc, p->kerr); goto fail; }
        }
        if (dyn) {
            st->mode = S_DYNAMIC;
            for (int j = 0; j < op->nout; j++) p->where[op->outs[j]] = W_DYN;
            p->base.info.ndynamic++;
            continue;
        }
        for (int j = 0; j < op->nout; j++)
            if (check_declared(f, op, op->outs[j], &p->t[op->outs[j]], e)) goto fail;
        bool shape_of_static = op->kind == MIL_OP_SHAPE && op->nout == 1;
        if (alldata || shape_of_static) {
            st->mode = S_FOLDED;
            p->base.info.nfolded++;
            if (shape_of_static) {
                /* the result is x's dims, computed here: x's data is not needed */
                const int *ids;
                mil_rt_op_slot(op, MIL_A_SHAPE_x, &ids);
                const MilRtTensor *x = &p->t[ids[0]];
                MilRtTensor *r = &p->t[op->outs[0]];
                if (mil_rt_tensor_alloc(r, e) || add_folded(p, r->data)) goto fail;
                if (mil_rt_numel(r) != x->rank) {
                    op_err(e, f, op, "shape kernel disagrees with the input rank", NULL);
                    goto fail;
                }
                for (int d = 0; d < x->rank; d++) mil_rt_set_f64(r, d, (double)x->dims[d]);
            } else {
                if (eval_now(&st->ctx, st->k, f, op, e)) goto fail;
                for (int j = 0; j < op->nout; j++)
                    if (add_folded(p, p->t[op->outs[j]].data)) {
                        mil_rt_errf(e, "out of memory");
                        goto fail;
                    }
            }
            for (int j = 0; j < op->nout; j++) p->where[op->outs[j]] = W_FOLDED;
            continue;
        }
        st->mode = S_RUN;
        for (int j = 0; j < op->nout; j++) p->where[op->outs[j]] = W_ARENA;
        if (st->k->f32_slots && prep_f32_consts(p, st, e)) goto fail;
        if (st->k->scratch) {
            size_t ss = st->k->scratch(&st->ctx);
            if (ss > scratch) scratch = ss;
        }
    }

    /* 3b: multi-op patterns, then unary -> binary chains */
    int *prod = calloc((size_t)nv + 1, sizeof *prod), *cons = calloc((size_t)nv + 1, sizeof *cons);
    if (!prod || !cons) {
        free(prod);
        free(cons);
        mil_rt_errf(e, "out of memory");
        goto fail;
    }
    if (!getenv("MILC_NO_FUSE")) fuse_patterns(p, last, prod, cons);
    free(prod);
    free(cons);
    fuse_steps(p, last);

    /* 4: liveness and arena placement */
    for (int i = 0; i < nv; i++) last[i] = -1;
    for (int i = 0; i < f->nops; i++) {
        const MilRtOp *op = &f->ops[i];
        if (p->steps[i].mode == S_FOLDED || p->steps[i].mode == S_FUSED) continue;
        for (int j = 0; j < op->slot_start[op->nslots]; j++) last[op->args[j]] = i;
        if (p->steps[i].fuse_from >= 0) {  /* the fused op's arguments are read here */
            const MilRtOp *u = p->steps[p->steps[i].fuse_from].op;
            for (int j = 0; j < u->slot_start[u->nslots]; j++) last[u->args[j]] = i;
        }
        for (int j = 0; j < p->steps[i].nxr; j++) last[p->steps[i].xr[j]] = i;
    }
    for (int i = 0; i < f->noutputs; i++) last[f->outputs[i]] = f->nops; /* never freed */
    for (int i = 0; i < f->nops; i++) {
        const MilRtOp *op = &f->ops[i];
        if (p->steps[i].mode == S_FOLDED || p->steps[i].mode == S_FUSED) continue;
        p->base.info.nsteps++;
        if (p->steps[i].mode == S_RUN)
            for (int j = 0; j < op->nout; j++) {
                int id = op->outs[j];
                size_t n = mil_rt_nbytes(&p->t[id]);
                p->base.info.naive_bytes += a_round(n);
                if (a_alloc(&al, n, &p->off[id])) { mil_rt_errf(e, "out of memory"); goto fail; }
                if (last[id] < i) last[id] = i;  /* unused result: free right after the op */
            }
        for (int j = 0; j < op->slot_start[op->nslots] + op->nout; j++) {
            int id = j < op->slot_start[op->nslots] ? op->args[j] : op->outs[j - op->slot_start[op->nslots]];
            if (p->where[id] == W_ARENA && last[id] == i) {
                last[id] = -2;  /* freed (a value may appear twice) */
                if (a_free(&al, p->off[id], mil_rt_nbytes(&p->t[id]))) { mil_rt_errf(e, "out of memory"); goto fail; }
            }
        }
    }
    p->base.info.arena_bytes = al.top;
    p->arena = aligned_alloc(64, al.top ? al.top : 64);
    if (!p->arena) { mil_rt_errf(e, "out of memory (arena of %zu bytes)", al.top); goto fail; }
    for (int i = 0; i < nv; i++)
        if (p->where[i] == W_ARENA) p->t[i].data = p->arena + p->off[i];

    /* 5: scratch */
    p->nsteps = f->nops;
    if (ensure_scratch(p, scratch, e)) goto fail;
    p->base.info.scratch_bytes = scratch;
    free(al.free);
    free(last);
    return &p->base;
fail:
    free(al.free);
    free(last);
    cpu_plan_free(&p->base);
    return NULL;
}

/* A DYNAMIC step: shape with data, (re)size the result buffers, run. */
static int run_dynamic(CpuPlan *p, Step *st, MilRtErr *e) {
    const MilRtFunc *f = p->base.func;
    const MilRtOp *op = st->op;
    p->kerr[0] = 0;
    for (int j = 0; j < op->nout; j++) {
        MilRtTensor *r = &p->t[op->outs[j]];
        memset(r, 0, sizeof *r);
    }
    int rc = st->k->shape(&st->ctx);
    if (rc) return kernel_err(e, f, op, rc == MIL_K_NEED_DATA ? MIL_K_ERROR : rc,
                              rc == MIL_K_NEED_DATA && !p->kerr[0] ? "shape still unknown at run time" : p->kerr);
    for (int j = 0; j < op->nout; j++) {
        int id = op->outs[j];
        MilRtTensor *r = &p->t[id];
        if (check_declared(f, op, id, r, e)) return -1;
        size_t n = a_round(mil_rt_nbytes(r));
        if (n > p->dyncap[id]) {
            void *b = aligned_alloc(64, n);
            if (!b) return mil_rt_errf(e, "out of memory (%zu bytes)", n);
            free(p->dynbuf[id]);
            p->dynbuf[id] = b;
            p->dyncap[id] = n;
        }
        r->data = p->dynbuf[id];
    }
    if (st->k->scratch) {
        size_t ss = st->k->scratch(&st->ctx);
        if (ensure_scratch(p, ss, e)) return -1;
    }
    p->kerr[0] = 0;
    rc = st->k->run(&st->ctx);
    if (rc) return kernel_err(e, f, op, rc, p->kerr);
    return 0;
}

/* Binds the inputs (read in place) and runs every step. */
static int run_steps(CpuPlan *p, const MilRtTensor *inputs, MilRtErr *e) {
    const MilRtFunc *f = p->base.func;
    for (int i = 0; i < f->ninputs; i++) {
        MilRtTensor *t = &p->t[f->inputs[i]];
        if (inputs[i].dtype != t->dtype || !mil_rt_same_shape(&inputs[i], t) || !inputs[i].data) {
            char a[256], b[256];
            return mil_rt_errf(e, "input '%s': the plan was prepared for %s, got %s",
                               f->values[f->inputs[i]].name, mil_rt_format_type(t->dtype, t->rank, t->dims, a, sizeof a),
                               mil_rt_format_type(inputs[i].dtype, inputs[i].rank, inputs[i].dims, b, sizeof b));
        }
        t->data = inputs[i].data;
    }
    for (int i = 0; i < f->nops; i++) {
        Step *st = &p->steps[i];
        if (st->mode == S_RUN) {
            int rc = st->fz.kind ? k_fused_run(&st->ctx, &st->fz)
                     : st->fuse_from < 0 ? st->k->run(&st->ctx)
                                         : k_fused_unary_binary_run(&p->steps[st->fuse_from].ctx, &st->ctx, st->fuse_pos);
            if (rc) return kernel_err(e, f, st->op, rc, p->kerr);
        } else if (st->mode == S_DYNAMIC) {
            if (run_dynamic(p, st, e)) return -1;
        }
    }
    return 0;
}

static int cpu_run(MilRtPlan *bp, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    CpuPlan *p = (CpuPlan *)bp;
    const MilRtFunc *f = p->base.func;
    if (run_steps(p, inputs, e)) return -1;
    for (int i = 0; i < f->noutputs; i++) outputs[i] = p->t[f->outputs[i]];
    return 0;
}

/* Caller-owned outputs.  An arena-planned output (a function output is never
 * reused by the planner, so it owns its region) is pointed at the caller's
 * buffer for this run and the kernels write it directly; an output that is an
 * input, a constant, a folded or a dynamic value -- or a value that is also
 * returned through an entry without a caller buffer -- is copied after the
 * run.  The arena pointers are restored afterwards. */
static int cpu_run_into(MilRtPlan *bp, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    CpuPlan *p = (CpuPlan *)bp;
    const MilRtFunc *f = p->base.func;
    for (int i = 0; i < f->noutputs; i++) {
        int id = f->outputs[i];
        if (outputs[i].data && p->where[id] != W_DYN && mil_rt_check_output(f, i, &p->t[id], &outputs[i], e))
            return -1;
    }
    for (int i = 0; i < f->noutputs; i++) {
        int id = f->outputs[i];
        bool direct = outputs[i].data && p->where[id] == W_ARENA;
        for (int j = 0; direct && j < f->noutputs; j++)
            if (f->outputs[j] == id && !outputs[j].data) direct = false;
        if (direct && p->t[id].data == p->arena + p->off[id]) p->t[id].data = outputs[i].data;
    }
    int rc = run_steps(p, inputs, e);
    for (int i = 0; rc == 0 && i < f->noutputs; i++)
        if (outputs[i].data && p->where[f->outputs[i]] == W_DYN)
            rc = mil_rt_check_output(f, i, &p->t[f->outputs[i]], &outputs[i], e);
    for (int i = 0; rc == 0 && i < f->noutputs; i++) {
        const MilRtTensor *t = &p->t[f->outputs[i]];
        void *mine = outputs[i].data;
        if (mine && mine != t->data) memcpy(mine, t->data, mil_rt_nbytes(t));
        outputs[i] = *t;
        if (mine) outputs[i].data = mine;
    }
    for (int i = 0; i < f->noutputs; i++) {
        int id = f->outputs[i];
        if (p->where[id] == W_ARENA) p->t[id].data = p->arena + p->off[id];
    }
    return rc;
}

static void cpu_free(MilRtDevice *dev) {
    CpuDev *cd = (CpuDev *)dev;
    mil_pool_free(cd->pool);
    pthread_mutex_destroy(&cd->mu);
    free(cd);
}

static const MilRtDeviceIface cpu_iface = {
    .name = "cpu",
    .supports_op = cpu_supports_op,
    .prepare = cpu_prepare,
    .run = cpu_run,
    .plan_free = cpu_plan_free,
    .free = cpu_free,
    .run_into = cpu_run_into,
};

MilRtDevice *mil_rt_device_cpu_new_threads(int nthreads) {
    if (nthreads <= 0) {
        const char *env = getenv("MILC_THREADS");
        char *end = NULL;
        long v = env && *env ? strtol(env, &end, 10) : 0;
        nthreads = (end && !*end && v > 0 && v <= 1024) ? (int)v : mil_cpu_default_threads();
    }
    CpuDev *cd = calloc(1, sizeof *cd);
    if (!cd) return NULL;
    cd->base.iface = &cpu_iface;
    cd->base.ctx = cd;
    cd->nthreads = nthreads;
    pthread_mutex_init(&cd->mu, NULL);
    k_blas_init();
    return &cd->base;
}

MilRtDevice *mil_rt_device_cpu_new(void) { return mil_rt_device_cpu_new_threads(0); }

int mil_rt_device_cpu_threads(const MilRtDevice *dev) {
    if (!dev || dev->iface->prepare != cpu_prepare) return 0;
    return ((const CpuDev *)dev)->nthreads;
}

typedef struct {
    void (*fn)(void *arg, int64_t i0, int64_t i1);
    void *arg;
    int64_t n, align;
} UserJob;

static void user_range(void *varg, int t, int nth) {
    const UserJob *j = varg;
    int64_t blocks = (j->n + j->align - 1) / j->align;
    int64_t i0 = blocks * t / nth * j->align, i1 = blocks * (t + 1) / nth * j->align;
    if (i1 > j->n) i1 = j->n;
    if (i0 < i1) j->fn(j->arg, i0, i1);
}

void mil_rt_device_cpu_parallel(MilRtDevice *dev, int64_t n, int64_t align,
                                void (*fn)(void *arg, int64_t i0, int64_t i1), void *arg) {
    if (n <= 0) return;
    if (align < 1) align = 1;
    MilPool *pool = NULL;
    if (dev && dev->iface->prepare == cpu_prepare) {
        CpuDev *cd = (CpuDev *)dev;
        pthread_mutex_lock(&cd->mu);
        if (!cd->pool && cd->nthreads > 1) cd->pool = mil_pool_new(cd->nthreads);
        pool = cd->pool;
        pthread_mutex_unlock(&cd->mu);
    }
    UserJob j = {fn, arg, n, align};
    if (!pool) { fn(arg, 0, n); return; }
    mil_pool_run(pool, user_range, &j);
}
