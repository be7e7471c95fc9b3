/* runtime/ane/sim/double.c -- a recording test double of the Apple entry
 * points the ANE device calls (ane_api.h), behaving like the in-memory route
 * as documented in docs/ane-notes.md §3-§4, §7.2, §9.
 *
 * Objects: every objc and CF object is an Obj with a kind and a reference
 * count (retain/release/autorelease and autorelease pools as in Foundation;
 * mil_ane_sim_live_objects() exposes leaks).  objc_msgSend is the assembly
 * trampoline of msgsend.S, which asks mil_ane_sim_lookup() for the
 * implementation of (receiver kind, selector); the implementations below
 * have the exact C types of the selectors.
 *
 * What the double rejects (each recorded as a "!!" line, reported through a
 * nil result or an NSError whose text names the rule):
 *   - MIL text that is not NSData (an NSString), a nil weights dictionary;
 *   - compiling without NSTemporaryDirectory()/<hexStringIdentifier>/ (and
 *     its model.mil, weights/ files equal to the dictionary's data);
 *   - weight dictionary entries that are not {offset, data}, BLOBFILE paths
 *     with no entry;
 *   - MIL the frontend rejects; ops outside Apple's opset (milc extensions),
 *     ops with no ANE path, gelu, conv with bias=, matmul transpose flags that
 *     are not named const ops, scaled_dot_product_attention with attn_mask,
 *     concat without an int32 scalar axis and interleave;
 *   - function inputs or outputs declared in an order other than the
 *     alphabetical binding order (binding by declaration order is ambiguous);
 *   - more compiles per process than the limit (119);
 *   - requests whose indices are not 0..n-1, whose surfaces differ in
 *     allocation size or are below the minimum (~49 KB) or the tensor size;
 *   - evaluating a model that is not loaded, unknown selectors.
 * Execution: the MIL text is parsed by milc's frontend, lowered with
 * `@model_path` = the temp directory, and run on the CPU device, each input
 * read from its surface as packed [1, C, 1, S] data of the declared dtype
 * (fp16 by the ANE's contract) and each output written back the same way. */
#include "runtime/ane/sim/sim_int.h"

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ane_rules.h"
#include "ir/ir.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define DEFAULT_LIMIT 119
#define FRAMEWORK "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine"

typedef enum {
    K_CLASS, K_DATA, K_STRING, K_NUMBER, K_DICT, K_ARRAY, K_SURFACE, K_DESC, K_MODEL, K_SURFOBJ, K_REQUEST, K_ERROR
} Kind;

static const char *const kind_names[] = {"Class", "NSData", "NSString", "NSNumber", "NSDictionary", "NSArray",
                                         "IOSurface", "_ANEInMemoryModelDescriptor", "_ANEInMemoryModel",
                                         "_ANEIOSurfaceObject", "_ANERequest", "NSError"};

typedef struct Obj Obj;
struct Obj {
    Kind kind;
    int refs;
    const char *cls;             /* K_CLASS: the class name */
    uint8_t *bytes;              /* DATA, STRING (NUL-terminated), SURFACE */
    long len;
    int64_t num;                 /* NUMBER */
    Obj **keys, **vals;          /* DICT (keys + vals), ARRAY (vals) */
    long n;
    Obj *a, *b, *c, *d, *e;      /* DESC: text, weights; SURFOBJ: surface; REQUEST: ins, inx, outs, outx, proc;
                                    MODEL: descriptor; ERROR: message */
    /* MODEL */
    char hex[40];
    char dir[1024];
    bool compiled, loaded;
    MilRtProgram *prog;
    MilRtDevice *cpu;
    MilRtPlan *plan;
    int locks;                   /* SURFACE */
};

/* ------------------------------------------------------------ recording */

static struct {
    char **calls;
    int ncalls, cap;
    int violations;
    int compiles;
    int limit;
    long live;
    Obj **pool;                  /* autorelease stack */
    int npool, cappool;
    char *last_mil;
    size_t last_mil_len;
    uint8_t *last_weights;
    size_t last_weights_len;
    char last_key[256];
    int device_compiles;         /* the device's per-process count through this table */
    char fail_step[32];          /* mil_ane_sim_fail: the step to fail, its count and text */
    int fail_count;
    char fail_text[256];
} S = {.limit = DEFAULT_LIMIT};

static void rec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void rec(const char *fmt, ...) {
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!strncmp(buf, "!!", 2)) S.violations++;
    if (S.ncalls == S.cap) {
        int cap = S.cap ? S.cap * 2 : 64;
        char **c = realloc(S.calls, (size_t)cap * sizeof *c);
        if (!c) return;
        S.calls = c;
        S.cap = cap;
    }
    char *s = strdup(buf);
    if (s) S.calls[S.ncalls++] = s;
}

int mil_ane_sim_ncalls(void) { return S.ncalls; }
const char *mil_ane_sim_call(int i) { return i >= 0 && i < S.ncalls ? S.calls[i] : NULL; }
int mil_ane_sim_violations(void) { return S.violations; }
void mil_ane_sim_set_compile_limit(int n) { S.limit = n; }
long mil_ane_sim_live_objects(void) { return S.live; }

