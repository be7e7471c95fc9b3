/* test/coreml/test_coreml.c -- Core ML packages (issue 13).
 *
 * Fixtures in test/coreml/data were made by gen_packages.py with coremltools
 * and PyTorch: each NAME.mlpackage comes with its inputs and PyTorch's
 * outputs as .npy; data/MANIFEST lists name, tolerance, inputs, outputs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coreml/coreml.h"
#include "frontend/frontend.h"
#include "testutil.h"

typedef struct Case {
    char name[64];
    double tol;
    char ins[4][32], outs[4][32];
    int nin, nout;
} Case;

static int split(char *s, char dst[4][32]) {
    int n = 0;
    for (char *t = strtok(s, ","); t && n < 4; t = strtok(NULL, ",")) snprintf(dst[n++], 32, "%s", t);
    return n;
}

static int load_cases(Case *cs, int max) {
    char *text = tu_read_file(tu_src("test/coreml/data/MANIFEST"), NULL);
    cr_assert(text, "test/coreml/data/MANIFEST missing");
    char ins[32][256], outs[32][256];
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < max && n < 32; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        if (sscanf(line, "%63s %lf %255s %255s", cs[n].name, &cs[n].tol, ins[n], outs[n]) == 4) n++;
    }
    free(text);
    for (int i = 0; i < n; i++) { /* strtok again: only after the line scan */
        cs[i].nin = split(ins[i], cs[i].ins);
        cs[i].nout = split(outs[i], cs[i].outs);
    }
    cr_assert_gt(n, 10, "MANIFEST has only %d models", n);
    return n;
}

static const char *data(const char *rel) { return tu_src(tu_fmt("test/coreml/data/%s", rel)); }

/* max |a - b| <= tol * max(1, max |b|); a and b as fp32 .npy files. */
static void assert_close(const char *got, const char *want, double tol, const char *what) {
    MilRtTensor a, b, af, bf;
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_read(got, &a, &e), 0, "%s: %s", what, e.msg);
    cr_assert_eq(mil_rt_npy_read(want, &b, &e), 0, "%s: %s", what, e.msg);
    cr_assert_eq(mil_rt_tensor_convert(&af, MIL_DT_FP32, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_tensor_convert(&bf, MIL_DT_FP32, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(af.rank, bf.rank, "%s: rank", what);
    int64_t n = 1;
    for (int i = 0; i < af.rank; i++) {
        cr_assert_eq(af.dims[i], bf.dims[i], "%s: dim %d", what, i);
        n *= af.dims[i];
    }
    const float *x = af.data, *y = bf.data;
    double maxref = 1, maxerr = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(y[i]) > maxref) maxref = fabs(y[i]);
        double d = fabs((double)x[i] - y[i]);
        if (!(d <= maxerr)) maxerr = d;
    }
    cr_assert(maxerr <= tol * maxref, "%s: max error %g > %g", what, maxerr, tol * maxref);
    mil_rt_tensor_free(&a);
    mil_rt_tensor_free(&b);
    mil_rt_tensor_free(&af);
    mil_rt_tensor_free(&bf);
}

static char *tmp, *out, *err;
static void setup(void) { tu_fixture_init(&tmp, &out, &err); }
static void teardown(void) { tu_fixture_fini(&tmp, &out, &err); }

TestSuite(coreml, .init = setup, .fini = teardown);

static const char *input_args(const Case *c) {
    static char buf[2048];
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < c->nin; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, " -i %s=%s", c->ins[i],
                              data(tu_fmt("%s.%s.npy", c->name, c->ins[i])));
    return buf;
}

/* mil-run on every package matches PyTorch. */
Test(coreml, run_matches_pytorch) {
    Case cs[32];
    int n = load_cases(cs, 32);
    for (int i = 0; i < n; i++) {
        const Case *c = &cs[i];
        const char *od = tu_path(tmp, c->name);
        cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "%s -o %s %s", input_args(c), od,
                             data(tu_fmt("%s.mlpackage", c->name))), 0, "%s: %s", c->name, err);
        for (int j = 0; j < c->nout; j++)
            assert_close(tu_path(od, tu_fmt("%s.npy", c->outs[j])), data(tu_fmt("%s.%s.npy", c->name, c->outs[j])),
                         c->tol, tu_fmt("%s/%s", c->name, c->outs[j]));
    }
    /* the second function of the multi-function package */
    const char *od = tu_path(tmp, "half");
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "--function half -i x=%s -o %s %s",
                         data("multifunction.x.npy"), od, data("multifunction.mlpackage")), 0, "%s", err);
    assert_close(tu_path(od, "y.npy"), data("multifunction.half.y.npy"), 1e-4, "multifunction/half");
}

