/* runtime/ane/device.c -- the ANE device: runs a runtime program through
 * Apple's private in-memory path (docs/ane-notes.md §3, §4, §9-§11).
 *
 * prepare(f, input shapes)
 *   1. checks what the route refuses (mil_ane_check) and the caller's input
 *      tensors (fp16 or fp32, the declared shape);
 *   2. renders MIL text + one weight blob from the runtime program (render.c);
 *   3. looks the content hash XXH3-64(text, blob, options) up in the
 *      device's compile cache; on a miss, within the per-process compile
 *      budget:  descriptor = +[_ANEInMemoryModelDescriptor
 *      modelWithMILText:(NSData) weights:{path: {offset, data}} optionsPlist:nil],
 *      model = +[_ANEInMemoryModel inMemoryModelWithDescriptor:], the temp
 *      directory NSTemporaryDirectory()/<hexStringIdentifier>/ with model.mil
 *      and weights/weight.bin, -compileWithQoS:21, -loadWithQoS:21 (one retry
 *      after 100 ms, as the reference projects do);
 *   4. creates one IOSurface per input and output, all of one allocation
 *      size (the largest tensor, at least the ~49 KB minimum), wraps them in
 *      _ANEIOSurfaceObject and builds one _ANERequest, inputs and outputs in
 *      alphabetical order of their names (the route's binding order).
 * run: converts the caller's tensors into the surfaces (packed fp16
 *   [1, C, 1, S] = row-major bytes of the declared dtype) under the surface
 *   lock, -evaluateWithQoS:21, and copies the outputs into plan-owned
 *   tensors (run_into: straight into the caller's buffers).
 * free: plans release their surfaces and request; the device unloads every
 *   model it loaded (-unloadWithQoS:) and removes their temp directories.
 *
 * Every failure becomes a MilRtErr naming the step (descriptor, compile,
 * load, evaluate, ...) with the NSError's localizedDescription.  The Apple
 * entry points come from an AneApi table (ane_api.h): the platform's (real
 * frameworks on macOS, "unavailable" elsewhere) or the test double's. */
#include "runtime/ane/ane_int.h"

#include "ir/ane_rules.h"
#include "ir/fp16.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define DEFAULT_BUDGET 100
#define RTLD_NOW_ 2   /* RTLD_NOW on Linux and macOS */

typedef AneId (*MsgId)(AneId, AneSel);
typedef AneId (*MsgIdId)(AneId, AneSel, AneId);
typedef AneId (*MsgIdCF)(AneId, AneSel, AneCFType);
typedef AneId (*MsgDesc)(AneId, AneSel, AneId, AneId, AneId);
typedef AneBool (*MsgQoSOpt)(AneId, AneSel, unsigned, AneId, AneId *);
typedef AneBool (*MsgEval)(AneId, AneSel, unsigned, AneId, AneId, AneId *);
typedef AneBool (*MsgUnload)(AneId, AneSel, unsigned, AneId *);
typedef AneId (*MsgReq)(AneId, AneSel, AneId, AneId, AneId, AneId, AneId, AneId, AneId);
typedef void (*MsgVoid)(AneId, AneSel);

typedef struct AneEntry {
    uint64_t hash;
    AneId model;                 /* retained; loaded */
    char dir[1024];              /* the model's temp directory */
    struct AneEntry *next;
} AneEntry;

typedef struct AneDev {
    MilRtDevice base;
    MilRtDeviceIface iface;
    const AneApi *api;
    AneId cls_desc, cls_model, cls_request, cls_surface;
    AneSel s_desc, s_model, s_hex, s_compile, s_load, s_eval, s_unload, s_request, s_surface, s_retain,
        s_release, s_errdesc;
    int budget;
    MilRtAneStats stats;
    AneEntry *cache;
} AneDev;

typedef struct AnePlan {
    MilRtPlan base;
    AneEntry *ent;
    AneRender r;                 /* text freed after prepare; orders kept */
    size_t surface_bytes;
    AneCFType *in_surf, *out_surf;   /* indexed by binding position */
    AneId request;
    MilDType *in_dtype;          /* caller dtype per input (prepared) */
    MilRtTensor *outs;           /* per function output (declared order) */
} AnePlan;

