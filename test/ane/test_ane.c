/* test/ane/test_ane.c -- contract tests of the ANE device (runtime/ane/)
 * against the recording double of Apple's private API (libmilanesim):
 * the call sequence of ane-notes §3.2, agreement with the CPU device on
 * programs that pass `--target=ane --strict`, the MIL text and weights the
 * device hands to the compiler, the compile cache and budget, and every
 * rejection of the documented route. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/ane/sim/sim_int.h"
#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp, *out_, *err_;

static void setup(void) {
    tu_fixture_init(&tmp, &out_, &err_);
    setenv("TMPDIR", tmp, 1);   /* NSTemporaryDirectory() of the double */
    mil_ane_sim_reset();
}

static void teardown(void) {
    tu_fixture_fini(&tmp, &out_, &err_);
}

/* ------------------------------------------------------------- programs */

typedef struct Prog {
    MilRtProgram *rp;
    MilRtFunc *f;
    MilRtTensor in[8];
} Prog;

/* test/ane/data/NAME: copied into a model directory, compiled as milc
 * --target=ane -O2 --strict would (asserting the legality pass accepts it)
 * when `ane`, extension ops expanded, weights synthesised, lowered; random
 * inputs. */
static void load(Prog *pg, const char *name, bool ane) {
    memset(pg, 0, sizeof *pg);
    size_t len;
    char *text = tu_read_file(tu_src(tu_fmt("test/ane/data/%s", name)), &len);
    cr_assert(text, "cannot read %s", name);
    const char *dir = tu_path(tmp, "model");
    mkdir(dir, 0777);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse(name, text, len, NULL, &d);
    cr_assert(p && d.nerrors == 0, "%s does not parse", name);
    if (ane) {
        MilPassOptions po;
        mil_pass_options_init(&po);
        po.opt_level = 2;
        po.target = MIL_TARGET_ANE;
        po.strict = true;
        int rc = mil_pass_run(p, &po, &d);
        char m[1024] = "";
        if (d.n) mil_diag_format(&d, 0, m, sizeof m);
        cr_assert(rc == 0 && d.nerrors == 0, "%s fails --target=ane --strict: %s", name, m);
        cr_assert_eq(mil_ane_expand_ext(p, &d), 0);
    }
    cr_assert_geq(mil_synth_weights(p, dir, 7, &d), 0);
    MilLowerOptions lo = {.model_dir = dir, .file = name};
    pg->rp = mil_lower(p, &lo, &d);
    cr_assert(pg->rp, "%s does not lower", name);
    pg->f = pg->rp->funcs[0];
    uint64_t seed = 42;
    for (int i = 0; i < pg->f->ninputs; i++) {
        mil_rt_value_tensor(&pg->f->values[pg->f->inputs[i]], &pg->in[i]);
        pg->in[i].data = NULL;
        MilRtErr e;
        cr_assert_eq(mil_rt_tensor_alloc(&pg->in[i], &e), 0);
        mil_rt_tensor_fill_random(&pg->in[i], &seed);
    }
    mil_program_free(p);
    mil_diag_free(&d);
    free(text);
}

static void unload_prog(Prog *pg) {
    for (int i = 0; i < pg->f->ninputs; i++) mil_rt_tensor_free(&pg->in[i]);
    mil_rt_program_free(pg->rp);
}

static MilRtDevice *sim(void) {
    MilRtErr e;
    MilRtDevice *d = mil_ane_sim_device_new(&e);
    cr_assert(d, "%s", e.msg);
    return d;
}

/* Runs pg on the simulated ANE and on the CPU device and asserts that every
 * output agrees within fp16 tolerance: 2 ulps of fp16 (2^-9 relative) of
 * the largest reference magnitude. */
static void assert_matches_cpu(Prog *pg) {
    MilRtErr e;
    MilRtDevice *ane = sim(), *cpu = mil_rt_device_cpu_new();
    MilRtTensor a[8] = {{0}}, c[8] = {{0}};
    cr_assert_eq(mil_rt_run_once(ane, pg->f, pg->in, a, &e), 0, "ane-sim: %s", e.msg);
    cr_assert_eq(mil_rt_run_once(cpu, pg->f, pg->in, c, &e), 0, "cpu: %s", e.msg);
    for (int i = 0; i < pg->f->noutputs; i++) {
        MilRtDiff df;
        cr_assert_eq(mil_rt_compare_tensors(&a[i], &c[i], &df), 0);
        double ref = 0;
        for (int64_t k = 0; k < mil_rt_numel(&c[i]); k++)
            if (fabs(mil_rt_get_f64(&c[i], k)) > ref) ref = fabs(mil_rt_get_f64(&c[i], k));
        cr_assert(ref > 0, "output %d is all zeros: the comparison would prove nothing", i);
        cr_expect_leq(df.max_abs, 0x1p-9 * ref, "output '%s': max |ane - cpu| = %g (largest |cpu| %g)", df.name,
                      df.max_abs, ref);
        mil_rt_tensor_free(&a[i]);
        mil_rt_tensor_free(&c[i]);
    }
    mil_rt_device_free(ane);
    mil_rt_device_free(cpu);
}

/* Index of the first recorded call at or after `from` that starts with
 * prefix, or -1. */
static int find_call(int from, const char *prefix) {
    for (int i = from; i < mil_ane_sim_ncalls(); i++)
        if (!strncmp(mil_ane_sim_call(i), prefix, strlen(prefix))) return i;
    return -1;
}

static bool recorded(const char *needle) {
    for (int i = 0; i < mil_ane_sim_ncalls(); i++)
        if (strstr(mil_ane_sim_call(i), needle)) return true;
    return false;
}

static void dump_calls(void) {
    for (int i = 0; i < mil_ane_sim_ncalls(); i++) fprintf(stderr, "  %s\n", mil_ane_sim_call(i));
}