/* --emit=mil text re-parses to the same text, and runs with identical results. */
Test(coreml, emitted_mil_reparses_and_runs_identically) {
    Case cs[32];
    int n = load_cases(cs, 32);
    for (int i = 0; i < n; i++) {
        const Case *c = &cs[i];
        const char *pkg = data(tu_fmt("%s.mlpackage", c->name));
        const char *mil = tu_path(tmp, tu_fmt("%s.mil", c->name));
        cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 --emit=mil -o %s %s", mil, pkg), 0, "%s", err);
        char *text = tu_read_file(mil, NULL);
        cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 --emit=mil %s", mil), 0, "%s", err);
        cr_assert_str_eq(out, text, "%s: the text does not re-print identically", c->name);
        free(text);
        const char *o1 = tu_path(tmp, tu_fmt("%s.pkg", c->name)), *o2 = tu_path(tmp, tu_fmt("%s.txt", c->name));
        const char *in = input_args(c);
        cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "%s -o %s %s", in, o1, pkg), 0, "%s", err);
        cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "%s --weights %s/Data/com.apple.CoreML/weights -o %s %s",
                             in, pkg, o2, mil), 0, "%s", err);
        for (int j = 0; j < c->nout; j++)
            tu_assert_same_file(tu_path(o1, tu_fmt("%s.npy", c->outs[j])), tu_path(o2, tu_fmt("%s.npy", c->outs[j])));
    }
}

/* BLOBFILE offsets blanked out ("offset = uint64(N)"): milc's weight file
 * may lay the blobs out in another order than coremltools did. */
static char *without_offsets(const char *text) {
    char *r = strdup(text), *w = r;
    for (const char *s = text; *s;) {
        const char *k = !strncmp(s, "offset = uint64(", 16) ? s + 16
                        : !strncmp(s, "offset = tensor<uint64, []>(", 28) ? s + 28 : NULL;
        if (!k) {
            *w++ = *s++;
            continue;
        }
        memcpy(w, s, (size_t)(k - s));
        w += k - s;
        *w++ = 'N';
        for (s = k; *s >= '0' && *s <= '9'; s++) {}
    }
    *w = 0;
    return r;
}

/* package -> IR -> package (milc -o X.mlpackage) -> IR prints the same text
 * (up to the blob offsets in the new weight file; the values are checked by
 * running both), and writing it again gives the same bytes. */
Test(coreml, package_roundtrip_is_identical) {
    Case cs[32];
    int n = load_cases(cs, 32);
    for (int i = 0; i < n; i++) {
        const Case *c = &cs[i];
        const char *pkg = data(tu_fmt("%s.mlpackage", c->name));
        const char *p2 = tu_path(tmp, tu_fmt("%s.mlpackage", c->name));
        const char *p3 = tu_path(tmp, tu_fmt("%s_again.mlpackage", c->name));
        cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 --emit=mil %s", pkg), 0, "%s", err);
        char *t1 = without_offsets(out);
        cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 -o %s %s", p2, pkg), 0, "%s", err);
        cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 --emit=mil %s", p2), 0, "%s", err);
        char *t2 = without_offsets(out);
        cr_assert_str_eq(t2, t1, "%s: the rewritten package reads back differently", c->name);
        free(t2);
        const char *o1 = tu_path(tmp, tu_fmt("%s.a", c->name)), *o2 = tu_path(tmp, tu_fmt("%s.b", c->name));
        cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "%s -o %s %s", input_args(c), o1, pkg), 0, "%s", err);
        cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "%s -o %s %s", input_args(c), o2, p2), 0, "%s", err);
        for (int j = 0; j < c->nout; j++)
            tu_assert_same_file(tu_path(o1, tu_fmt("%s.npy", c->outs[j])), tu_path(o2, tu_fmt("%s.npy", c->outs[j])));
        cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 -o %s %s", p3, p2), 0, "%s", err);
        tu_assert_same_file(tu_path(p2, "Data/com.apple.CoreML/model.mlmodel"),
                            tu_path(p3, "Data/com.apple.CoreML/model.mlmodel"));
        tu_assert_same_file(tu_path(p2, "Data/com.apple.CoreML/weights/weight.bin"),
                            tu_path(p3, "Data/com.apple.CoreML/weights/weight.bin"));
        tu_assert_same_file(tu_path(p2, "Manifest.json"), tu_path(p3, "Manifest.json"));
        free(t1);
    }
}