#define SEND(d, T) ((T)(d)->api->msg_send)

static int fail(MilRtErr *e, const char *step, const char *fmt, const char *arg) {
    char msg[800];
    snprintf(msg, sizeof msg, fmt, arg);
    return mil_rt_errf(e, "ANE device: %s: %s", step, msg);
}

/* NSError -> "text" (or a note that there was none). */
static void error_text(AneDev *d, AneId err, char *buf, size_t size) {
    snprintf(buf, size, "no NSError returned");
    if (!err) return;
    AneId s = SEND(d, MsgId)(err, d->s_errdesc);
    if (!s || !d->api->string_get(s, buf, (long)size, ANE_CF_STRING_UTF8)) snprintf(buf, size, "NSError without text");
}

static void retain(AneDev *d, AneId o) {
    if (o) SEND(d, MsgId)(o, d->s_retain);
}

static void release_obj(AneDev *d, AneId o) {
    if (o) SEND(d, MsgVoid)(o, d->s_release);
}

/* --------------------------------------------------------------- files */

static int write_file(const char *path, const void *data, size_t len, MilRtErr *e) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return mil_rt_errf(e, "ANE device: temp directory: cannot create %s: %s", path, strerror(errno));
    bool ok = fwrite(data, 1, len, fp) == len;
    if (fclose(fp) != 0) ok = false;
    return ok ? 0 : mil_rt_errf(e, "ANE device: temp directory: cannot write %s", path);
}

static int make_dir(const char *path, MilRtErr *e) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST) return 0;
    return mil_rt_errf(e, "ANE device: temp directory: cannot create %s: %s", path, strerror(errno));
}

static void rm_tree(const char *path) {
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[2048];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(sub);
            else unlink(sub);
        }
        closedir(dir);
    }
    rmdir(path);
}

/* -------------------------------------------------------------- compile */

static AneCFType cf_string(AneDev *d, const char *s) {
    return d->api->string_create(NULL, s, ANE_CF_STRING_UTF8);
}

static AneCFType cf_number(AneDev *d, int64_t v) {
    return d->api->number_create(NULL, ANE_CF_NUMBER_SINT64, &v);
}

static void cf_release(AneDev *d, AneCFType o) {
    if (o) d->api->release(o);
}

static AneCFType empty_dict(AneDev *d) {
    return d->api->dict_create(NULL, NULL, NULL, 0, d->api->dict_key_callbacks, d->api->dict_value_callbacks);
}