/* ----------------------------------------------------------------- tests */

TestSuite(ane, .init = setup, .fini = teardown);

Test(ane, real_route_is_unavailable_on_linux) {
    MilRtErr e;
    MilRtDevice *d = mil_rt_device_new("ane", &e);
    cr_assert_null(d);
    cr_assert(strstr(e.msg, "ANE device: not available on this system (") == e.msg, "%s", e.msg);
}

Test(ane, call_sequence_follows_the_documented_route) {
    Prog pg;
    load(&pg, "ffn.mil", true);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtTensor o[1] = {{0}};
    cr_assert_eq(mil_rt_run_once(d, pg.f, pg.in, o, &e), 0, "%s", e.msg);
    mil_rt_tensor_free(&o[0]);
    mil_rt_device_free(d);
    /* ane-notes §3.2, steps 3-12, in this order */
    static const char *const seq[] = {
        "dlopen(\"/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine\")",
        "+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:] NSData{",
        "+[_ANEInMemoryModel inMemoryModelWithDescriptor:] _ANEInMemoryModelDescriptor",
        "-[_ANEInMemoryModel hexStringIdentifier]",
        "-[_ANEInMemoryModel compileWithQoS:options:error:] 21, NSDictionary{0}, &err",
        "-[_ANEInMemoryModel loadWithQoS:options:error:] 21, NSDictionary{0}, &err",
        "IOSurfaceCreate width=49152 height=1 bytesPerElement=1 bytesPerRow=49152 allocSize=49152 pixelFormat=0",
        "IOSurfaceCreate width=49152",
        "+[_ANEIOSurfaceObject objectWithIOSurface:] IOSurface{49152 bytes}",
        "+[_ANEIOSurfaceObject objectWithIOSurface:] IOSurface{49152 bytes}",
        "+[_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:] "
        "NSArray[1], NSArray[1], NSArray[1], NSArray[1], nil, nil, @0",
        "-[_ANEInMemoryModel evaluateWithQoS:options:request:error:] 21, NSDictionary{0}, _ANERequest, &err",
        "-[_ANEInMemoryModel unloadWithQoS:error:] 21, &err",
    };
    int at = 0;
    for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
        int k = find_call(at, seq[i]);
        if (k < 0) dump_calls();
        cr_assert_geq(k, 0, "step %zu not found after call %d: %s", i, at, seq[i]);
        at = k + 1;
    }
    /* the weights dictionary holds one blob file; the text is NSData */
    cr_assert(recorded("NSData{") && recorded(", NSDictionary{1}, nil"));
    cr_assert_eq(mil_ane_sim_violations(), 0);
    cr_assert_eq(mil_ane_sim_live_objects(), 0, "the device leaked objects of the double");
    unload_prog(&pg);
}

Test(ane, strict_programs_match_the_cpu_device) {
    static const char *const progs[] = {"ffn.mil", "dynamic.mil", "attention.mil", "ext.mil"};
    for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
        Prog pg;
        load(&pg, progs[i], true);
        assert_matches_cpu(&pg);
        cr_assert_eq(mil_ane_sim_violations(), 0, "%s", progs[i]);
        unload_prog(&pg);
    }
}

Test(ane, conv_bias_is_split_into_an_add) {
    Prog pg;
    load(&pg, "conv_bias.mil", false);
    assert_matches_cpu(&pg);
    const char *mil = mil_ane_sim_last_mil(NULL);
    cr_assert(mil && !strstr(mil, "conv(bias ="), "conv bias= reached the compiler");
    cr_assert(strstr(mil, "f = add(x = f_nobias, y = f_bias)"), "%s", mil);
    unload_prog(&pg);
}

/* The rendered text parses, verifies and passes the strict legality pass. */
Test(ane, rendered_mil_reparses_and_passes_strict) {
    static const char *const progs[] = {"ffn.mil", "dynamic.mil", "attention.mil", "ext.mil"};
    for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
        Prog pg;
        load(&pg, progs[i], true);
        assert_matches_cpu(&pg);
        size_t len;
        const char *mil = mil_ane_sim_last_mil(&len);
        cr_assert(mil);
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = mil_parse("model.mil", mil, len, NULL, &d);
        cr_assert(p && d.nerrors == 0, "%s: rendered MIL does not parse", progs[i]);
        cr_assert_eq(mil_verify(p, &d), 0);
        MilPassOptions po;
        mil_pass_options_init(&po);
        po.target = MIL_TARGET_ANE;
        po.strict = true;
        char m[1024] = "";
        int rc = mil_pass_legality(p, &po, &d);
        if (d.n) mil_diag_format(&d, 0, m, sizeof m);
        cr_assert(rc == 0 && d.nerrors == 0, "%s: %s\n%s", progs[i], m, mil);
        mil_program_free(p);
        mil_diag_free(&d);
        unload_prog(&pg);
    }
}

/* Every BLOBFILE of the text names the dictionary's key and an offset of a
 * record of the constant's dtype and size holding the program's data. */