/* The reader builds the IR the text parser builds: printing the package's
 * IR and parsing that text gives a program that prints identically, with
 * the same functions, parameters, op kinds and result types. */
Test(coreml, reader_ir_equals_parser_ir) {
    const char *names[] = {"transformer_fp16", "mlp_enum", "mlp_palettized_ios18", "multifunction"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *a = mil_coreml_read(data(tu_fmt("%s.mlpackage", names[k])), NULL, &d);
        cr_assert(a, "%s: %d errors", names[k], d.nerrors);
        size_t len;
        char *text = mil_print(a, MIL_SPELLING_SAME, &len);
        MilProgram *b = mil_parse("t.mil", text, len, NULL, &d);
        cr_assert(b && d.nerrors == 0);
        cr_assert_str_eq(a->version, b->version);
        cr_assert_eq(a->nfuncs, b->nfuncs);
        for (int f = 0; f < a->nfuncs; f++) {
            MilFunc *fa = a->funcs[f], *fb = b->funcs[f];
            cr_assert_str_eq(fa->name, fb->name);
            cr_assert_str_eq(fa->opset, fb->opset);
            cr_assert_eq(fa->nparams, fb->nparams);
            cr_assert_eq(fa->nvalues, fb->nvalues);
            for (int i = 0; i < fa->nparams; i++) cr_assert(mil_type_equal(fa->params[i]->type, fb->params[i]->type));
            const MilOp *oa = fa->body.first, *ob = fb->body.first;
            for (; oa && ob; oa = oa->next, ob = ob->next) {
                cr_assert_eq(oa->kind, ob->kind);
                cr_assert_eq(oa->nargs, ob->nargs);
                cr_assert_eq(oa->nattrs, ob->nattrs);
                cr_assert_eq(oa->nresults, ob->nresults);
                for (int r = 0; r < oa->nresults; r++)
                    cr_assert(mil_type_equal(oa->results[r]->type, ob->results[r]->type));
            }
            cr_assert(!oa && !ob);
        }
        char *text2 = mil_print(b, MIL_SPELLING_SAME, NULL);
        cr_assert_str_eq(text2, text);
        /* and the in-memory encoder round-trips as well */
        uint8_t *pb;
        size_t pblen;
        cr_assert_eq(mil_coreml_encode(a, NULL, &pb, &pblen, &d), 0);
        MilCoreMLReadOptions ro = {.no_weight_check = true};
        MilProgram *c = mil_coreml_read_model("m.mlmodel", pb, pblen, NULL, &ro, &d);
        cr_assert(c, "%s: re-encoded model does not read", names[k]);
        char *text3 = mil_print(c, MIL_SPELLING_SAME, NULL);
        cr_assert_str_eq(text3, text);
        free(pb);
        free(text);
        free(text2);
        free(text3);
        mil_program_free(a);
        mil_program_free(b);
        mil_program_free(c);
        mil_diag_free(&d);
    }
}

/* Inline values of every dtype (and a tuple argument, a state input, an
 * aggregate program attribute) survive text -> package -> text; a function
 * attribute is dropped with a warning (coremltools refuses them). */