void mil_ane_sim_reset(void) {
    for (int i = 0; i < S.ncalls; i++) free(S.calls[i]);
    free(S.calls);
    S.calls = NULL;
    S.ncalls = S.cap = 0;
    S.violations = 0;
    S.compiles = 0;
    S.device_compiles = 0;
    S.limit = DEFAULT_LIMIT;
    S.fail_count = 0;
}

void mil_ane_sim_fail(const char *step, int times, const char *text) {
    snprintf(S.fail_step, sizeof S.fail_step, "%s", step ? step : "");
    snprintf(S.fail_text, sizeof S.fail_text, "%s", text ? text : "");
    S.fail_count = step ? times : 0;
}

/* Is an injected failure due for step?  (Consumes one.) */
static bool injected(const char *step) {
    if (S.fail_count <= 0 || strcmp(S.fail_step, step)) return false;
    S.fail_count--;
    rec("~~ injected %s failure: %s", step, S.fail_text);
    return true;
}

const char *mil_ane_sim_last_mil(size_t *len) {
    if (len) *len = S.last_mil_len;
    return S.last_mil;
}

const void *mil_ane_sim_last_weights(const char **key, size_t *len) {
    if (key) *key = S.last_weights ? S.last_key : NULL;
    if (len) *len = S.last_weights_len;
    return S.last_weights;
}

/* -------------------------------------------------------------- objects */

static Obj *obj_new(Kind k) {
    Obj *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = k;
    o->refs = 1;
    S.live++;
    return o;
}

static Obj *obj_retain(Obj *o) {
    if (o && o->kind != K_CLASS) o->refs++;
    return o;
}

static void obj_release(Obj *o) {
    if (!o || o->kind == K_CLASS) return;
    if (--o->refs > 0) return;
    if (o->refs < 0) {
        rec("!! over-release of a %s", kind_names[o->kind]);
        return;
    }
    for (long i = 0; i < o->n; i++) {
        if (o->keys) obj_release(o->keys[i]);
        obj_release(o->vals[i]);
    }
    obj_release(o->a);
    obj_release(o->b);
    obj_release(o->c);
    obj_release(o->d);
    obj_release(o->e);
    mil_rt_plan_free(o->plan);
    if (o->cpu) mil_rt_device_free(o->cpu);
    mil_rt_program_free(o->prog);
    free(o->keys);
    free(o->vals);
    free(o->bytes);
    free(o);
    S.live--;
}

static Obj *autorelease(Obj *o) {
    if (!o) return NULL;
    if (S.npool == S.cappool) {
        int cap = S.cappool ? S.cappool * 2 : 64;
        Obj **p = realloc(S.pool, (size_t)cap * sizeof *p);
        if (!p) return o;
        S.pool = p;
        S.cappool = cap;
    }
    S.pool[S.npool++] = o;
    return o;
}

static void *pool_push(void) {
    return (void *)(intptr_t)(S.npool + 1);
}

static void pool_pop(void *mark) {
    int m = (int)(intptr_t)mark - 1;
    if (m < 0 || m > S.npool) {
        rec("!! objc_autoreleasePoolPop with an unknown pool");
        return;
    }
    while (S.npool > m) obj_release(S.pool[--S.npool]);
    if (m == 0) {
        free(S.pool);
        S.pool = NULL;
        S.cappool = 0;
    }
}

static Obj *str_new(const char *s) {
    Obj *o = obj_new(K_STRING);
    if (o && !(o->bytes = (uint8_t *)strdup(s))) {
        obj_release(o);
        return NULL;
    }
    if (o) o->len = (long)strlen(s);
    return o;
}

static Obj *num_new(int64_t v) {
    Obj *o = obj_new(K_NUMBER);
    if (o) o->num = v;
    return o;
}

static Obj *dict_get(const Obj *dict, const char *key) {
    if (!dict || dict->kind != K_DICT) return NULL;
    for (long i = 0; i < dict->n; i++)
        if (dict->keys[i] && dict->keys[i]->kind == K_STRING && !strcmp((char *)dict->keys[i]->bytes, key))
            return dict->vals[i];
    return NULL;
}

/* "NSData{123 bytes}" etc. for the recording. */
static const char *desc(const Obj *o, char *buf, size_t size) {
    if (!o) snprintf(buf, size, "nil");
    else if (o->kind == K_CLASS) snprintf(buf, size, "%s", o->cls);
    else if (o->kind == K_DATA) snprintf(buf, size, "NSData{%ld bytes}", o->len);
    else if (o->kind == K_STRING) snprintf(buf, size, "@\"%.200s\"", (const char *)o->bytes);
    else if (o->kind == K_NUMBER) snprintf(buf, size, "@%lld", (long long)o->num);
    else if (o->kind == K_DICT) snprintf(buf, size, "NSDictionary{%ld}", o->n);
    else if (o->kind == K_ARRAY) snprintf(buf, size, "NSArray[%ld]", o->n);
    else if (o->kind == K_SURFACE) snprintf(buf, size, "IOSurface{%ld bytes}", o->len);
    else snprintf(buf, size, "%s", kind_names[o->kind]);
    return buf;
}

#define D(o) desc((o), (char[256]){0}, 256)

/* ------------------------------------------------------- CoreFoundation */