/* {ANE_WEIGHT_PATH: {"offset": 0, "data": blob}} or {} (never nil, §3.2). */
static AneCFType weights_dict(AneDev *d, const AneRender *r) {
    if (!r->blob) return empty_dict(d);
    const AneApi *a = d->api;
    AneCFType k_off = cf_string(d, "offset"), k_data = cf_string(d, "data");
    AneCFType v_off = cf_number(d, 0), v_data = a->data_create(NULL, r->blob, (long)r->blob_len);
    const void *ik[2] = {k_off, k_data}, *iv[2] = {v_off, v_data};
    AneCFType inner = a->dict_create(NULL, ik, iv, 2, a->dict_key_callbacks, a->dict_value_callbacks);
    AneCFType key = cf_string(d, ANE_WEIGHT_PATH);
    const void *ok[1] = {key}, *ov[1] = {inner};
    AneCFType outer = a->dict_create(NULL, ok, ov, 1, a->dict_key_callbacks, a->dict_value_callbacks);
    cf_release(d, k_off);
    cf_release(d, k_data);
    cf_release(d, v_off);
    cf_release(d, v_data);
    cf_release(d, inner);
    cf_release(d, key);
    return outer;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Steps 1-7 of §3.2 for one rendered program; the entry is added to the cache. */
static AneEntry *compile_load(AneDev *d, const AneRender *r, uint64_t hash, MilRtErr *e) {
    const AneApi *a = d->api;
    if (*a->compile_count >= d->budget) {
        mil_rt_errf(e, "ANE device: compile budget exhausted: %d compiles in this process (budget %d; the in-memory "
                       "route fails silently after ~119). Restart the process to continue, e.g. mil-train "
                       "--restart-every N (checkpoint + re-exec), use weights as inputs so kernels compile once, or "
                       "raise MILC_ANE_COMPILE_BUDGET",
                    *a->compile_count, d->budget);
        return NULL;
    }
    AneEntry *ent = calloc(1, sizeof *ent);
    if (!ent) {
        mil_rt_errf(e, "out of memory");
        return NULL;
    }
    ent->hash = hash;
    void *pool = a->pool_push();
    AneId err = NULL, model = NULL;
    char text[700], tmp[700];
    AneCFType mil = a->data_create(NULL, (const uint8_t *)r->text, (long)r->len);
    AneCFType weights = weights_dict(d, r);
    AneId desc = mil && weights ? SEND(d, MsgDesc)(d->cls_desc, d->s_desc, (AneId)mil, (AneId)weights, NULL) : NULL;
    cf_release(d, mil);
    cf_release(d, weights);
    if (!desc) {
        fail(e, "descriptor", "%s", "+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:] returned nil");
        goto bad;
    }
    model = SEND(d, MsgIdId)(d->cls_model, d->s_model, desc);
    if (!model) {
        fail(e, "descriptor", "%s", "+[_ANEInMemoryModel inMemoryModelWithDescriptor:] returned nil");
        goto bad;
    }
    retain(d, model);
    AneId hex = SEND(d, MsgId)(model, d->s_hex);
    char hexs[256];
    if (!hex || !a->string_get(hex, hexs, sizeof hexs, ANE_CF_STRING_UTF8) || !hexs[0] || strchr(hexs, '/')) {
        fail(e, "descriptor", "%s", "-hexStringIdentifier returned no usable identifier");
        goto bad;
    }
    if (a->temp_dir(tmp, sizeof tmp)) {
        fail(e, "temp directory", "%s", "NSTemporaryDirectory() failed");
        goto bad;
    }
    size_t tl = strlen(tmp);
    while (tl > 1 && tmp[tl - 1] == '/') tmp[--tl] = 0;
    snprintf(ent->dir, sizeof ent->dir, "%s/%s", tmp, hexs);
    char path[1200];
    snprintf(path, sizeof path, "%s/weights", ent->dir);
    if (make_dir(ent->dir, e) || make_dir(path, e)) goto bad;
    snprintf(path, sizeof path, "%s/model.mil", ent->dir);
    if (write_file(path, r->text, r->len, e)) goto bad;
    if (r->blob) {
        snprintf(path, sizeof path, "%s/weights/weight.bin", ent->dir);
        if (write_file(path, r->blob, r->blob_len, e)) goto bad;
    }
    AneCFType opts = empty_dict(d);
    ++*a->compile_count;
    d->stats.compiles++;
    AneBool ok = SEND(d, MsgQoSOpt)(model, d->s_compile, ANE_QOS, (AneId)opts, &err);
    if (!ok) {
        cf_release(d, opts);
        error_text(d, err, text, sizeof text);
        fail(e, "compile", "%s", text);
        goto bad;
    }
    err = NULL;
    ok = SEND(d, MsgQoSOpt)(model, d->s_load, ANE_QOS, (AneId)opts, &err);
    if (!ok) {
        sleep_ms(100);
        err = NULL;
        ok = SEND(d, MsgQoSOpt)(model, d->s_load, ANE_QOS, (AneId)opts, &err);
    }
    cf_release(d, opts);
    if (!ok) {
        error_text(d, err, text, sizeof text);
        fail(e, "load", "%s", text);
        goto bad;
    }
    d->stats.loads++;
    a->pool_pop(pool);
    ent->model = model;
    ent->next = d->cache;
    d->cache = ent;
    d->stats.cache_entries++;
    return ent;
bad:
    if (ent->dir[0]) rm_tree(ent->dir);
    release_obj(d, model);
    a->pool_pop(pool);
    free(ent);
    return NULL;
}

static void unload(AneDev *d, AneEntry *ent) {
    void *pool = d->api->pool_push();
    AneId err = NULL;
    SEND(d, MsgUnload)(ent->model, d->s_unload, ANE_QOS, &err);   /* nothing to report at free */
    release_obj(d, ent->model);
    d->api->pool_pop(pool);
    rm_tree(ent->dir);
}

/* ----------------------------------------------------------------- plan */

static void plan_free(MilRtPlan *base) {
    AnePlan *p = (AnePlan *)base;
    AneDev *d = (AneDev *)base->dev;
    release_obj(d, p->request);
    for (int i = 0; p->in_surf && i < p->r.nin; i++) cf_release(d, p->in_surf[i]);
    for (int i = 0; p->out_surf && i < p->r.nout; i++) cf_release(d, p->out_surf[i]);
    for (int i = 0; p->outs && i < base->func->noutputs; i++) mil_rt_tensor_free(&p->outs[i]);
    free(p->in_surf);
    free(p->out_surf);
    free(p->in_dtype);
    free(p->outs);
    mil_ane_render_free(&p->r);
    free(p);
}

static AneCFType new_surface(AneDev *d, size_t bytes) {
    const AneApi *a = d->api;
    const void *k[6] = {*a->k_width, *a->k_height, *a->k_bytes_per_element, *a->k_bytes_per_row, *a->k_alloc_size,
                        *a->k_pixel_format};
    AneCFType v[6] = {cf_number(d, (int64_t)bytes), cf_number(d, 1), cf_number(d, 1), cf_number(d, (int64_t)bytes),
                      cf_number(d, (int64_t)bytes), cf_number(d, 0)};
    AneCFType props = a->dict_create(NULL, k, (const void **)v, 6, a->dict_key_callbacks, a->dict_value_callbacks);
    AneCFType s = props ? a->surface_create(props) : NULL;
    cf_release(d, props);
    for (int i = 0; i < 6; i++) cf_release(d, v[i]);
    return s;
}

/* An NSArray of _ANEIOSurfaceObject wrappers and one of indices 0..n-1. */
static int wrap_surfaces(AneDev *d, AneCFType *surf, int n, AneCFType *objs, AneCFType *idx) {
    const AneApi *a = d->api;
    const void **o = calloc((size_t)n + 1, sizeof *o), **ix = calloc((size_t)n + 1, sizeof *ix);
    int rc = o && ix ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        o[i] = SEND(d, MsgIdCF)(d->cls_surface, d->s_surface, surf[i]);
        ix[i] = cf_number(d, i);
        if (!o[i] || !ix[i]) rc = -1;
    }
    if (rc == 0) {
        *objs = a->array_create(NULL, o, n, a->array_callbacks);
        *idx = a->array_create(NULL, ix, n, a->array_callbacks);
        if (!*objs || !*idx) rc = -1;
    }
    for (int i = 0; ix && i < n; i++) cf_release(d, ix[i]);
    free(o);
    free(ix);
    return rc;
}