static const char *every_dtype =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"k\", \"v\"}})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp32, [2]> x, state<tensor<fp16, [2]>> s) {\n"
    "            bool c0 = const()[name = string(\"c0\"), val = bool(true)];\n"
    "            tensor<int8, [3]> c1 = const()[name = string(\"c1\"), val = tensor<int8, [3]>([-128, 0, 127])];\n"
    "            tensor<uint8, [2]> c2 = const()[name = string(\"c2\"), val = tensor<uint8, [2]>([0, 255])];\n"
    "            tensor<int16, [2]> c3 = const()[name = string(\"c3\"), val = tensor<int16, [2]>([-32768, 32767])];\n"
    "            tensor<uint16, [2]> c4 = const()[name = string(\"c4\"), val = tensor<uint16, [2]>([0, 65535])];\n"
    "            tensor<int32, [2]> c5 = const()[name = string(\"c5\"), val = tensor<int32, [2]>([-2147483648, 2147483647])];\n"
    "            tensor<uint32, [2]> c6 = const()[name = string(\"c6\"), val = tensor<uint32, [2]>([0, 4294967295])];\n"
    "            tensor<int64, [2]> c7 = const()[name = string(\"c7\"), val = tensor<int64, [2]>([-9223372036854775808, 9223372036854775807])];\n"
    "            tensor<uint64, [1]> c8 = const()[name = string(\"c8\"), val = tensor<uint64, [1]>([18446744073709551615])];\n"
    "            tensor<fp16, [3]> c9 = const()[name = string(\"c9\"), val = tensor<fp16, [3]>([0x1p-24, -inf, nan])];\n"
    "            tensor<fp32, [2]> c10 = const()[name = string(\"c10\"), val = tensor<fp32, [2]>([0x1.fffffep+127, -0x0p+0])];\n"
    "            tensor<fp64, [2]> c11 = const()[name = string(\"c11\"), val = tensor<fp64, [2]>([0x1p-3, 0x1.123456789abcdp+0])];\n"
    "            tensor<bf16, [1]> c12 = const()[name = string(\"c12\"), val = tensor<bf16, [1]>([0x1p+0])];\n"
    "            tensor<string, [2]> c13 = const()[name = string(\"c13\"), val = tensor<string, [2]>([\"a\", \"b c\"])];\n"
    "            tensor<uint4, [3]> c14 = const()[name = string(\"c14\"), val = tensor<uint4, [3]>([0, 7, 15])];\n"
    "            tensor<int4, [2]> c15 = const()[name = string(\"c15\"), val = tensor<int4, [2]>([-8, 7])];\n"
    "            tensor<uint1, [3]> c16 = const()[name = string(\"c16\"), val = tensor<uint1, [3]>([1, 0, 1])];\n"
    "            tensor<uint2, [3]> c17 = const()[name = string(\"c17\"), val = tensor<uint2, [3]>([3, 0, 2])];\n"
    "            tensor<uint3, [3]> c18 = const()[name = string(\"c18\"), val = tensor<uint3, [3]>([7, 1, 5])];\n"
    "            tensor<uint6, [3]> c19 = const()[name = string(\"c19\"), val = tensor<uint6, [3]>([63, 1, 32])];\n"
    "            tensor<bool, [3]> c20 = const()[name = string(\"c20\"), val = tensor<bool, [3]>([true, false, true])];\n"
    "            tensor<fp32, [2]> y = add(x = x, y = tensor<fp32, [2]>([0x1p+0, 0x1p+1]))[name = string(\"y\")];\n"
    "            tensor<fp32, [4]> z = concat(axis = int32(0), interleave = bool(false), values = (x, y))[name = string(\"z\")];\n"
    "            tensor<fp16, [2]> r = read_state(input = s)[name = string(\"r\")];\n"
    "        } -> (z, r);\n"
    "}";

Test(coreml, immediates_of_every_dtype_roundtrip) {
    const char *src = tu_path(tmp, "imm.mil"), *pkg = tu_path(tmp, "imm.mlpackage");
    tu_write_text(src, every_dtype);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 -o %s %s", pkg, src), 0, "%s", err);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 --emit=mil %s", pkg), 0, "%s", err);
    cr_assert_str_eq(out, every_dtype);
    /* with a function attribute */
    char *with = malloc(strlen(every_dtype) + 128);
    const char *brace = strstr(every_dtype, ") {");
    sprintf(with, "%.*s) [note = int32(1)]%s", (int)(brace - every_dtype), every_dtype, brace + 1);
    tu_write_text(src, with);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 -o %s %s", pkg, src), 0, "%s", err);
    cr_assert(strstr(err, "warning: function 'main': attribute 'note' is not written (Core ML models have no "
                          "function attributes)"), "%s", err);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 --emit=mil %s", pkg), 0, "%s", err);
    cr_assert_str_eq(out, every_dtype);
    free(with);
}

/* ------------------------------------------------------------ bad input */

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A copy of a fixture package in tmp. */
static const char *copy_pkg(const char *name) {
    const char *dst = tu_path(tmp, tu_fmt("%s.mlpackage", name));
    tu_run_ok(tu_fmt("rm -rf %s && cp -r %s %s", dst, data(tu_fmt("%s.mlpackage", name)), dst));
    return dst;
}

