/* runtime/device.c -- the device-independent layer: device lookup, thin
 * wrappers over the MilRtDeviceIface vtable, input checking, sessions that
 * re-prepare when input shapes change, and the differential helper. */
#include "runtime/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MilRtDevice *mil_rt_device_new(const char *name, MilRtErr *e) {
    if (!name || strcmp(name, "cpu") == 0) {
        MilRtDevice *d = mil_rt_device_cpu_new();
        if (!d) mil_rt_errf(e, "out of memory");
        return d;
    }
    if (strcmp(name, "ane") == 0) return mil_rt_device_ane_new(e);
    mil_rt_errf(e, "unknown device '%s' (available: cpu, ane)", name);
    return NULL;
}

void mil_rt_device_free(MilRtDevice *dev) {
    if (!dev) return;
    if (dev->iface->free) dev->iface->free(dev);
    else free(dev);
}

const char *mil_rt_device_name(const MilRtDevice *dev) { return dev->iface->name; }

bool mil_rt_device_supports_op(MilRtDevice *dev, const MilRtFunc *f, const MilRtOp *op) {
    return !dev->iface->supports_op || dev->iface->supports_op(dev, f, op);
}

int mil_rt_device_check(MilRtDevice *dev, const MilRtFunc *f, MilRtErr *e) {
    for (int i = 0; i < f->nops; i++)
        if (!mil_rt_device_supports_op(dev, f, &f->ops[i])) {
            char where[600];
            mil_rt_op_where(f, &f->ops[i], where, sizeof where);
            return mil_rt_errf(e, "%sop '%s' is not supported by the %s device", where, f->ops[i].opname,
                               dev->iface->name);
        }
    return 0;
}

MilRtPlan *mil_rt_prepare(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *inputs, MilRtErr *e) {
    if (mil_rt_device_check(dev, f, e)) return NULL;
    return dev->iface->prepare(dev, f, inputs, e);
}

int mil_rt_plan_run(MilRtPlan *plan, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    return plan->dev->iface->run(plan, inputs, outputs, e);
}

int mil_rt_check_output(const MilRtFunc *f, int i, const MilRtTensor *want, const MilRtTensor *given, MilRtErr *e) {
    bool ok = want->dtype == given->dtype && want->rank == given->rank;
    for (int d = 0; ok && d < want->rank; d++)
        if (want->dims[d] >= 0 && want->dims[d] != given->dims[d]) ok = false;
    if (ok) return 0;
    char a[256], b[256];
    return mil_rt_errf(e, "output '%s': the plan gives %s, the caller's buffer is %s", f->values[f->outputs[i]].name,
                       mil_rt_format_type(want->dtype, want->rank, want->dims, a, sizeof a),
                       mil_rt_format_type(given->dtype, given->rank, given->dims, b, sizeof b));
}

/* Generic run_into for devices without the hook: the caller's buffers are
 * checked against the declared output types first (exactly, once the run has
 * given the shapes of `?` dims), then run + copy. */
int mil_rt_plan_run_into(MilRtPlan *plan, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    const MilRtDeviceIface *it = plan->dev->iface;
    if (it->run_into) return it->run_into(plan, inputs, outputs, e);
    const MilRtFunc *f = plan->func;
    for (int i = 0; i < f->noutputs; i++) {
        MilRtTensor decl;
        mil_rt_value_tensor(&f->values[f->outputs[i]], &decl);
        if (outputs[i].data && mil_rt_check_output(f, i, &decl, &outputs[i], e)) return -1;
    }
    MilRtTensor few[16], *got = f->noutputs <= 16 ? few : calloc((size_t)f->noutputs, sizeof *got);
    if (!got) return mil_rt_errf(e, "out of memory");
    int rc = it->run(plan, inputs, got, e);
    for (int i = 0; rc == 0 && i < f->noutputs; i++)
        if (outputs[i].data) rc = mil_rt_check_output(f, i, &got[i], &outputs[i], e);
    for (int i = 0; rc == 0 && i < f->noutputs; i++) {
        void *mine = outputs[i].data;
        outputs[i] = got[i];
        if (mine) {
            if (mine != got[i].data) memcpy(mine, got[i].data, mil_rt_nbytes(&got[i]));
            outputs[i].data = mine;
        }
    }
    if (got != few) free(got);
    return rc;
}