static AneCFType cf_data(const void *alloc, const uint8_t *bytes, long len) {
    Obj *o = obj_new(K_DATA);
    if (!o) return NULL;
    o->bytes = malloc(len > 0 ? (size_t)len : 1);
    if (!o->bytes) {
        obj_release(o);
        return NULL;
    }
    if (len > 0) memcpy(o->bytes, bytes, (size_t)len);
    o->len = len;
    return o;
}

static AneCFType cf_string(const void *alloc, const char *s, uint32_t enc) {
    if (enc != ANE_CF_STRING_UTF8) rec("!! CFStringCreateWithCString with encoding 0x%x (not UTF-8)", enc);
    return str_new(s);
}

static AneCFType cf_number(const void *alloc, long type, const void *v) {
    int64_t x;
    if (type == ANE_CF_NUMBER_SINT64) memcpy(&x, v, 8);
    else if (type == 3) { int32_t y; memcpy(&y, v, 4); x = y; }   /* kCFNumberSInt32Type */
    else {
        rec("!! CFNumberCreate with an unsupported type %ld", type);
        return NULL;
    }
    return num_new(x);
}

static AneCFType cf_dict(const void *alloc, const void **k, const void **v, long n, const void *kcb, const void *vcb) {
    Obj *o = obj_new(K_DICT);
    if (!o) return NULL;
    o->keys = calloc((size_t)n + 1, sizeof *o->keys);
    o->vals = calloc((size_t)n + 1, sizeof *o->vals);
    if (!o->keys || !o->vals) {
        obj_release(o);
        return NULL;
    }
    for (long i = 0; i < n; i++) {
        o->keys[i] = obj_retain((Obj *)k[i]);
        o->vals[i] = obj_retain((Obj *)v[i]);
        o->n = i + 1;
    }
    return o;
}

static AneCFType cf_array(const void *alloc, const void **v, long n, const void *cb) {
    Obj *o = obj_new(K_ARRAY);
    if (!o) return NULL;
    o->vals = calloc((size_t)n + 1, sizeof *o->vals);
    if (!o->vals) {
        obj_release(o);
        return NULL;
    }
    for (long i = 0; i < n; i++) {
        o->vals[i] = obj_retain((Obj *)v[i]);
        o->n = i + 1;
    }
    return o;
}

static AneBool cf_string_get(AneCFType s, char *buf, long size, uint32_t enc) {
    const Obj *o = s;
    if (!o || o->kind != K_STRING || size < 1 || o->len >= size) return 0;
    memcpy(buf, o->bytes, (size_t)o->len + 1);
    return 1;
}

static void cf_release(AneCFType o) { obj_release((Obj *)o); }

/* ------------------------------------------------------------- IOSurface */

static Obj k_objs[6] = {{.kind = K_CLASS, .cls = "kIOSurfaceWidth"},       {.kind = K_CLASS, .cls = "kIOSurfaceHeight"},
                        {.kind = K_CLASS, .cls = "kIOSurfaceBytesPerElement"}, {.kind = K_CLASS, .cls = "kIOSurfaceBytesPerRow"},
                        {.kind = K_CLASS, .cls = "kIOSurfaceAllocSize"},   {.kind = K_CLASS, .cls = "kIOSurfacePixelFormat"}};
static AneCFType k_keys[6] = {&k_objs[0], &k_objs[1], &k_objs[2], &k_objs[3], &k_objs[4], &k_objs[5]};

static int64_t prop(const Obj *props, int k, bool *ok) {
    for (long i = 0; props && i < props->n; i++)
        if (props->keys[i] == &k_objs[k] && props->vals[i] && props->vals[i]->kind == K_NUMBER) return props->vals[i]->num;
    *ok = false;
    return 0;
}

static AneCFType surface_create(AneCFType p) {
    const Obj *props = p;
    bool ok = props && props->kind == K_DICT;
    int64_t w = prop(props, 0, &ok), h = prop(props, 1, &ok), bpe = prop(props, 2, &ok), bpr = prop(props, 3, &ok),
            alloc = prop(props, 4, &ok), pf = prop(props, 5, &ok);
    rec("IOSurfaceCreate width=%lld height=%lld bytesPerElement=%lld bytesPerRow=%lld allocSize=%lld pixelFormat=%lld",
        (long long)w, (long long)h, (long long)bpe, (long long)bpr, (long long)alloc, (long long)pf);
    if (!ok || h != 1 || bpe != 1 || w != bpr || w != alloc || pf != 0 || w <= 0) {
        rec("!! IOSurfaceCreate: the route's surfaces are flat: width = bytesPerRow = allocSize, height 1, "
            "bytesPerElement 1, pixelFormat 0 (ane-notes §3.2)");
        return NULL;
    }
    Obj *o = obj_new(K_SURFACE);
    if (o && !(o->bytes = calloc(1, (size_t)alloc))) {
        obj_release(o);
        return NULL;
    }
    if (o) o->len = (long)alloc;
    return o;
}

static int surface_lock(AneCFType s, uint32_t opt, uint32_t *seed) {
    Obj *o = (Obj *)s;
    if (!o || o->kind != K_SURFACE) return -1;
    o->locks++;
    return 0;
}

static int surface_unlock(AneCFType s, uint32_t opt, uint32_t *seed) {
    Obj *o = (Obj *)s;
    if (!o || o->kind != K_SURFACE || o->locks == 0) {
        rec("!! IOSurfaceUnlock of a surface that is not locked");
        return -1;
    }
    o->locks--;
    return 0;
}