Test(ane, weight_dictionary_matches_the_text) {
    Prog pg;
    load(&pg, "ffn.mil", true);
    assert_matches_cpu(&pg);
    size_t len, wlen;
    const char *mil = mil_ane_sim_last_mil(&len), *key;
    const void *w = mil_ane_sim_last_weights(&key, &wlen);
    cr_assert(w && key);
    cr_assert_str_eq(key, "@model_path/weights/weight.bin");
    const char *wpath = tu_path(tmp, "sent.bin");
    tu_write_file(wpath, w, wlen);
    MilRtErr e;
    MilRtBlobFile *bf = mil_rt_blob_open(wpath, &e);
    cr_assert(bf, "%s", e.msg);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("model.mil", mil, len, NULL, &d);
    cr_assert(p);
    int nblobs = 0;
    for (MilOp *op = p->funcs[0]->body.first; op; op = op->next) {
        const MilAttr *val = op->kind == MIL_OP_CONST ? mil_op_attr(op, "val") : NULL;
        if (!val || val->val->kind != MIL_CONST_BLOB) continue;
        const MilConst *c = val->val;
        cr_assert_str_eq(c->blob_path, key);
        MilRtBlobInfo bi;
        cr_assert_eq(mil_rt_blob_info(bf, c->blob_offset, &bi, &e), 0, "%s", e.msg);
        cr_assert_eq(bi.dtype, c->type->dtype);
        int64_t n = 1;
        for (int k = 0; k < c->type->rank; k++) n *= c->type->dims[k];
        cr_assert_eq(bi.size, (uint64_t)n * mil_rt_dtype_size(bi.dtype));
        /* the data is the program's constant of that name */
        int id = mil_rt_func_find_value(pg.f, op->results[0]->name);
        cr_assert_geq(id, 0, "no constant '%s' in the program", op->results[0]->name);
        cr_assert_eq(memcmp(bi.data, pg.f->values[id].data, bi.size), 0);
        nblobs++;
    }
    cr_assert_geq(nblobs, 2, "the conv weights should be BLOBFILE constants");
    mil_rt_blob_close(bf);
    mil_program_free(p);
    mil_diag_free(&d);
    unload_prog(&pg);
}

Test(ane, second_prepare_hits_the_compile_cache) {
    Prog pg;
    load(&pg, "ffn.mil", true);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtPlan *a = mil_rt_prepare(d, pg.f, pg.in, &e);
    cr_assert(a, "%s", e.msg);
    MilRtPlan *b = mil_rt_prepare(d, pg.f, pg.in, &e);
    cr_assert(b, "%s", e.msg);
    MilRtAneStats st;
    cr_assert_eq(mil_rt_ane_stats(d, &st), 0);
    cr_assert_eq(st.compiles, 1);
    cr_assert_eq(st.cache_hits, 1);
    int ncompile = 0;
    for (int i = 0; i < mil_ane_sim_ncalls(); i++) ncompile += strstr(mil_ane_sim_call(i), "compileWithQoS") != NULL;
    cr_assert_eq(ncompile, 1);
    MilRtTensor o[1];
    cr_assert_eq(mil_rt_plan_run(b, pg.in, o, &e), 0, "%s", e.msg);
    mil_rt_plan_free(a);
    mil_rt_plan_free(b);
    mil_rt_device_free(d);
    cr_assert_eq(mil_rt_ane_stats(mil_rt_device_cpu_new(), &st), -1);
    unload_prog(&pg);
}

Test(ane, compile_budget_exhaustion_says_what_to_do) {
    Prog a, b;
    load(&a, "ffn.mil", true);
    load(&b, "dynamic.mil", true);
    MilRtDevice *d = sim();
    cr_assert_eq(mil_rt_ane_set_compile_budget(d, 1), 0);
    MilRtErr e;
    MilRtPlan *pa = mil_rt_prepare(d, a.f, a.in, &e);
    cr_assert(pa, "%s", e.msg);
    cr_assert_null(mil_rt_prepare(d, b.f, b.in, &e));
    cr_assert(strstr(e.msg, "ANE device: compile budget exhausted: 1 compiles in this process (budget 1;"), "%s", e.msg);
    cr_assert(strstr(e.msg, "--restart-every"), "%s", e.msg);
    MilRtAneStats st;
    mil_rt_ane_stats(d, &st);
    cr_assert_eq(st.budget, 1);
    cr_assert_eq(st.process_compiles, 1);
    mil_rt_plan_free(pa);
    mil_rt_device_free(d);
    unload_prog(&a);
    unload_prog(&b);
}

Test(ane, budget_from_the_environment) {
    setenv("MILC_ANE_COMPILE_BUDGET", "3", 1);
    MilRtDevice *d = sim();
    MilRtAneStats st;
    mil_rt_ane_stats(d, &st);
    cr_assert_eq(st.budget, 3);
    mil_rt_device_free(d);
    setenv("MILC_ANE_COMPILE_BUDGET", "lots", 1);
    MilRtErr e;
    cr_assert_null(mil_ane_sim_device_new(&e));
    cr_assert_str_eq(e.msg, "MILC_ANE_COMPILE_BUDGET: expected a positive integer, got 'lots'");
    unsetenv("MILC_ANE_COMPILE_BUDGET");
}

/* The double fails compiles beyond the route's per-process limit like the
 * real route does; the device reports the step and the NSError text. */
Test(ane, route_compile_limit_is_reported_as_a_compile_error) {
    Prog a, b;
    load(&a, "ffn.mil", true);
    load(&b, "dynamic.mil", true);
    mil_ane_sim_set_compile_limit(1);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtPlan *pa = mil_rt_prepare(d, a.f, a.in, &e);
    cr_assert(pa, "%s", e.msg);
    cr_assert_null(mil_rt_prepare(d, b.f, b.in, &e));
    cr_assert_str_eq(e.msg, "ANE device: compile: compile failed: 2 compiles in this process exceed the in-memory "
                            "route's limit (~1)");
    mil_rt_plan_free(pa);
    mil_rt_device_free(d);
    unload_prog(&a);
    unload_prog(&b);
}