void mil_rt_plan_free(MilRtPlan *plan) {
    if (plan) plan->dev->iface->plan_free(plan);
}

int mil_rt_check_inputs(const MilRtFunc *f, const MilRtTensor *inputs, bool need_data, MilRtErr *e) {
    for (int i = 0; i < f->ninputs; i++) {
        const MilRtValue *v = &f->values[f->inputs[i]];
        const MilRtTensor *t = &inputs[i];
        bool ok = t->dtype == v->dtype && t->rank == v->rank;
        for (int d = 0; ok && d < v->rank; d++)
            if (t->dims[d] < 0 || (v->dims[d] >= 0 && v->dims[d] != t->dims[d])) ok = false;
        if (!ok) {
            char a[256], b[256];
            return mil_rt_errf(e, "input '%s': expected %s, got %s", v->name,
                               mil_rt_format_type(v->dtype, v->rank, v->dims, a, sizeof a),
                               mil_rt_format_type(t->dtype, t->rank, t->dims, b, sizeof b));
        }
        if (need_data && !t->data) return mil_rt_errf(e, "input '%s': no data", v->name);
    }
    return 0;
}

/* --------------------------------------------------------------- session */

struct MilRtSession {
    MilRtDevice *dev;
    const MilRtFunc *f;
    MilRtPlan *plan;
    MilRtTensor *shapes;  /* input shapes the plan was prepared for */
};

MilRtSession *mil_rt_session_new(MilRtDevice *dev, const MilRtFunc *f, MilRtErr *e) {
    if (mil_rt_device_check(dev, f, e)) return NULL;
    MilRtSession *s = calloc(1, sizeof *s);
    if (s) s->shapes = calloc((size_t)f->ninputs + 1, sizeof *s->shapes);
    if (!s || !s->shapes) {
        free(s);
        mil_rt_errf(e, "out of memory");
        return NULL;
    }
    s->dev = dev;
    s->f = f;
    return s;
}

/* Checks inputs and (re)prepares s for their shapes. */
static int session_ready(MilRtSession *s, const MilRtTensor *inputs, MilRtErr *e) {
    const MilRtFunc *f = s->f;
    if (mil_rt_check_inputs(f, inputs, true, e)) return -1;
    bool same = s->plan != NULL;
    for (int i = 0; same && i < f->ninputs; i++)
        same = s->shapes[i].dtype == inputs[i].dtype && mil_rt_same_shape(&s->shapes[i], &inputs[i]);
    if (!same) {
        mil_rt_plan_free(s->plan);
        s->plan = s->dev->iface->prepare(s->dev, f, inputs, e);
        if (!s->plan) return -1;
        for (int i = 0; i < f->ninputs; i++) {
            s->shapes[i] = inputs[i];
            s->shapes[i].data = NULL;
        }
    }
    return 0;
}

int mil_rt_session_run(MilRtSession *s, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    if (session_ready(s, inputs, e)) return -1;
    return mil_rt_plan_run(s->plan, inputs, outputs, e);
}

int mil_rt_session_run_into(MilRtSession *s, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    if (session_ready(s, inputs, e)) return -1;
    return mil_rt_plan_run_into(s->plan, inputs, outputs, e);
}

const MilRtPlan *mil_rt_session_plan(const MilRtSession *s) { return s->plan; }

void mil_rt_session_free(MilRtSession *s) {
    if (!s) return;
    mil_rt_plan_free(s->plan);
    free(s->shapes);
    free(s);
}

int mil_rt_run_once(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *inputs,
                    MilRtTensor *outputs, MilRtErr *e) {
    MilRtSession *s = mil_rt_session_new(dev, f, e);
    if (!s) return -1;
    MilRtTensor *tmp = calloc((size_t)f->noutputs + 1, sizeof *tmp);
    int rc = tmp ? mil_rt_session_run(s, inputs, tmp, e) : mil_rt_errf(e, "out of memory");
    int done = 0;
    for (; rc == 0 && done < f->noutputs; done++)
        if (mil_rt_tensor_copy(&outputs[done], &tmp[done], e)) rc = -1;
    if (rc)
        for (int i = 0; i < done; i++) mil_rt_tensor_free(&outputs[i]);
    free(tmp);
    mil_rt_session_free(s);
    return rc;
}