static int build_request(AneDev *d, AnePlan *p, MilRtErr *e) {
    const AneApi *a = d->api;
    int nin = p->r.nin, nout = p->r.nout;
    p->in_surf = calloc((size_t)nin + 1, sizeof *p->in_surf);
    p->out_surf = calloc((size_t)nout + 1, sizeof *p->out_surf);
    if (!p->in_surf || !p->out_surf) return mil_rt_errf(e, "out of memory");
    for (int i = 0; i < nin; i++)
        if (!(p->in_surf[i] = new_surface(d, p->surface_bytes)))
            return fail(e, "surfaces", "%s", "IOSurfaceCreate returned NULL");
    for (int i = 0; i < nout; i++)
        if (!(p->out_surf[i] = new_surface(d, p->surface_bytes)))
            return fail(e, "surfaces", "%s", "IOSurfaceCreate returned NULL");
    void *pool = a->pool_push();
    AneCFType ins = NULL, inx = NULL, outs = NULL, outx = NULL;
    int rc = wrap_surfaces(d, p->in_surf, nin, &ins, &inx) || wrap_surfaces(d, p->out_surf, nout, &outs, &outx)
                 ? fail(e, "request", "%s", "+[_ANEIOSurfaceObject objectWithIOSurface:] failed")
                 : 0;
    if (rc == 0) {
        AneCFType proc = cf_number(d, 0);
        p->request = SEND(d, MsgReq)(d->cls_request, d->s_request, (AneId)ins, (AneId)inx, (AneId)outs, (AneId)outx,
                                     NULL, NULL, (AneId)proc);
        cf_release(d, proc);
        if (!p->request)
            rc = fail(e, "request", "%s",
                      "+[_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:"
                      "procedureIndex:] returned nil");
        retain(d, p->request);
    }
    cf_release(d, ins);
    cf_release(d, inx);
    cf_release(d, outs);
    cf_release(d, outx);
    a->pool_pop(pool);
    return rc;
}

