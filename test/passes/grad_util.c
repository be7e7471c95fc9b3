/* test/passes/grad_util.c -- see grad_util.h. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "grad_util.h"

void gu_pool_add(GuPool *p, const char *name, const MilRtTensor *t) {
    cr_assert_lt(p->n, 256);
    MilRtErr e;
    p->names[p->n] = strdup(name);
    cr_assert_eq(mil_rt_tensor_copy(&p->t[p->n], t, &e), 0, "%s", e.msg);
    p->n++;
}

const MilRtTensor *gu_pool_get(const GuPool *p, const char *name) {
    for (int i = p->n - 1; i >= 0; i--)
        if (!strcmp(p->names[i], name)) return &p->t[i];
    return NULL;
}

void gu_pool_free(GuPool *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->names[i]);
        mil_rt_tensor_free(&p->t[i]);
    }
    p->n = 0;
}

void gu_run(MilRtDevice *dev, const MilRtProgram *rp, const char *func, const GuPool *in, GuPool *out) {
    const MilRtFunc *f = mil_rt_program_find_func(rp, func);
    cr_assert_not_null(f, "no function %s", func);
    MilRtTensor *ins = calloc((size_t)f->ninputs + 1, sizeof *ins);
    MilRtTensor *outs = calloc((size_t)f->noutputs + 1, sizeof *outs);
    for (int i = 0; i < f->ninputs; i++) {
        const char *nm = f->values[f->inputs[i]].name;
        const MilRtTensor *t = gu_pool_get(in, nm);
        cr_assert_not_null(t, "%s: no tensor for input %s", func, nm);
        ins[i] = *t;
    }
    MilRtErr e;
    cr_assert_eq(mil_rt_run_once(dev, f, ins, outs, &e), 0, "%s: %s", func, e.msg);
    for (int i = 0; i < f->noutputs; i++) {
        gu_pool_add(out, f->values[f->outputs[i]].name, &outs[i]);
        mil_rt_tensor_free(&outs[i]);
    }
    free(ins);
    free(outs);
}

static const char *func_attr(const MilFunc *f, const char *name) {
    for (int i = 0; i < f->nattrs; i++)
        if (!strcmp(f->attrs[i].name, name)) return mil_const_get_str(f->attrs[i].val);
    return NULL;
}

static const MilValue *param_named(const MilFunc *f, const char *name) {
    for (int i = 0; i < f->nparams; i++)
        if (!strcmp(f->params[i]->name, name)) return f->params[i];
    return NULL;
}

void gu_check_taps(const char *label, MilProgram *p, const char *func) {
    char fw_name[256], bw_name[256];
    snprintf(fw_name, sizeof fw_name, "%s_fwd", func);
    snprintf(bw_name, sizeof bw_name, "%s_bwd", func);
    const MilFunc *f = mil_program_find_func(p, func), *fw = mil_program_find_func(p, fw_name),
                  *bw = mil_program_find_func(p, bw_name);
    cr_assert(f && fw && bw, "%s: no %s / %s", label, fw_name, bw_name);
    const char *list = func_attr(bw, "grad_taps");
    cr_assert_not_null(list, "%s: %s has no grad_taps", label, bw_name);
    char *taps = strdup(list), *save = NULL;
    const char *names[256];
    int n = 0, extra = 0;
    for (char *t = strtok_r(taps, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        cr_assert_lt(n, 256);
        for (int i = 0; i < n; i++) cr_assert(strcmp(names[i], t), "%s: tap %s appears twice", label, t);
        cr_assert_null(param_named(f, t), "%s: the input %s is tapped", label, t);
        const MilValue *in = param_named(bw, t);
        cr_assert(in, "%s: tap %s is not an input of %s", label, t, bw_name);
        /* a tap that is an output of FUNC already is not added again */
        int k = -1;
        for (int i = 0; i < f->body.nouts; i++)
            if (!strcmp(f->body.outs[i]->name, t)) k = i;
        if (k < 0) k = f->body.nouts + extra++;
        cr_assert(k < fw->body.nouts && !strcmp(fw->body.outs[k]->name, t), "%s: output %d of %s is not the tap %s",
                  label, k, fw_name, t);
        cr_assert(fw->body.outs[k]->type == in->type, "%s: tap %s has two types", label, t);
        names[n++] = t;
    }
    cr_assert_eq(fw->body.nouts, f->body.nouts + extra, "%s: %s has %d outputs, not %d + %d taps", label, fw_name,
                 fw->body.nouts, f->body.nouts, extra);
    for (int i = 0; i < f->body.nouts; i++)
        cr_assert_str_eq(fw->body.outs[i]->name, f->body.outs[i]->name, "%s: output %d", label, i);
    free(taps);
}