/* ---------------------------------------------------------- differential */

int mil_rt_compare_tensors(const MilRtTensor *a, const MilRtTensor *b, MilRtDiff *d) {
    memset(d, 0, sizeof *d);
    if (!mil_rt_same_shape(a, b) || a->dtype == MIL_DT_STRING || b->dtype == MIL_DT_STRING ||
        mil_rt_dtype_size(a->dtype) == 0 || mil_rt_dtype_size(b->dtype) == 0) {
        d->shape_mismatch = true;
        return -1;
    }
    int64_t n = mil_rt_numel(a);
    double se = 0, sb = 0;
    d->numel = n;
    for (int64_t i = 0; i < n; i++) {
        double x = mil_rt_get_f64(a, i), y = mil_rt_get_f64(b, i), ad, rd;
        if (isnan(x) || isnan(y)) {
            ad = rd = (isnan(x) && isnan(y)) ? 0 : INFINITY;
        } else if (isinf(x) || isinf(y)) {
            ad = rd = x == y ? 0 : INFINITY;
        } else {
            ad = fabs(x - y);
            double m = fmax(fabs(x), fabs(y));
            rd = m > 0 ? ad / m : 0;
            se += ad * ad;
            sb += y * y;
        }
        if (ad > d->max_abs) { d->max_abs = ad; d->argmax_abs = i; }
        if (rd > d->max_rel) d->max_rel = rd;
        if (isinf(ad)) se = INFINITY;
    }
    d->nmse = sb > 0 ? se / sb : se;
    return 0;
}

int mil_rt_compare(MilRtDevice *dev, const MilRtFunc *fa, const MilRtFunc *fb,
                   const MilRtTensor *inputs, MilRtDiff *diffs, MilRtErr *e) {
    if (fa->noutputs != fb->noutputs)
        return mil_rt_errf(e, "functions '%s' and '%s' have %d and %d outputs", fa->name, fb->name,
                           fa->noutputs, fb->noutputs);
    if (fa->ninputs != fb->ninputs)
        return mil_rt_errf(e, "functions '%s' and '%s' have %d and %d inputs", fa->name, fb->name,
                           fa->ninputs, fb->ninputs);
    int n = fa->noutputs, rc = -1;
    MilRtTensor *inb = calloc((size_t)fb->ninputs + 1, sizeof *inb);
    MilRtTensor *oa = calloc((size_t)n + 1, sizeof *oa), *ob = calloc((size_t)n + 1, sizeof *ob);
    if (!inb || !oa || !ob) { mil_rt_errf(e, "out of memory"); goto done; }
    for (int i = 0; i < fb->ninputs; i++) {
        const char *name = fb->values[fb->inputs[i]].name;
        int j = 0;
        while (j < fa->ninputs && strcmp(fa->values[fa->inputs[j]].name, name) != 0) j++;
        if (j == fa->ninputs) {
            mil_rt_errf(e, "input '%s' of '%s' is not an input of '%s'", name, fb->name, fa->name);
            goto done;
        }
        inb[i] = inputs[j];
    }
    if (mil_rt_run_once(dev, fa, inputs, oa, e)) goto done;
    if (mil_rt_run_once(dev, fb, inb, ob, e)) {
        for (int i = 0; i < n; i++) mil_rt_tensor_free(&oa[i]);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        mil_rt_compare_tensors(&oa[i], &ob[i], &diffs[i]);
        snprintf(diffs[i].name, sizeof diffs[i].name, "%s", fa->values[fa->outputs[i]].name);
        mil_rt_tensor_free(&oa[i]);
        mil_rt_tensor_free(&ob[i]);
    }
    rc = 0;
done:
    free(inb);
    free(oa);
    free(ob);
    return rc;
}