static size_t value_bytes(const MilRtValue *v) {
    size_t n = mil_rt_dtype_size(v->dtype);
    for (int i = 0; i < v->rank; i++) n *= (size_t)v->dims[i];
    return n;
}

static MilRtPlan *prepare(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *inputs, MilRtErr *e) {
    AneDev *d = (AneDev *)dev;
    char tmp[700];
    if (mil_ane_check(f, e)) return NULL;
    for (int i = 0; i < f->ninputs; i++) {
        const MilRtValue *v = &f->values[f->inputs[i]];
        const MilRtTensor *t = &inputs[i];
        bool ok = (t->dtype == MIL_DT_FP16 || t->dtype == MIL_DT_FP32) && t->rank == v->rank;
        for (int k = 0; ok && k < v->rank; k++) ok = t->dims[k] == v->dims[k];
        if (!ok) {
            char a[256], b[256];
            mil_rt_errf(e, "ANE device: input '%s': expected %s (fp16 or fp32), got %s", v->name,
                        mil_rt_format_type(v->dtype, v->rank, v->dims, a, sizeof a),
                        mil_rt_format_type(t->dtype, t->rank, t->dims, b, sizeof b));
            return NULL;
        }
    }
    AnePlan *p = calloc(1, sizeof *p);
    if (!p) {
        mil_rt_errf(e, "out of memory");
        return NULL;
    }
    p->base.dev = dev;
    p->base.func = f;
    p->in_dtype = calloc((size_t)f->ninputs + 1, sizeof *p->in_dtype);
    p->outs = calloc((size_t)f->noutputs + 1, sizeof *p->outs);
    if (!p->in_dtype || !p->outs) {
        mil_rt_errf(e, "out of memory");
        goto bad;
    }
    for (int i = 0; i < f->ninputs; i++) p->in_dtype[i] = inputs[i].dtype;
    if (d->api->temp_dir(tmp, sizeof tmp)) {
        fail(e, "temp directory", "%s", "NSTemporaryDirectory() failed");
        goto bad;
    }
    if (mil_ane_render(f, tmp, &p->r, e)) goto bad;
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        mil_rt_errf(e, "out of memory");
        goto bad;
    }
    static const char options[] = "qos=21;options={}";
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, p->r.text, p->r.len);
    if (p->r.blob) XXH3_64bits_update(st, p->r.blob, p->r.blob_len);
    XXH3_64bits_update(st, options, sizeof options);
    uint64_t hash = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    for (AneEntry *c = d->cache; c && !p->ent; c = c->next)
        if (c->hash == hash) p->ent = c;
    if (p->ent) d->stats.cache_hits++;
    else if (!(p->ent = compile_load(d, &p->r, hash, e))) goto bad;
    /* the text and blob live on in the compiled model; keep only the orders */
    free(p->r.text);
    free(p->r.blob);
    p->r.text = NULL;
    p->r.blob = NULL;
    size_t bytes = MIL_ANE_MIN_SURFACE_BYTES;
    for (int i = 0; i < f->ninputs; i++)
        if (value_bytes(&f->values[f->inputs[i]]) > bytes) bytes = value_bytes(&f->values[f->inputs[i]]);
    for (int i = 0; i < f->noutputs; i++)
        if (value_bytes(&f->values[f->outputs[i]]) > bytes) bytes = value_bytes(&f->values[f->outputs[i]]);
    p->surface_bytes = (bytes + 63) & ~(size_t)63;
    if (build_request(d, p, e)) goto bad;
    for (int i = 0; i < f->noutputs; i++) {
        const MilRtValue *v = &f->values[f->outputs[i]];
        mil_rt_value_tensor(v, &p->outs[i]);
        p->outs[i].data = NULL;
        if (mil_rt_tensor_alloc(&p->outs[i], e)) goto bad;
    }
    p->base.info.nsteps = 1;
    return &p->base;