/* milc on PKG fails with exit 1, a message containing each of the NULL-
 * terminated strings, and writes nothing. */
static void assert_refused(const char *pkg, const char *extra, ...) {
    const char *o = tu_path(tmp, "out.mlpackage");
    int rc = tu_runf(&out, &err, tu_tool("milc"), "%s -o %s %s", extra ? extra : "", o, pkg);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, err);
    cr_assert(!exists(o), "output written by a failed run");
    va_list ap;
    va_start(ap, extra);
    for (const char *s; (s = va_arg(ap, const char *));) cr_assert(strstr(err, s), "expected '%s' in: %s", s, err);
    va_end(ap);
    /* mil-run refuses it the same way */
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "%s --random-inputs 1 %s", extra ? extra : "", pkg), 1,
                 "mil-run: %s", err);
}

Test(coreml, bad_manifest) {
    const char *p = copy_pkg("mlp");
    tu_run_ok(tu_fmt("rm %s/Manifest.json", p));
    assert_refused(p, NULL, "mlp.mlpackage/Manifest.json: error: cannot open: No such file or directory", NULL);
    tu_write_text(tu_path(p, "Manifest.json"), "{\n  \"rootModelIdentifier\": ,\n}\n");
    assert_refused(p, NULL, "mlp.mlpackage/Manifest.json:2:26: error: malformed JSON: expected a value", NULL);
    tu_write_text(tu_path(p, "Manifest.json"), "{\"itemInfoEntries\": {}, \"rootModelIdentifier\": \"abc\"}");
    assert_refused(p, NULL, "Manifest.json: error: rootModelIdentifier \"abc\" is not in itemInfoEntries", NULL);
    tu_write_text(tu_path(p, "Manifest.json"),
                  "{\"itemInfoEntries\": {\"a\": {\"path\": \"../../etc/passwd\"}}, \"rootModelIdentifier\": \"a\"}");
    assert_refused(p, NULL, "path \"../../etc/passwd\" is not a relative path inside Data/", NULL);
}

Test(coreml, truncated_and_mistyped_protobuf) {
    const char *p = copy_pkg("mlp");
    const char *m = tu_path(p, "Data/com.apple.CoreML/model.mlmodel");
    size_t len;
    char *buf = tu_read_file(m, &len);
    tu_write_file(m, buf, len / 2);
    assert_refused(p, NULL, "model.mlmodel: error: malformed protobuf: Model.mlProgram(502): truncated "
                   "length-delimited field at byte 277 (length beyond the end)", NULL);
    /* specificationVersion (field 1, varint) written as a length-delimited field */
    tu_write_file(m, "\x0a\x01\x00", 3);
    assert_refused(p, NULL,
                   "malformed protobuf: Model.specificationVersion(1): wire type 2 (length-delimited) at byte 0, "
                   "expected 0 (varint)", NULL);
    /* a neural-network model */
    tu_write_file(m, "\x08\x04\xa2\x1f\x00", 5);
    assert_refused(p, NULL, "this is a neural-network model (Model.neuralNetwork, field 500), not an ML Program", NULL);
    /* unknown fields are skipped: the original plus field 9999 (varint) reads as the original */
    char *more = malloc(len + 4);
    memcpy(more, buf, len);
    memcpy(more + len, "\xf8\xf0\x04\x07", 4);
    tu_write_file(m, more, len + 4);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "--emit=mil %s", p), 0, "%s", err);
    char *t1 = strdup(out);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "--emit=mil %s", data("mlp.mlpackage")), 0, "%s", err);
    cr_assert_str_eq(t1, out);
    free(t1);
    free(more);
    free(buf);
}

Test(coreml, missing_or_short_weights) {
    const char *p = copy_pkg("mlp");
    const char *w = tu_path(p, "Data/com.apple.CoreML/weights/weight.bin");
    size_t len;
    char *buf = tu_read_file(w, &len);
    tu_write_file(w, buf, 150);
    assert_refused(p, NULL, "model.mlmodel: error: function 'main', op 'l1_weight' (const): attribute 'val': ",
                   "weights/weight.bin: blob metadata offset 256 is beyond the end of the file (150 bytes)", NULL);
    tu_run_ok(tu_fmt("rm %s", w));
    assert_refused(p, NULL, "op 'l1_weight' (const): attribute 'val': ", "weights/weight.bin", NULL);
    free(buf);
}