static void dump(MilDiag *d) {
    char buf[1024];
    for (int i = 0; i < d->n; i++) {
        mil_diag_format(d, i, buf, sizeof buf);
        cr_log_error("%s", buf);
    }
}

static void rand_tensor(MilRtTensor *t, const MilRtValue *v, uint64_t *seed, bool pos) {
    MilRtErr e;
    t->dtype = v->dtype;
    t->rank = v->rank;
    for (int k = 0; k < v->rank; k++) t->dims[k] = v->dims[k];
    cr_assert_eq(mil_rt_tensor_alloc(t, &e), 0);
    mil_rt_tensor_fill_random(t, seed);
    if (pos)
        for (int64_t i = 0; i < mil_rt_numel(t); i++) mil_rt_set_f64(t, i, fabs(mil_rt_get_f64(t, i)) + 0.5);
}

/* sum over main's outputs of <y, d_y> */
static double objective(MilRtDevice *dev, const MilRtProgram *rp, const GuPool *in, const GuPool *cot) {
    GuPool out = {0};
    gu_run(dev, rp, "main", in, &out);
    double s = 0;
    for (int i = 0; i < out.n; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "d_%s", out.names[i]);
        const MilRtTensor *c = gu_pool_get(cot, nm);
        if (!c || !mil_rt_dtype_is_float(out.t[i].dtype)) continue;
        for (int64_t k = 0; k < mil_rt_numel(&out.t[i]); k++) s += mil_rt_get_f64(&out.t[i], k) * mil_rt_get_f64(c, k);
    }
    gu_pool_free(&out);
    return s;
}