bad:
    plan_free(&p->base);
    return NULL;
}

/* Element-wise copy between fp16/fp32 buffers. */
static void convert(MilDType to, void *dst, MilDType from, const void *src, int64_t n) {
    if (to == from) {
        memcpy(dst, src, (size_t)n * mil_rt_dtype_size(to));
    } else if (to == MIL_DT_FP16) {
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = mil_f2h(((const float *)src)[i]);
    } else {
        for (int64_t i = 0; i < n; i++) ((float *)dst)[i] = mil_h2f(((const uint16_t *)src)[i]);
    }
}

/* run and run_into: outputs[i].data != NULL (run_into only) receives output
 * i straight from its surface. */
static int run_plan(MilRtPlan *base, const MilRtTensor *inputs, MilRtTensor *outputs, bool into, MilRtErr *e) {
    AnePlan *p = (AnePlan *)base;
    AneDev *d = (AneDev *)base->dev;
    const AneApi *a = d->api;
    const MilRtFunc *f = base->func;
    for (int i = 0; into && i < f->noutputs; i++)
        if (outputs[i].data && mil_rt_check_output(f, i, &p->outs[i], &outputs[i], e)) return -1;
    for (int k = 0; k < p->r.nin; k++) {
        int i = p->r.in_order[k];
        const MilRtValue *v = &f->values[f->inputs[i]];
        if (inputs[i].dtype != p->in_dtype[i] || !inputs[i].data)
            return mil_rt_errf(e, "ANE device: input '%s': not the dtype the plan was prepared for", v->name);
        AneCFType s = p->in_surf[k];
        if (a->surface_lock(s, 0, NULL)) return fail(e, "evaluate", "%s", "IOSurfaceLock failed");
        convert(v->dtype, a->surface_base(s), inputs[i].dtype, inputs[i].data, mil_rt_numel(&inputs[i]));
        a->surface_unlock(s, 0, NULL);
    }
    void *pool = a->pool_push();
    AneId err = NULL;
    AneCFType opts = empty_dict(d);
    AneBool ok = SEND(d, MsgEval)(p->ent->model, d->s_eval, ANE_QOS, (AneId)opts, p->request, &err);
    cf_release(d, opts);
    if (!ok) {
        char text[700];
        error_text(d, err, text, sizeof text);
        a->pool_pop(pool);
        return fail(e, "evaluate", "%s", text);
    }
    a->pool_pop(pool);
    d->stats.evaluations++;
    for (int k = 0; k < p->r.nout; k++) {
        int i = p->r.out_order[k];
        AneCFType s = p->out_surf[k];
        void *dst = into && outputs[i].data ? outputs[i].data : p->outs[i].data;
        if (a->surface_lock(s, 1, NULL)) return fail(e, "evaluate", "%s", "IOSurfaceLock failed");
        memcpy(dst, a->surface_base(s), mil_rt_nbytes(&p->outs[i]));
        a->surface_unlock(s, 1, NULL);
    }
    for (int i = 0; i < f->noutputs; i++) {
        void *mine = into ? outputs[i].data : NULL;
        outputs[i] = p->outs[i];
        if (mine) outputs[i].data = mine;
    }
    return 0;
}

static int run(MilRtPlan *base, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    return run_plan(base, inputs, outputs, false, e);
}