Test(ane, free_unloads_and_removes_the_temp_directory) {
    Prog pg;
    load(&pg, "ffn.mil", true);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtPlan *p = mil_rt_prepare(d, pg.f, pg.in, &e);
    cr_assert(p, "%s", e.msg);
    int h = find_call(0, "-[_ANEInMemoryModel hexStringIdentifier] -> @\"");
    cr_assert_geq(h, 0);
    char hex[64];
    cr_assert_eq(sscanf(strstr(mil_ane_sim_call(h), "@\"") + 2, "%63[0-9A-F]", hex), 1);
    struct stat st;
    cr_assert_eq(stat(tu_path(tmp, tu_fmt("%s/net.plist", hex)), &st), 0, "the compiler's products are missing");
    cr_assert_eq(stat(tu_path(tmp, tu_fmt("%s/weights/weight.bin", hex)), &st), 0);
    cr_assert_eq(find_call(0, "-[_ANEInMemoryModel unloadWithQoS:error:]"), -1);
    mil_rt_plan_free(p);
    mil_rt_device_free(d);
    cr_assert_geq(find_call(0, "-[_ANEInMemoryModel unloadWithQoS:error:]"), 0);
    cr_assert_neq(stat(tu_path(tmp, hex), &st), 0, "temp directory left behind");
    cr_assert_eq(mil_ane_sim_live_objects(), 0);
    unload_prog(&pg);
}