static void *surface_base(AneCFType s) {
    Obj *o = (Obj *)s;
    if (o && o->kind == K_SURFACE && o->locks == 0) rec("!! IOSurfaceGetBaseAddress outside IOSurfaceLock/Unlock");
    return o && o->kind == K_SURFACE ? o->bytes : NULL;
}

static size_t surface_alloc_size(AneCFType s) {
    const Obj *o = s;
    return o && o->kind == K_SURFACE ? (size_t)o->len : 0;
}

/* ------------------------------------------------------ dlfcn, temp dir */

static const char *dl_err;

static void *dl_open(const char *path, int mode) {
    rec("dlopen(\"%s\")", path);
    if (strcmp(path, FRAMEWORK)) {
        dl_err = "the ANE double provides only AppleNeuralEngine.framework";
        return NULL;
    }
    return (void *)FRAMEWORK;
}

static char *dl_error(void) { return (char *)dl_err; }

static int temp_dir(char *buf, size_t size) {
    const char *t = getenv("TMPDIR");
    int n = snprintf(buf, size, "%s/", t && *t ? t : "/tmp");
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* --------------------------------------------------------------- classes */

static Obj classes[4] = {{.kind = K_CLASS, .cls = "_ANEInMemoryModelDescriptor"},
                         {.kind = K_CLASS, .cls = "_ANEInMemoryModel"},
                         {.kind = K_CLASS, .cls = "_ANERequest"},
                         {.kind = K_CLASS, .cls = "_ANEIOSurfaceObject"}};

static AneId get_class(const char *name) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(classes[i].cls, name)) return &classes[i];
    rec("!! objc_getClass(\"%s\"): no such class in the double", name);
    return NULL;
}

/* Selectors are interned names. */
static char **sels;
static int nsels;

static AneSel sel(const char *name) {
    for (int i = 0; i < nsels; i++)
        if (!strcmp(sels[i], name)) return sels[i];
    char **n = realloc(sels, (size_t)(nsels + 1) * sizeof *n);
    if (!n) return NULL;
    sels = n;
    return sels[nsels++] = strdup(name);
}

/* ------------------------------------------------------ implementations */

static Obj *error_obj(const char *msg) {
    Obj *e = obj_new(K_ERROR);
    if (e) e->a = str_new(msg);
    return e;
}

static Obj *make_error(AneId *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static Obj *make_error(AneId *err, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rec("!! %s", msg);
    if (!err) return NULL;
    return *err = autorelease(error_obj(msg));
}

static AneId m_nil(AneId self, AneSel s) { return NULL; }

static AneId m_unknown(AneId self, AneSel s) {
    const Obj *o = self;
    rec("!! -[%s %s]: unrecognized selector sent to instance", o->kind == K_CLASS ? o->cls : kind_names[o->kind],
        (const char *)s);
    return NULL;
}

static AneId m_retain(AneId self, AneSel s) { return obj_retain(self); }
static void m_release(AneId self, AneSel s) { obj_release(self); }
static AneId m_autorelease(AneId self, AneSel s) { return autorelease(self); }

static AneId m_error_text(AneId self, AneSel s) {
    const Obj *o = self;
    return o->a;
}

static AneId m_desc(AneId cls, AneSel s, AneId text, AneId weights, AneId opts) {
    Obj *t = text, *w = weights;
    rec("+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:] %s, %s, %s", D(t), D(w), D((Obj *)opts));
    if (!t || t->kind != K_DATA) {
        rec("!! modelWithMILText: the MIL text must be NSData holding UTF-8 (got %s)", t ? kind_names[t->kind] : "nil");
        return NULL;
    }
    if (w && w->kind != K_DICT) {
        rec("!! modelWithMILText: weights must be an NSDictionary (got %s)", kind_names[w->kind]);
        return NULL;
    }
    if (injected("descriptor")) return NULL;
    Obj *d = obj_new(K_DESC);
    if (!d) return NULL;
    d->a = obj_retain(t);
    d->b = obj_retain(w);
    return autorelease(d);
}

static AneId m_model(AneId cls, AneSel s, AneId desc_) {
    Obj *dsc = desc_;
    rec("+[_ANEInMemoryModel inMemoryModelWithDescriptor:] %s", D(dsc));
    if (!dsc || dsc->kind != K_DESC) return NULL;
    Obj *m = obj_new(K_MODEL);
    if (!m) return NULL;
    m->a = obj_retain(dsc);
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, dsc->a->bytes, (size_t)dsc->a->len);
    for (long i = 0; dsc->b && i < dsc->b->n; i++) {
        Obj *data = dict_get(dsc->b->vals[i], "data");
        if (data && data->kind == K_DATA) XXH3_64bits_update(st, data->bytes, (size_t)data->len);
    }
    snprintf(m->hex, sizeof m->hex, "%016llX", (unsigned long long)XXH3_64bits_digest(st));
    XXH3_freeState(st);
    return autorelease(m);
}

static AneId m_hex(AneId self, AneSel s) {
    Obj *m = self;
    rec("-[_ANEInMemoryModel hexStringIdentifier] -> @\"%s\"", m->hex);
    return autorelease(str_new(m->hex));
}