Test(coreml, unknown_op_error_or_opaque) {
    const char *src = tu_path(tmp, "u.mil");
    tu_write_text(src, "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [4]> x) {\n"
                       "            tensor<fp32, [4]> y = fancy_new_op(x = x, k = int32(3))[name = string(\"f\")];\n"
                       "        } -> (y);\n}\n");
    const char *p = tu_path(tmp, "u.mlpackage");
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "--allow-unknown-ops -O0 -o %s %s", p, src), 0, "%s", err);
    assert_refused(p, NULL, "model.mlmodel: error: function 'main', op 'f' (fancy_new_op): unknown op type "
                            "'fancy_new_op'", NULL);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "--allow-unknown-ops -O0 --emit=mil %s", p), 0, "%s", err);
    cr_assert(strstr(out, "tensor<fp32, [4]> y = fancy_new_op(k = int32(3), x = x)[name = string(\"f\")];"), "%s", out);
}

Test(coreml, undefined_value) {
    /* hand-edit a package through the API: a program whose op reads an
     * undefined name cannot be built by the IR, so write bytes directly:
     * the MLP with its first op's argument renamed. */
    const char *p = copy_pkg("mlp");
    const char *m = tu_path(p, "Data/com.apple.CoreML/model.mlmodel");
    size_t len;
    char *buf = tu_read_file(m, &len);
    char *hit = NULL; /* Argument{Binding{name = "x"}}: bytes 0a 03 0a 01 'x' */
    for (size_t i = 0; !hit && i + 5 <= len; i++)
        if (!memcmp(buf + i, "\x0a\x03\x0a\x01x", 5)) hit = buf + i;
    cr_assert(hit);
    hit[4] = 'q';
    tu_write_file(m, buf, len);
    assert_refused(p, NULL, "argument 'x': use of undefined value 'q'", NULL);
    free(buf);
}

/* The description's RangeDim / EnumeratedShapes limit what mil-run accepts. */
Test(coreml, flexible_shapes_enforced) {
    double v[9 * 16] = {0};
    const char *x9 = tu_path(tmp, "x9.npy");
    tu_write_npy(x9, MIL_DT_FP32, 2, (int64_t[]){9, 16}, v);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "-i x=%s %s", x9, data("mlp_range.mlpackage")), 1);
    cr_assert(strstr(err, "input 'x': dim 0 is 9, outside the allowed range [1, 8]"), "%s", err);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "-i x=%s %s", x9, data("mlp_enum.mlpackage")), 1);
    cr_assert(strstr(err, "input 'x': shape [9, 16] is not one of the enumerated shapes: [1, 16] [3, 16]"), "%s", err);
    /* the default shape is what --random-inputs uses */
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), "--random-inputs 1 --summary %s", data("mlp_range.mlpackage")), 0);
    cr_assert(strstr(out, "var_10: fp32 [2, 8]"), "%s", out);
}

/* A program Core ML cannot describe is refused by the writer: exit 1, nothing written. */
Test(coreml, writer_refuses_what_core_ml_cannot_describe) {
    const char *src = tu_path(tmp, "b.mil"), *pkg = tu_path(tmp, "b.mlpackage");
    tu_write_text(src, "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [4]> x, tensor<fp32, [4]> y) {\n"
                       "            tensor<bool, [4]> c = less(x = x, y = y)[name = string(\"c\")];\n"
                       "        } -> (c);\n}\n");
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 -o %s %s", pkg, src), 1, "%s", err);
    cr_assert(strstr(err, "error: function 'main': output 'c' of type tensor<bool, [4]> cannot be described in a "
                          "Core ML model"), "%s", err);
    cr_assert(!exists(pkg));
    tu_write_text(src, "program(1.0)\n{\n    func main<ios99>(tensor<fp32, [4]> x) {\n        } -> (x);\n}\n");
    cr_assert_eq(tu_runf(&out, &err, tu_tool("milc"), "-O0 -o %s %s", pkg, src), 1, "%s", err);
    cr_assert(strstr(err, "opset 'ios99' has no Core ML name"), "%s", err);
    cr_assert(!exists(pkg));
}