static int run_into(MilRtPlan *base, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e) {
    return run_plan(base, inputs, outputs, true, e);
}

/* --------------------------------------------------------------- device */

static bool supports_op(MilRtDevice *dev, const MilRtFunc *f, const MilRtOp *op) {
    return !mil_ane_no_path(op->kind);
}

static void dev_free(MilRtDevice *dev) {
    AneDev *d = (AneDev *)dev;
    for (AneEntry *c = d->cache, *next; c; c = next) {
        next = c->next;
        unload(d, c);
        free(c);
    }
    free(d);
}

MilRtDevice *mil_ane_device_new_api(const AneApi *api, const char *iface_name, MilRtErr *e) {
    const char *env = getenv("MILC_ANE_COMPILE_BUDGET");
    int budget = DEFAULT_BUDGET;
    if (env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (!*env || *end || v < 1 || v > 1000000) {
            mil_rt_errf(e, "MILC_ANE_COMPILE_BUDGET: expected a positive integer, got '%s'", env);
            return NULL;
        }
        budget = (int)v;
    }
    if (!api->dl_open(api->framework, RTLD_NOW_)) {
        const char *why = api->dl_error ? api->dl_error() : NULL;
        mil_rt_errf(e, "ANE device: not available on this system (%s)", why ? why : api->framework);
        return NULL;
    }
    AneDev *d = calloc(1, sizeof *d);
    if (!d) {
        mil_rt_errf(e, "out of memory");
        return NULL;
    }
    d->api = api;
    d->budget = budget;
    d->cls_desc = api->get_class("_ANEInMemoryModelDescriptor");
    d->cls_model = api->get_class("_ANEInMemoryModel");
    d->cls_request = api->get_class("_ANERequest");
    d->cls_surface = api->get_class("_ANEIOSurfaceObject");
    if (!d->cls_desc || !d->cls_model || !d->cls_request || !d->cls_surface) {
        mil_rt_errf(e, "ANE device: not available on this system (AppleNeuralEngine.framework lacks the in-memory "
                       "model classes)");
        free(d);
        return NULL;
    }
    d->s_desc = api->sel("modelWithMILText:weights:optionsPlist:");
    d->s_model = api->sel("inMemoryModelWithDescriptor:");
    d->s_hex = api->sel("hexStringIdentifier");
    d->s_compile = api->sel("compileWithQoS:options:error:");
    d->s_load = api->sel("loadWithQoS:options:error:");
    d->s_eval = api->sel("evaluateWithQoS:options:request:error:");
    d->s_unload = api->sel("unloadWithQoS:error:");
    d->s_request = api->sel("requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:");
    d->s_surface = api->sel("objectWithIOSurface:");
    d->s_retain = api->sel("retain");
    d->s_release = api->sel("release");
    d->s_errdesc = api->sel("localizedDescription");
    d->iface = (MilRtDeviceIface){.name = iface_name,
                                  .supports_op = supports_op,
                                  .prepare = prepare,
                                  .run = run,
                                  .plan_free = plan_free,
                                  .run_into = run_into,
                                  .free = dev_free};
    d->base.iface = &d->iface;
    d->base.ctx = d;
    d->stats.budget = budget;
    return &d->base;
}

MilRtDevice *mil_rt_device_ane_new(MilRtErr *e) {
    return mil_ane_device_new_api(&mil_ane_platform_api, "ane", e);
}

static AneDev *ane_of(const MilRtDevice *dev) {
    return dev && dev->iface && dev->iface->prepare == prepare ? (AneDev *)dev : NULL;
}

int mil_rt_ane_set_compile_budget(MilRtDevice *dev, int budget) {
    AneDev *d = ane_of(dev);
    if (!d || budget < 1) return -1;
    d->budget = d->stats.budget = budget;
    return 0;
}

int mil_rt_ane_stats(const MilRtDevice *dev, MilRtAneStats *st) {
    AneDev *d = ane_of(dev);
    if (!d) return -1;
    *st = d->stats;
    st->process_compiles = *d->api->compile_count;
    return 0;
}