Test(ane, fp32_caller_tensors_are_converted) {
    Prog pg;
    load(&pg, "ffn.mil", true);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtTensor in32 = {0};
    cr_assert_eq(mil_rt_tensor_convert(&in32, MIL_DT_FP32, &pg.in[0], &e), 0);
    MilRtPlan *p16 = mil_rt_prepare(d, pg.f, pg.in, &e), *p32 = mil_rt_prepare(d, pg.f, &in32, &e);
    cr_assert(p16 && p32, "%s", e.msg);
    MilRtTensor a[1], b[1];
    cr_assert_eq(mil_rt_plan_run(p16, pg.in, a, &e), 0, "%s", e.msg);
    MilRtTensor keep;
    mil_rt_tensor_copy(&keep, &a[0], &e);
    cr_assert_eq(mil_rt_plan_run(p32, &in32, b, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(keep.data, b[0].data, mil_rt_nbytes(&keep)), 0);
    /* int32 is not something a surface holds */
    MilRtTensor bad = pg.in[0];
    bad.dtype = MIL_DT_INT32;
    cr_assert_null(mil_rt_prepare(d, pg.f, &bad, &e));
    cr_assert_str_eq(e.msg, "ANE device: input 'x': expected fp16 [1, 64, 1, 384] (fp16 or fp32), got int32 [1, 64, 1, 384]");
    mil_rt_tensor_free(&keep);
    mil_rt_tensor_free(&in32);
    mil_rt_plan_free(p16);
    mil_rt_plan_free(p32);
    mil_rt_device_free(d);
    unload_prog(&pg);
}

/* ------------------------------------------- device-side refusals */

static const char *device_refusal(const char *name) {
    static char msg[1024];
    Prog pg;
    load(&pg, name, false);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtPlan *p = mil_rt_prepare(d, pg.f, pg.in, &e);
    cr_assert_null(p, "%s was accepted", name);
    snprintf(msg, sizeof msg, "%s", e.msg);
    cr_assert_eq(find_call(0, "-[_ANEInMemoryModel compileWithQoS"), -1, "refused only after compiling");
    mil_rt_device_free(d);
    unload_prog(&pg);
    return msg;
}

Test(ane, device_refuses_unexpanded_extension_ops) {
    cr_assert_str_eq(device_refusal("ext.mil"),
                     "ext.mil:7:47: error: op 'rms_norm' (ANE device): milc extension op; compile for an ANE target (milc "
                     "--target=ane) so that it is expanded into standard MIL");
}

/* ------------------------------------ the double, driven directly */

typedef AneId (*MsgId)(AneId, AneSel);
typedef AneId (*MsgIdId)(AneId, AneSel, AneId);
typedef AneId (*MsgDesc)(AneId, AneSel, AneId, AneId, AneId);
typedef AneBool (*MsgQoSOpt)(AneId, AneSel, unsigned, AneId, AneId *);

static const AneApi *A;

static AneId send_desc(AneCFType text, AneCFType weights) {
    return ((MsgDesc)A->msg_send)(A->get_class("_ANEInMemoryModelDescriptor"),
                                  A->sel("modelWithMILText:weights:optionsPlist:"), (AneId)text, (AneId)weights, NULL);
}

static AneCFType empty_dict(void) { return A->dict_create(NULL, NULL, NULL, 0, NULL, NULL); }

/* Compiles MIL text through the double as a caller would (temp directory
 * made unless skip_dir); returns the compile result and the NSError text. */
static bool sim_compile(const char *mil, AneCFType weights, bool skip_dir, char *err, size_t size, AneId *model_out) {
    A = mil_ane_sim_api();
    void *pool = A->pool_push();
    AneCFType text = A->data_create(NULL, (const uint8_t *)mil, (long)strlen(mil));
    AneId desc = send_desc(text, weights);
    cr_assert(desc);
    AneId model = ((MsgIdId)A->msg_send)(A->get_class("_ANEInMemoryModel"), A->sel("inMemoryModelWithDescriptor:"), desc);
    char hex[64];
    A->string_get(((MsgId)A->msg_send)(model, A->sel("hexStringIdentifier")), hex, sizeof hex, ANE_CF_STRING_UTF8);
    if (!skip_dir) {
        mkdir(tu_path(tmp, hex), 0777);
        tu_write_text(tu_path(tmp, tu_fmt("%s/model.mil", hex)), mil);
    }
    AneId e = NULL;
    AneCFType opts = empty_dict();
    bool ok = ((MsgQoSOpt)A->msg_send)(model, A->sel("compileWithQoS:options:error:"), 21, (AneId)opts, &e);
    err[0] = 0;
    if (e) A->string_get(((MsgId)A->msg_send)(e, A->sel("localizedDescription")), err, (long)size, ANE_CF_STRING_UTF8);
    if (model_out) {
        ((MsgId)A->msg_send)(model, A->sel("retain"));
        *model_out = model;
    }
    A->release(opts);
    A->release(text);
    A->pool_pop(pool);
    return ok;
}

#define HEAD "program(1.3)\n{\n    func main<ios18>("
#define IO1 "tensor<fp16, [1, 64, 1, 384]> x"

static void assert_compile_rejects(const char *mil, const char *want) {
    char err[1024];
    A = mil_ane_sim_api();
    AneCFType w = empty_dict();
    bool ok = sim_compile(mil, w, false, err, sizeof err, NULL);
    mil_ane_sim_api()->release(w);
    cr_assert(!ok, "accepted: %s", mil);
    cr_assert(strstr(err, want), "error: %s\nwanted: %s", err, want);
    cr_assert_geq(mil_ane_sim_violations(), 1);
}

Test(ane, double_accepts_a_plain_program) {
    char err[1024];
    A = mil_ane_sim_api();
    AneCFType w = empty_dict();
    bool ok = sim_compile(HEAD IO1 ") {\n            tensor<fp16, [1, 64, 1, 384]> y = relu(x = x)[name = string(\"y\")];\n"
                              "    } -> (y);\n}\n", w, false, err, sizeof err, NULL);
    A->release(w);
    cr_assert(ok, "%s", err);
    cr_assert_eq(mil_ane_sim_violations(), 0);
}

Test(ane, double_rejects_nsstring_mil_text) {
    A = mil_ane_sim_api();
    void *pool = A->pool_push();
    AneCFType s = A->string_create(NULL, "program(1.3)", ANE_CF_STRING_UTF8), w = empty_dict();
    cr_assert_null(send_desc(s, w));
    cr_assert(recorded("!! modelWithMILText: the MIL text must be NSData holding UTF-8 (got NSString)"));
    A->release(s);
    A->release(w);
    A->pool_pop(pool);
}

Test(ane, double_rejects_nil_weights) {
    char err[1024];
    cr_assert(!sim_compile(HEAD IO1 ") {\n            tensor<fp16, [1, 64, 1, 384]> y = relu(x = x)[name = string(\"y\")];\n"
                               "    } -> (y);\n}\n", NULL, false, err, sizeof err, NULL));
    cr_assert(strstr(err, "compile failed: the weights dictionary is nil (pass an empty dictionary"), "%s", err);
}

Test(ane, double_rejects_a_missing_temp_directory) {
    char err[1024];
    A = mil_ane_sim_api();
    AneCFType w = empty_dict();
    cr_assert(!sim_compile(HEAD IO1 ") {\n            tensor<fp16, [1, 64, 1, 384]> y = relu(x = x)[name = string(\"y\")];\n"
                               "    } -> (y);\n}\n", w, true, err, sizeof err, NULL));
    A->release(w);
    cr_assert(strstr(err, "does not exist or is not writable (create NSTemporaryDirectory()/<hexStringIdentifier>/ "
                          "before compiling)"), "%s", err);
}

Test(ane, double_rejects_declaration_order_binding) {
    assert_compile_rejects(HEAD "tensor<fp16, [1, 64, 1, 384]> b, tensor<fp16, [1, 64, 1, 384]> a) {\n"
                           "            tensor<fp16, [1, 64, 1, 384]> y = add(x = a, y = b)[name = string(\"y\")];\n"
                           "    } -> (y);\n}\n",
                           "inputs are bound alphabetically by MIL name, but 'b' is declared before 'a'");
    assert_compile_rejects(HEAD IO1 ") {\n"
                           "            tensor<fp16, [1, 64, 1, 384]> y = relu(x = x)[name = string(\"y\")];\n"
                           "            tensor<fp16, [1, 64, 1, 384]> a = relu(x = y)[name = string(\"a\")];\n"
                           "    } -> (y, a);\n}\n",
                           "outputs are bound alphabetically by MIL name, but 'y' is listed before 'a'");
}

Test(ane, double_rejects_conv_bias) {
    assert_compile_rejects(
        HEAD "tensor<fp16, [1, 2, 1, 8]> x) {\n"
        "            tensor<fp16, [2, 2, 1, 1]> w = const()[name = string(\"w\"), val = tensor<fp16, [2, 2, 1, 1]>([[[[0x1p+0]], [[0x0p+0]]], [[[0x0p+0]], [[0x1p+0]]]])];\n"
        "            tensor<fp16, [2]> b = const()[name = string(\"b\"), val = tensor<fp16, [2]>([0x1p-1, 0x1p-1])];\n"
        "            tensor<fp16, [1, 2, 1, 8]> y = conv(bias = b, pad_type = string(\"valid\"), weight = w, x = x)[name = string(\"y\")];\n"
        "    } -> (y);\n}\n",
        "model.mil:6:44: op 'conv' with bias= is rejected by the in-memory route");
}

Test(ane, double_rejects_unnamed_transpose_flags) {
    assert_compile_rejects(
        HEAD IO1 ") {\n"
        "            tensor<fp16, [1, 64, 384, 1]> t = reshape(shape = tensor<int32, [4]>([1, 64, 384, 1]), x = x)[name = string(\"t\")];\n"
        "            tensor<fp16, [1, 64, 384, 384]> m = matmul(transpose_x = bool(false), transpose_y = bool(true), x = t, y = t)[name = string(\"m\")];\n"
        "            tensor<fp16, [1, 64, 1, 384]> y = reduce_sum(axes = tensor<int32, [1]>([2]), keep_dims = bool(true), x = m)[name = string(\"y\")];\n"
        "    } -> (y);\n}\n",
        "op 'matmul' needs transpose_x and transpose_y as named const ops");
}

Test(ane, double_rejects_a_masked_sdpa) {
    assert_compile_rejects(
        HEAD "tensor<fp16, [1, 6, 64, 64]> k, tensor<fp16, [1, 6, 64, 64]> m, tensor<fp16, [1, 6, 64, 64]> q, tensor<fp16, [1, 6, 64, 64]> v) {\n"
        "            tensor<fp16, [1, 6, 64, 64]> y = scaled_dot_product_attention(attn_mask = m, key = k, query = q, value = v)[name = string(\"y\")];\n"
        "    } -> (y);\n}\n",
        "op 'scaled_dot_product_attention' with attn_mask is not supported (the mask would be ignored)");
}

Test(ane, double_rejects_ops_the_route_refuses) {
    assert_compile_rejects(HEAD IO1 ") {\n"
                           "            tensor<fp16, [1, 64, 1, 384]> y = gelu(x = x)[name = string(\"y\")];\n"
                           "    } -> (y);\n}\n",
                           "op 'gelu' is rejected by the in-memory route");
    assert_compile_rejects(HEAD IO1 ") {\n"
                           "            tensor<fp16, [1, 64, 1, 384]> y = sinh(x = x)[name = string(\"y\")];\n"
                           "    } -> (y);\n}\n",
                           "op 'sinh' is not supported by the ANE compiler");
    assert_compile_rejects(HEAD IO1 ") {\n"
                           "            tensor<fp16, [1, 64, 1, 384]> y = rms_norm(axes = tensor<int32, [1]>([1]), x = x)[name = string(\"y\")];\n"
                           "    } -> (y);\n}\n",
                           "op 'rms_norm' is not in Apple's opset");
}

Test(ane, double_rejects_a_compile_beyond_its_limit) {
    mil_ane_sim_set_compile_limit(0);
    assert_compile_rejects(HEAD IO1 ") {\n            tensor<fp16, [1, 64, 1, 384]> y = relu(x = x)[name = string(\"y\")];\n"
                           "    } -> (y);\n}\n",
                           "compile failed: 1 compiles in this process exceed the in-memory route's limit (~0)");
}

/* Evaluates a compiled relu model with surfaces of the given sizes. */
static void eval_with(size_t in_bytes, size_t out_bytes, const char *want) {
    char err[1024];
    AneId model;
    A = mil_ane_sim_api();
    AneCFType w = empty_dict();
    cr_assert(sim_compile(HEAD IO1 ") {\n            tensor<fp16, [1, 64, 1, 384]> y = relu(x = x)[name = string(\"y\")];\n"
                              "    } -> (y);\n}\n", w, false, err, sizeof err, &model), "%s", err);
    A->release(w);
    void *pool = A->pool_push();
    AneId e = NULL;
    AneCFType opts = empty_dict();
    cr_assert(((MsgQoSOpt)A->msg_send)(model, A->sel("loadWithQoS:options:error:"), 21, (AneId)opts, &e));
    AneCFType surf[2];
    size_t bytes[2] = {in_bytes, out_bytes};
    for (int i = 0; i < 2; i++) {
        int64_t v[6] = {(int64_t)bytes[i], 1, 1, (int64_t)bytes[i], (int64_t)bytes[i], 0};
        const void *keys[6] = {*A->k_width, *A->k_height, *A->k_bytes_per_element, *A->k_bytes_per_row,
                               *A->k_alloc_size, *A->k_pixel_format};
        AneCFType nums[6];
        for (int k = 0; k < 6; k++) nums[k] = A->number_create(NULL, ANE_CF_NUMBER_SINT64, &v[k]);
        AneCFType props = A->dict_create(NULL, keys, (const void **)nums, 6, NULL, NULL);
        surf[i] = A->surface_create(props);
        cr_assert(surf[i]);
        A->release(props);
        for (int k = 0; k < 6; k++) A->release(nums[k]);
    }
    typedef AneId (*MsgCF)(AneId, AneSel, AneCFType);
    typedef AneId (*MsgReq)(AneId, AneSel, AneId, AneId, AneId, AneId, AneId, AneId, AneId);
    typedef AneBool (*MsgEval)(AneId, AneSel, unsigned, AneId, AneId, AneId *);
    int64_t zero = 0;
    AneCFType z = A->number_create(NULL, ANE_CF_NUMBER_SINT64, &zero);
    const void *o0[1] = {((MsgCF)A->msg_send)(A->get_class("_ANEIOSurfaceObject"), A->sel("objectWithIOSurface:"), surf[0])};
    const void *o1[1] = {((MsgCF)A->msg_send)(A->get_class("_ANEIOSurfaceObject"), A->sel("objectWithIOSurface:"), surf[1])};
    const void *ix[1] = {z};
    AneCFType ins = A->array_create(NULL, o0, 1, NULL), outs = A->array_create(NULL, o1, 1, NULL),
              idx = A->array_create(NULL, ix, 1, NULL);
    AneId req = ((MsgReq)A->msg_send)(A->get_class("_ANERequest"),
                                      A->sel("requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:"
                                             "perfStats:procedureIndex:"),
                                      (AneId)ins, (AneId)idx, (AneId)outs, (AneId)idx, NULL, NULL, (AneId)z);
    cr_assert(req);
    bool ok = ((MsgEval)A->msg_send)(model, A->sel("evaluateWithQoS:options:request:error:"), 21, (AneId)opts, req, &e);
    err[0] = 0;
    if (e) A->string_get(((MsgId)A->msg_send)(e, A->sel("localizedDescription")), err, sizeof err, ANE_CF_STRING_UTF8);
    if (want) {
        cr_assert(!ok);
        cr_assert(strstr(err, want), "%s", err);
    } else {
        cr_assert(ok, "%s", err);
    }
    A->release(ins);
    A->release(outs);
    A->release(idx);
    A->release(z);
    A->release(opts);
    A->release(surf[0]);
    A->release(surf[1]);
    ((MsgId)A->msg_send)(model, A->sel("release"));
    A->pool_pop(pool);
    cr_assert_eq(mil_ane_sim_live_objects(), 0);
}

Test(ane, double_evaluates_uniform_surfaces) { eval_with(49152, 49152, NULL); }

Test(ane, double_rejects_non_uniform_surfaces) {
    eval_with(49152, 65536, "evaluate failed: the surfaces of one request must have one allocation size (got 49152 "
                            "and 65536 bytes");
}

Test(ane, double_rejects_surfaces_below_the_minimum) {
    eval_with(16384, 16384, "evaluate failed: surface of 16384 bytes is below the minimum of 49152 bytes");
}

Test(ane, double_rejects_flat_surface_violations) {
    A = mil_ane_sim_api();
    int64_t v[6] = {49152, 2, 1, 49152, 49152, 0};
    const void *keys[6] = {*A->k_width, *A->k_height, *A->k_bytes_per_element, *A->k_bytes_per_row, *A->k_alloc_size,
                           *A->k_pixel_format};
    AneCFType nums[6];
    for (int k = 0; k < 6; k++) nums[k] = A->number_create(NULL, ANE_CF_NUMBER_SINT64, &v[k]);
    AneCFType props = A->dict_create(NULL, keys, (const void **)nums, 6, NULL, NULL);
    cr_assert_null(A->surface_create(props));
    cr_assert(recorded("!! IOSurfaceCreate: the route's surfaces are flat"));
    A->release(props);
    for (int k = 0; k < 6; k++) A->release(nums[k]);
}

/* ------------------------------------------------------------ mil-run */

Test(ane, mil_run_device_ane_sim_and_ane) {
    const char *ffn = tu_src("test/ane/data/ffn.mil");
    char *cpu = NULL;
    cr_assert_eq(tu_runf(&out_, &err_, tu_tool("mil-run"), " --random-weights 3 --random-inputs 1 %s", ffn), 0, "%s", err_);
    cpu = strdup(out_);
    cr_assert_eq(tu_runf(&out_, &err_, tu_tool("mil-run"), " --device ane-sim --random-weights 3 --random-inputs 1 %s", ffn),
                 0, "%s", err_);
    cr_assert_str_eq(out_, cpu);
    free(cpu);
    cr_assert_eq(tu_runf(&out_, &err_, tu_tool("mil-run"), " --device ane --random-weights 3 --random-inputs 1 %s", ffn), 1);
    cr_assert(strstr(err_, "mil-run: error: ANE device: not available on this system ("), "%s", err_);
    /* a .mil with an extension op: mil-run expands it for the ANE devices */
    cr_assert_eq(tu_runf(&out_, &err_, tu_tool("mil-run"), " --device ane-sim --random-inputs 1 %s",
                         tu_src("test/ane/data/ext.mil")), 0, "%s", err_);
    cr_assert(strstr(out_, "y: fp16 [1, 64, 1, 384] min="), "%s", out_);
    cr_assert_eq(tu_runf(&out_, &err_, tu_tool("mil-run"), " --device tpu %s", ffn), 2);
    cr_assert(strstr(err_, "unknown device 'tpu' (available: cpu, ane, ane-sim)"), "%s", err_);
}

/* mil_rt_plan_run_into writes the outputs into the caller's buffers. */
Test(ane, run_into_fills_caller_buffers) {
    Prog pg;
    load(&pg, "dynamic.mil", true);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtPlan *p = mil_rt_prepare(d, pg.f, pg.in, &e);
    cr_assert(p, "%s", e.msg);
    MilRtTensor plain[2], mine[2];
    cr_assert_eq(mil_rt_plan_run(p, pg.in, plain, &e), 0, "%s", e.msg);
    for (int i = 0; i < 2; i++) {
        mil_rt_value_tensor(&pg.f->values[pg.f->outputs[i]], &mine[i]);
        mine[i].data = NULL;
        cr_assert_eq(mil_rt_tensor_alloc(&mine[i], &e), 0);
    }
    void *want0 = mine[0].data;
    cr_assert_eq(mil_rt_plan_run_into(p, pg.in, mine, &e), 0, "%s", e.msg);
    cr_assert_eq(mine[0].data, want0);
    for (int i = 0; i < 2; i++) cr_assert_eq(memcmp(mine[i].data, plain[i].data, mil_rt_nbytes(&plain[i])), 0);
    MilRtTensor wrong = mine[1];
    wrong.dims[1] = 3;
    MilRtTensor outs[2] = {mine[0], wrong};
    cr_assert_eq(mil_rt_plan_run_into(p, pg.in, outs, &e), -1);
    cr_assert(strstr(e.msg, "output 'a_diff': the plan gives fp16 [1, 64, 1, 384], the caller's buffer is fp16 [1, 3, 1, 384]"),
              "%s", e.msg);
    mil_rt_tensor_free(&mine[0]);
    mil_rt_tensor_free(&mine[1]);
    mil_rt_plan_free(p);
    mil_rt_device_free(d);
    unload_prog(&pg);
}

/* Every real corpus program: the device either refuses it at prepare with
 * a reason (never a crash, never a compile it cannot pass) or runs it
 * through the double in agreement with the CPU device. */
Test(ane, corpus_programs_are_refused_with_a_reason_or_match_the_cpu) {
    const char *corpus = tu_corpus_dir();
    if (!corpus) return;
    static const char *const files[] = {
        "ane-linux-experiments__fixtures__h14-anec__add-scalar.mil", "coremltools__ModelRunner__add_model.mil",
        "mlmodelc-export__fixtures__neg-0d-scalar.mil", "mlmodelc-export__pipeline__cast__model0.mil",
        "mlmodelc-export__pipeline__weighted__model0.mil", "mlx-omarchy__probes__softmax-8375375.mil",
        "FluidAudio__OptimizationModels__Argmax__b1661f0.mil", "FluidAudio__OptimizationModels__TransposeEncoder.mil",
        "FluidAudio__ParakeetEOU_1280ms__decoder.mil", "mlmodelc-export__pipeline__indexed__model1.mil"};
    int ran = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        mil_ane_sim_reset();
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = mil_parse_file(tu_path(corpus, files[i]), NULL, &d);
        cr_assert(p && d.nerrors == 0, "%s", files[i]);
        const char *dir = tu_path(tmp, tu_fmt("m%zu", i));
        mkdir(dir, 0777);
        MilSynthOptions so = {.model_dir = dir, .link_dir = corpus, .seed = 1};
        cr_assert_geq(mil_synth_weights_opt(p, &so, &d), 0, "%s", files[i]);
        MilLowerOptions lo = {.model_dir = dir, .file = files[i]};
        Prog pg = {.rp = mil_lower(p, &lo, &d)};
        cr_assert(pg.rp, "%s", files[i]);
        pg.f = mil_rt_program_find_func(pg.rp, "main");
        cr_assert(pg.f);
        bool concrete = true;
        uint64_t seed = 3;
        for (int k = 0; k < pg.f->ninputs; k++) {
            mil_rt_value_tensor(&pg.f->values[pg.f->inputs[k]], &pg.in[k]);
            pg.in[k].data = NULL;
            for (int r = 0; r < pg.in[k].rank; r++)
                if (pg.in[k].dims[r] < 0) { concrete = false; pg.in[k].dims[r] = 1; }
            MilRtErr e;
            cr_assert_eq(mil_rt_tensor_alloc(&pg.in[k], &e), 0);
            mil_rt_tensor_fill_random(&pg.in[k], &seed);
        }
        MilRtDevice *dev = sim();
        MilRtErr e;
        MilRtPlan *plan = mil_rt_prepare(dev, pg.f, pg.in, &e);
        if (!plan) {
            cr_assert(strstr(e.msg, "ANE device: ") || strstr(e.msg, "(ANE device)") ||
                          strstr(e.msg, "is not supported by the ane-sim device"),
                      "%s: %s", files[i], e.msg);
            cr_assert_eq(find_call(0, "-[_ANEInMemoryModel compileWithQoS"), -1, "%s", files[i]);
        } else {
            cr_assert(concrete, "%s: a program with ? dims was accepted", files[i]);
            mil_rt_plan_free(plan);
            assert_matches_cpu(&pg);
            ran++;
        }
        cr_assert_eq(mil_ane_sim_violations(), 0, "%s", files[i]);
        mil_rt_device_free(dev);
        unload_prog(&pg);
        mil_program_free(p);
        mil_diag_free(&d);
    }
    cr_assert_geq(ran, 6, "only %d corpus programs ran through the double", ran);
}