static bool file_equals(const char *path, const uint8_t *data, long len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    bool same = true;
    uint8_t buf[65536];
    long off = 0;
    size_t n;
    while (same && (n = fread(buf, 1, sizeof buf, fp)) > 0) {
        if (off + (long)n > len || memcmp(buf, data + off, n)) same = false;
        off += (long)n;
    }
    fclose(fp);
    return same && off == len;
}

static bool is_named_const(const MilArg *a) {
    return a && a->n == 1 && a->items[0].value && a->items[0].value->def && a->items[0].value->def->kind == MIL_OP_CONST;
}

/* The route's rules on the parsed program; NULL or the violated rule. */
static const char *route_rules(const MilProgram *p, char *buf, size_t size) {
    if (p->nfuncs != 1 || strcmp(p->funcs[0]->name, "main")) return "the program must have one function 'main'";
    const MilFunc *f = p->funcs[0];
    for (int i = 1; i < f->nparams; i++)
        if (strcmp(f->params[i - 1]->name, f->params[i]->name) > 0) {
            snprintf(buf, size, "inputs are bound alphabetically by MIL name, but '%s' is declared before '%s': "
                                "binding by declaration order would be ambiguous (ane-notes §3.3)",
                     f->params[i - 1]->name, f->params[i]->name);
            return buf;
        }
    for (int i = 0; i < f->body.nouts; i++) {
        if (i && strcmp(f->body.outs[i - 1]->name, f->body.outs[i]->name) > 0) {
            snprintf(buf, size, "outputs are bound alphabetically by MIL name, but '%s' is listed before '%s': "
                                "binding by declaration order would be ambiguous (ane-notes §3.3)",
                     f->body.outs[i - 1]->name, f->body.outs[i]->name);
            return buf;
        }
        if (!f->body.outs[i]->def || f->body.outs[i]->def->kind == MIL_OP_CONST) {
            snprintf(buf, size, "output '%s' is not a live op result", f->body.outs[i]->name);
            return buf;
        }
    }
    for (const MilOp *op = f->body.first; op; op = op->next) {
        const MilOpInfo *info = mil_op_info(op->kind);
        const char *name = op->opname;
        int line = op->loc.line, col = op->loc.col;
        const char *why = NULL;
        if (info && (info->flags & OPF_EXT)) why = "is not in Apple's opset";
        else if (mil_ane_no_path(op->kind)) why = "is not supported by the ANE compiler";
        else if (op->kind == MIL_OP_GELU) why = "is rejected by the in-memory route";
        else if (op->kind == MIL_OP_CONV && mil_op_arg(op, "bias")) why = "with bias= is rejected by the in-memory route";
        else if (op->kind == MIL_OP_MATMUL &&
                 (!is_named_const(mil_op_arg(op, "transpose_x")) || !is_named_const(mil_op_arg(op, "transpose_y"))))
            why = "needs transpose_x and transpose_y as named const ops";
        else if (op->kind == MIL_OP_SCALED_DOT_PRODUCT_ATTENTION && mil_op_arg(op, "attn_mask"))
            why = "with attn_mask is not supported (the mask would be ignored)";
        else if (op->kind == MIL_OP_CONCAT) {
            const MilConst *ax = mil_op_const_arg(op, "axis");
            if (!ax || !ax->type || ax->type->rank != 0 || ax->type->dtype != MIL_DT_INT32 || !mil_op_arg(op, "interleave"))
                why = "needs an int32 scalar axis and interleave";
        }
        if (why) {
            snprintf(buf, size, "model.mil:%d:%d: op '%s' %s", line, col, name, why);
            return buf;
        }
    }
    return NULL;
}

/* BLOBFILE paths of the program must be keys of the weights dictionary with
 * {offset: NSNumber, data: NSData}, and the temp directory must hold each
 * blob as the device wrote it. */
static const char *check_blob(const Obj *weights, const char *dir, const MilConst *c, char *buf, size_t size) {
    if (!c || c->kind != MIL_CONST_BLOB) return NULL;
    Obj *ent = dict_get(weights, c->blob_path);
    if (!ent) {
        snprintf(buf, size, "BLOBFILE path \"%s\" is not a key of the weights dictionary", c->blob_path);
        return buf;
    }
    Obj *off = dict_get(ent, "offset"), *data = dict_get(ent, "data");
    if (!off || off->kind != K_NUMBER || !data || data->kind != K_DATA) {
        snprintf(buf, size, "weights[\"%s\"] must be {offset: NSNumber, data: NSData}", c->blob_path);
        return buf;
    }
    const char *rel = c->blob_path;
    if (!strncmp(rel, "@model_path/", 12)) rel += 12;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (!file_equals(path, data->bytes, data->len)) {
        snprintf(buf, size, "%.300s is missing or differs from weights[\"%.200s\"].data (write every blob into the temp "
                            "directory before compiling)", path, c->blob_path);
        return buf;
    }
    return NULL;
}