void gu_fd_check(const char *label, const char *text, const MilPassOptions *po, MilRecompute rc, double tol) {
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions pa = {0};
    MilProgram *p = mil_parse(label, text, strlen(text), &pa, &d);
    if (!p || mil_verify(p, &d)) {
        dump(&d);
        cr_assert_fail("%s: does not parse", label);
    }
    MilGradOptions go;
    mil_grad_options_init(&go);
    go.recompute = rc;
    if (mil_grad(p, &go, &d)) {
        dump(&d);
        cr_assert_fail("%s: mil_grad failed", label);
    }
    gu_check_taps(label, p, "main");
    MilPassOptions o0;
    mil_pass_options_init(&o0);
    o0.opt_level = 0;
    o0.verify_each = true;
    if (mil_pass_run(p, po ? po : &o0, &d) || mil_verify(p, &d)) {
        dump(&d);
        cr_assert_fail("%s: the passes fail on the grad output", label);
    }
    MilRtDevice *dev = mil_rt_device_cpu_new();
    MilLowerOptions lo = {.model_dir = ".", .device = dev};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    if (!rp) {
        dump(&d);
        cr_assert_fail("%s: does not lower", label);
    }
    const MilRtFunc *fm = mil_rt_program_find_func(rp, "main");
    uint64_t seed = 12345;
    GuPool in = {0}, cot = {0}, fwd = {0}, ref = {0}, bwd = {0};
    for (int i = 0; i < fm->ninputs; i++) {
        const MilRtValue *v = &fm->values[fm->inputs[i]];
        MilRtTensor t;
        rand_tensor(&t, v, &seed, !strncmp(v->name, "pos", 3));
        gu_pool_add(&in, v->name, &t);
        mil_rt_tensor_free(&t);
    }
    for (int i = 0; i < fm->noutputs; i++) {
        const MilRtValue *v = &fm->values[fm->outputs[i]];
        MilRtTensor t;
        rand_tensor(&t, v, &seed, false);
        char nm[300];
        snprintf(nm, sizeof nm, "d_%s", v->name);
        gu_pool_add(&cot, nm, &t);
        mil_rt_tensor_free(&t);
    }
    /* forward: main_fwd == main bit for bit */
    gu_run(dev, rp, "main", &in, &ref);
    gu_run(dev, rp, "main_fwd", &in, &fwd);
    for (int i = 0; i < ref.n; i++) {
        const MilRtTensor *a = &ref.t[i], *b = gu_pool_get(&fwd, ref.names[i]);
        cr_assert(b && mil_rt_same_shape(a, b), "%s: main_fwd lacks output %s", label, ref.names[i]);
        cr_expect(!memcmp(a->data, b->data, mil_rt_nbytes(a)), "%s: main_fwd output %s differs from main's", label,
                  ref.names[i]);
    }
    /* backward */
    GuPool bin = {0};
    for (int i = 0; i < in.n; i++) gu_pool_add(&bin, in.names[i], &in.t[i]);
    for (int i = 0; i < cot.n; i++) gu_pool_add(&bin, cot.names[i], &cot.t[i]);
    for (int i = 0; i < fwd.n; i++) gu_pool_add(&bin, fwd.names[i], &fwd.t[i]);
    gu_run(dev, rp, "main_bwd", &bin, &bwd);
    const double h = 1e-2;
    for (int i = 0; i < in.n; i++) {
        MilRtTensor *x = &in.t[i];
        if (!mil_rt_dtype_is_float(x->dtype)) continue;
        char nm[300];
        snprintf(nm, sizeof nm, "d_%s", in.names[i]);
        const MilRtTensor *gx = gu_pool_get(&bwd, nm);
        cr_assert(gx && mil_rt_same_shape(gx, x), "%s: main_bwd has no output %s of the input's shape", label, nm);
        double gmax = 1, err = 0;
        int64_t worst = -1;
        double worst_fd = 0;
        for (int64_t k = 0; k < mil_rt_numel(x); k++) {
            double x0 = mil_rt_get_f64(x, k);
            mil_rt_set_f64(x, k, x0 + h);
            double lp = objective(dev, rp, &in, &cot);
            mil_rt_set_f64(x, k, x0 - h);
            double lm = objective(dev, rp, &in, &cot);
            mil_rt_set_f64(x, k, x0);
            double fd = (lp - lm) / (2 * h), an = mil_rt_get_f64(gx, k);
            if (fabs(an) > gmax) gmax = fabs(an);
            if (fabs(fd - an) > err) {
                err = fabs(fd - an);
                worst = k;
                worst_fd = fd;
            }
        }
        cr_expect(err <= tol * gmax, "%s (recompute=%s): d_%s[%lld] = %g, finite differences %g (error %g > %g)", label,
                  rc ? "cheap" : "none", in.names[i], (long long)worst, worst >= 0 ? mil_rt_get_f64(gx, worst) : 0.0,
                  worst_fd, err, tol * gmax);
    }
    gu_pool_free(&in);
    gu_pool_free(&cot);
    gu_pool_free(&fwd);
    gu_pool_free(&ref);
    gu_pool_free(&bwd);
    gu_pool_free(&bin);
    mil_rt_program_free(rp);
    mil_rt_device_free(dev);
    mil_program_free(p);
    mil_diag_free(&d);
}