/* Failures of the private API become errors naming the step, with the
 * NSError's text; nothing leaks and no temp directory stays behind. */
static const char *prepare_with_failure(const char *step, int times, const char *text, bool *ok) {
    static char msg[1024];
    Prog pg;
    load(&pg, "ffn.mil", true);
    MilRtDevice *d = sim();
    mil_ane_sim_fail(step, times, text);
    MilRtErr e;
    MilRtPlan *p = mil_rt_prepare(d, pg.f, pg.in, &e);
    *ok = p != NULL;
    snprintf(msg, sizeof msg, "%s", p ? "" : e.msg);
    mil_rt_plan_free(p);
    mil_rt_device_free(d);
    unload_prog(&pg);
    cr_assert_eq(mil_ane_sim_live_objects(), 0);
    cr_assert_eq(mil_ane_sim_violations(), 0);
    return msg;
}

Test(ane, api_failures_name_the_step_and_the_nserror) {
    bool ok;
    cr_assert_str_eq(prepare_with_failure("descriptor", 1, NULL, &ok),
                     "ANE device: descriptor: +[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:] "
                     "returned nil");
    cr_assert_str_eq(prepare_with_failure("compile", 1, "ANECompilerService: InvalidMILProgram", &ok),
                     "ANE device: compile: ANECompilerService: InvalidMILProgram");
    cr_assert_str_eq(prepare_with_failure("load", 2, "GetANEFModel: must re-compile", &ok),
                     "ANE device: load: GetANEFModel: must re-compile");
    /* one failed load is retried, as the reference projects do */
    mil_ane_sim_reset();
    prepare_with_failure("load", 1, "busy", &ok);
    cr_assert(ok);
    int loads = 0;
    for (int i = 0; i < mil_ane_sim_ncalls(); i++) loads += strstr(mil_ane_sim_call(i), "-[_ANEInMemoryModel loadWithQoS") != NULL;
    cr_assert_eq(loads, 2);
    /* nothing of the failed compiles and loads stays in the temp directory
     * (only the test's own model directory) */
    cr_assert_eq(tu_runf(&out_, &err_, "ls -A ", "%s", tmp), 0);
    cr_assert_str_eq(out_, "model\n");
}

Test(ane, evaluate_failure_is_reported_and_the_plan_stays_usable) {
    Prog pg;
    load(&pg, "ffn.mil", true);
    MilRtDevice *d = sim();
    MilRtErr e;
    MilRtPlan *p = mil_rt_prepare(d, pg.f, pg.in, &e);
    cr_assert(p, "%s", e.msg);
    MilRtTensor o[1];
    mil_ane_sim_fail("evaluate", 1, "Program Inference error");
    cr_assert_eq(mil_rt_plan_run(p, pg.in, o, &e), -1);
    cr_assert_str_eq(e.msg, "ANE device: evaluate: Program Inference error");
    cr_assert_eq(mil_rt_plan_run(p, pg.in, o, &e), 0, "%s", e.msg);
    mil_rt_plan_free(p);
    mil_rt_device_free(d);
    cr_assert_eq(mil_ane_sim_live_objects(), 0);
    unload_prog(&pg);
}