static const char *check_weights(const MilProgram *p, const Obj *weights, const char *dir, char *buf, size_t size) {
    const MilFunc *f = p->funcs[0];
    for (const MilOp *op = f->body.first; op; op = op->next) {
        for (int i = 0; i < op->nattrs; i++) {
            const char *why = check_blob(weights, dir, op->attrs[i].val, buf, size);
            if (why) return why;
        }
        for (int i = 0; i < op->nargs; i++)
            for (int k = 0; k < op->args[i].n; k++) {
                const char *why = check_blob(weights, dir, op->args[i].items[k].cst, buf, size);
                if (why) return why;
            }
    }
    return NULL;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static AneBool m_compile(AneId self, AneSel s, unsigned qos, AneId opts, AneId *err) {
    Obj *m = self;
    rec("-[_ANEInMemoryModel compileWithQoS:options:error:] %u, %s, %s", qos, D((Obj *)opts), err ? "&err" : "NULL");
    Obj *dsc = m->a, *text = dsc->a, *weights = dsc->b;
    free(S.last_mil);
    S.last_mil = malloc((size_t)text->len + 1);
    if (S.last_mil) {
        memcpy(S.last_mil, text->bytes, (size_t)text->len);
        S.last_mil[text->len] = 0;
        S.last_mil_len = (size_t)text->len;
    }
    free(S.last_weights);
    S.last_weights = NULL;
    S.last_weights_len = 0;
    if (weights && weights->n == 1 && weights->keys[0]->kind == K_STRING) {
        Obj *data = dict_get(weights->vals[0], "data");
        snprintf(S.last_key, sizeof S.last_key, "%s", (const char *)weights->keys[0]->bytes);
        if (data && data->kind == K_DATA && (S.last_weights = malloc((size_t)data->len + 1))) {
            memcpy(S.last_weights, data->bytes, (size_t)data->len);
            S.last_weights_len = (size_t)data->len;
        }
    }
    if (++S.compiles > S.limit) {
        make_error(err, "compile failed: %d compiles in this process exceed the in-memory route's limit (~%d)",
                   S.compiles, S.limit);
        return 0;
    }
    if (injected("compile")) {
        if (err) *err = autorelease(error_obj(S.fail_text));
        return 0;
    }
    if (m->compiled) {
        make_error(err, "compile: the model is already compiled");
        return 0;
    }
    if (!weights) {
        make_error(err, "compile failed: the weights dictionary is nil (pass an empty dictionary; nil silently "
                        "breaks compilation, ane-notes §3.2)");
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(m->dir, sizeof m->dir, "%s/%s", tmp && *tmp ? tmp : "/tmp", m->hex);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.mil", m->dir);
    if (!is_dir(m->dir) || access(m->dir, W_OK) != 0) {
        make_error(err, "compile failed: temp directory %s does not exist or is not writable (create "
                        "NSTemporaryDirectory()/<hexStringIdentifier>/ before compiling)", m->dir);
        return 0;
    }
    if (!file_equals(path, text->bytes, text->len)) {
        make_error(err, "compile failed: %s is missing or differs from the MIL text", path);
        return 0;
    }
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("model.mil", (const char *)text->bytes, (size_t)text->len, NULL, &d);
    if (p && d.nerrors == 0) mil_verify(p, &d);
    char msg[900];
    if (!p || d.nerrors) {
        for (int i = 0; i < d.n; i++)
            if (d.v[i].sev == MIL_SEV_ERROR) {
                mil_diag_format(&d, i, msg, sizeof msg);
                break;
            }
        make_error(err, "compile failed: MIL: %s", msg);
        goto fail;
    }
    const char *why = route_rules(p, msg, sizeof msg);
    if (!why) why = check_weights(p, weights, m->dir, msg, sizeof msg);
    if (why) {
        make_error(err, "compile failed: %s", why);
        goto fail;
    }
    MilRtDevice *cpu = mil_rt_device_cpu_new();
    MilLowerOptions lo = {.model_dir = m->dir, .device = cpu, .file = "model.mil"};
    MilRtProgram *rp = cpu ? mil_lower(p, &lo, &d) : NULL;
    if (!rp) {
        mil_diag_format(&d, d.n ? d.n - 1 : 0, msg, sizeof msg);
        make_error(err, "compile failed: %s", d.n ? msg : "out of memory");
        if (cpu) mil_rt_device_free(cpu);
        goto fail;
    }
    /* the compiler's products (also proves the directory is writable) */
    snprintf(path, sizeof path, "%s/net.plist", m->dir);
    FILE *fp = fopen(path, "w");
    if (!fp || fputs("<plist><!-- milc ANE double --></plist>\n", fp) < 0) {
        if (fp) fclose(fp);
        make_error(err, "compile failed: cannot write %s: %s", path, strerror(errno));
        mil_rt_program_free(rp);
        mil_rt_device_free(cpu);
        goto fail;
    }
    fclose(fp);
    m->prog = rp;
    m->cpu = cpu;
    m->compiled = true;
    mil_program_free(p);
    mil_diag_free(&d);
    return 1;
fail:
    mil_program_free(p);
    mil_diag_free(&d);
    return 0;
}

static AneBool m_load(AneId self, AneSel s, unsigned qos, AneId opts, AneId *err) {
    Obj *m = self;
    rec("-[_ANEInMemoryModel loadWithQoS:options:error:] %u, %s, %s", qos, D((Obj *)opts), err ? "&err" : "NULL");
    if (!m->compiled) {
        make_error(err, "load failed: the model is not compiled");
        return 0;
    }
    if (injected("load")) {
        if (err) *err = autorelease(error_obj(S.fail_text));
        return 0;
    }
    if (m->loaded) return 1;
    const MilRtFunc *f = mil_rt_program_find_func(m->prog, "main");
    MilRtTensor *shapes = calloc((size_t)f->ninputs + 1, sizeof *shapes);
    MilRtErr e;
    for (int i = 0; shapes && i < f->ninputs; i++) mil_rt_value_tensor(&f->values[f->inputs[i]], &shapes[i]);
    m->plan = shapes ? mil_rt_prepare(m->cpu, f, shapes, &e) : NULL;
    free(shapes);
    if (!m->plan) {
        make_error(err, "load failed: %s", shapes ? e.msg : "out of memory");
        return 0;
    }
    m->loaded = true;
    return 1;
}

static AneBool m_unload(AneId self, AneSel s, unsigned qos, AneId *err) {
    Obj *m = self;
    rec("-[_ANEInMemoryModel unloadWithQoS:error:] %u, %s", qos, err ? "&err" : "NULL");
    if (!m->loaded) {
        make_error(err, "unload failed: the model is not loaded");
        return 0;
    }
    mil_rt_plan_free(m->plan);
    m->plan = NULL;
    m->loaded = false;
    return 1;
}

static const char *check_indices(const Obj *arr, const Obj *idx, long want, const char *what, char *buf, size_t size) {
    if (!arr || arr->kind != K_ARRAY || !idx || idx->kind != K_ARRAY) {
        snprintf(buf, size, "%s and %sIndices must be NSArrays", what, what);
        return buf;
    }
    if (arr->n != want || idx->n != want) {
        snprintf(buf, size, "the program has %ld %s, the request binds %ld surfaces and %ld indices", want, what,
                 arr->n, idx->n);
        return buf;
    }
    for (long i = 0; i < idx->n; i++)
        if (!idx->vals[i] || idx->vals[i]->kind != K_NUMBER || idx->vals[i]->num != i) {
            snprintf(buf, size, "%sIndices must be @0..@%ld in order", what, want - 1);
            return buf;
        }
    for (long i = 0; i < arr->n; i++)
        if (!arr->vals[i] || arr->vals[i]->kind != K_SURFOBJ) {
            snprintf(buf, size, "%s[%ld] is not an _ANEIOSurfaceObject", what, i);
            return buf;
        }
    return NULL;
}

static AneBool m_eval(AneId self, AneSel s, unsigned qos, AneId opts, AneId request, AneId *err) {
    Obj *m = self, *req = request;
    rec("-[_ANEInMemoryModel evaluateWithQoS:options:request:error:] %u, %s, %s, %s", qos, D((Obj *)opts), D(req),
        err ? "&err" : "NULL");
    if (!m->loaded) {
        make_error(err, "evaluate failed: the model is not loaded");
        return 0;
    }
    if (!req || req->kind != K_REQUEST) {
        make_error(err, "evaluate failed: the request is not an _ANERequest");
        return 0;
    }
    if (injected("evaluate")) {
        if (err) *err = autorelease(error_obj(S.fail_text));
        return 0;
    }
    const MilRtFunc *f = m->plan->func;
    char buf[600];
    const char *why = check_indices(req->a, req->b, f->ninputs, "inputs", buf, sizeof buf);
    if (!why) why = check_indices(req->c, req->d, f->noutputs, "outputs", buf, sizeof buf);
    if (why) {
        make_error(err, "evaluate failed: %s", why);
        return 0;
    }
    long size = -1;
    for (int pass = 0; pass < 2; pass++) {
        const Obj *arr = pass ? req->c : req->a;
        for (long i = 0; i < arr->n; i++) {
            const Obj *surf = arr->vals[i]->a;
            const MilRtValue *v = &f->values[pass ? f->outputs[i] : f->inputs[i]];
            MilRtTensor t;
            mil_rt_value_tensor(v, &t);
            if (size >= 0 && surf->len != size) {
                make_error(err, "evaluate failed: the surfaces of one request must have one allocation size (got %ld "
                                "and %ld bytes, ane-notes §3.3)", size, surf->len);
                return 0;
            }
            size = surf->len;
            if (surf->len < MIL_ANE_MIN_SURFACE_BYTES) {
                make_error(err, "evaluate failed: surface of %ld bytes is below the minimum of %d bytes (ane-notes §3.3)",
                           surf->len, MIL_ANE_MIN_SURFACE_BYTES);
                return 0;
            }
            if ((size_t)surf->len < mil_rt_nbytes(&t)) {
                make_error(err, "evaluate failed: %s '%s' needs %zu bytes, its surface has %ld", pass ? "output" : "input",
                           v->name, mil_rt_nbytes(&t), surf->len);
                return 0;
            }
        }
    }
    MilRtTensor *in = calloc((size_t)f->ninputs + 1, sizeof *in), *out = calloc((size_t)f->noutputs + 1, sizeof *out);
    if (!in || !out) {
        free(in);
        free(out);
        make_error(err, "evaluate failed: out of memory");
        return 0;
    }
    for (int i = 0; i < f->ninputs; i++) {
        mil_rt_value_tensor(&f->values[f->inputs[i]], &in[i]);
        in[i].data = req->a->vals[i]->a->bytes;    /* packed [1, C, 1, S] as the ANE reads it */
    }
    MilRtErr e;
    int rc = mil_rt_plan_run(m->plan, in, out, &e);
    for (int i = 0; rc == 0 && i < f->noutputs; i++)
        memcpy(req->c->vals[i]->a->bytes, out[i].data, mil_rt_nbytes(&out[i]));
    free(in);
    free(out);
    if (rc) {
        make_error(err, "evaluate failed: %s", e.msg);
        return 0;
    }
    return 1;
}

static AneId m_surfobj(AneId cls, AneSel s, AneCFType surface) {
    Obj *surf = (Obj *)surface;
    rec("+[_ANEIOSurfaceObject objectWithIOSurface:] %s", D(surf));
    if (!surf || surf->kind != K_SURFACE) return NULL;
    Obj *o = obj_new(K_SURFOBJ);
    if (o) o->a = obj_retain(surf);
    return autorelease(o);
}

static AneId m_request(AneId cls, AneSel s, AneId ins, AneId inx, AneId outs, AneId outx, AneId wb, AneId ps,
                       AneId proc) {
    Obj *p = proc;
    rec("+[_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:] "
        "%s, %s, %s, %s, %s, %s, %s", D((Obj *)ins), D((Obj *)inx), D((Obj *)outs), D((Obj *)outx), D((Obj *)wb),
        D((Obj *)ps), D(p));
    if (!p || p->kind != K_NUMBER || p->num < 0 || p->num > 15) {
        rec("!! requestWithInputs: procedureIndex must be an NSNumber in 0..15");
        return NULL;
    }
    Obj *r = obj_new(K_REQUEST);
    if (!r) return NULL;
    r->a = obj_retain(ins);
    r->b = obj_retain(inx);
    r->c = obj_retain(outs);
    r->d = obj_retain(outx);
    r->e = obj_retain(p);
    return autorelease(r);
}

/* -------------------------------------------------------------- dispatch */

typedef struct Method {
    int kind;                    /* receiver kind, or -1 - class index for class methods, or -100 any */
    const char *sel;
    AneImp imp;
} Method;

static const Method methods[] = {
    {-1, "modelWithMILText:weights:optionsPlist:", (AneImp)m_desc},
    {-2, "inMemoryModelWithDescriptor:", (AneImp)m_model},
    {-3, "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:", (AneImp)m_request},
    {-4, "objectWithIOSurface:", (AneImp)m_surfobj},
    {K_MODEL, "hexStringIdentifier", (AneImp)m_hex},
    {K_MODEL, "compileWithQoS:options:error:", (AneImp)m_compile},
    {K_MODEL, "loadWithQoS:options:error:", (AneImp)m_load},
    {K_MODEL, "evaluateWithQoS:options:request:error:", (AneImp)m_eval},
    {K_MODEL, "unloadWithQoS:error:", (AneImp)m_unload},
    {K_ERROR, "localizedDescription", (AneImp)m_error_text},
    {-100, "retain", (AneImp)m_retain},
    {-100, "release", (AneImp)m_release},
    {-100, "autorelease", (AneImp)m_autorelease},
};

AneImp mil_ane_sim_lookup(AneId self, AneSel s);
AneImp mil_ane_sim_lookup(AneId self, AneSel s) {
    const Obj *o = self;
    if (!o) return (AneImp)m_nil;   /* messaging nil returns 0 */
    int k = o->kind;
    if (k == K_CLASS)
        for (int i = 0; i < 4; i++)
            if (o == &classes[i]) k = -1 - i;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if ((methods[i].kind == k || (methods[i].kind == -100 && k >= 0)) && !strcmp(methods[i].sel, (const char *)s))
            return methods[i].imp;
    return (AneImp)m_unknown;
}

extern void mil_ane_sim_msgsend(void);

static const AneApi sim_api = {
    .name = "ane-sim",
    .framework = FRAMEWORK,
    .dl_open = dl_open,
    .dl_error = dl_error,
    .get_class = get_class,
    .sel = sel,
    .msg_send = mil_ane_sim_msgsend,
    .pool_push = pool_push,
    .pool_pop = pool_pop,
    .data_create = cf_data,
    .string_create = cf_string,
    .number_create = cf_number,
    .dict_create = cf_dict,
    .array_create = cf_array,
    .string_get = cf_string_get,
    .release = cf_release,
    .dict_key_callbacks = "kCFTypeDictionaryKeyCallBacks",
    .dict_value_callbacks = "kCFTypeDictionaryValueCallBacks",
    .array_callbacks = "kCFTypeArrayCallBacks",
    .surface_create = surface_create,
    .surface_lock = surface_lock,
    .surface_unlock = surface_unlock,
    .surface_base = surface_base,
    .surface_alloc_size = surface_alloc_size,
    .k_width = &k_keys[0],
    .k_height = &k_keys[1],
    .k_bytes_per_element = &k_keys[2],
    .k_bytes_per_row = &k_keys[3],
    .k_alloc_size = &k_keys[4],
    .k_pixel_format = &k_keys[5],
    .temp_dir = temp_dir,
    .compile_count = &S.device_compiles,
};

const AneApi *mil_ane_sim_api(void) { return &sim_api; }
