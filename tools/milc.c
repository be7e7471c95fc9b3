/* tools/milc.c -- the milc compiler driver.
 *
 *   milc [options] INPUT
 *
 * INPUT is a .mil file, a .mlmodelc directory (its model.mil), a Core ML
 * .mlpackage (its protobuf; coreml/) or `-` (stdin).
 * The driver only parses flags, calls the libraries and picks the exit code:
 * 0 success, 1 input errors (diagnostics on stderr), 2 usage errors.
 * Output files are written to a temporary name and renamed, so a failed run
 * never leaves a partial file behind.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "backend/backend.h"
#include "coreml/coreml.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "ir/milbin.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

typedef enum { EMIT_MIL, EMIT_TAPS, EMIT_MILB, EMIT_ANE_MIL, EMIT_GRAD_MAP } EmitKind;

typedef struct Options {
    const char *input;
    const char *output;        /* NULL = stdout */
    EmitKind emit;
    MilSpelling spelling;
    bool check_only;
    bool allow_unknown_ops;
    bool milb_strip, milb_no_debug;   /* --emit=milb --strip / --no-debug */
    MilPassOptions pass;
    bool opt_given;            /* -O or --passes given explicitly */
    bool grad;                 /* --grad[=FUNC] (issue 9) */
    MilGradOptions gopt;
} Options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: milc [options] INPUT\n"
            "\n"
            "INPUT is a .mil file, a .mlmodelc directory, a Core ML .mlpackage, a .milb binary program,\n"
            "or - for stdin.\n"
            "\n"
            "options:\n"
            "  -o FILE                 output file (default: stdout; - = stdout)\n"
            "  --emit=mil              output canonical MIL text (default)\n"
            "  --emit=taps             output the forward-tap channel map (JSON) of --taps\n"
            "  --emit=milb             binary program: -o PROG.milb (+ PROG.weights.bin next to it)\n"
            "    --strip               drop value/op names (inputs and outputs keep theirs) and debug info\n"
            "    --no-debug            drop only the debug info (source line:col per op)\n"
            "  --emit=ane-mil          -o DIR: model.mil for Apple's compiler + weights/weight.bin\n"
            "  -o NAME.mlmodelc        write a complete bundle: model.mil + weights/weight.bin\n"
            "  -o NAME.mlpackage       write a Core ML package (Manifest.json, model.mlmodel protobuf,\n"
            "                          weights/weight.bin) that coremltools loads\n"
            "  --spelling=1.0|1.3|same scalar spelling of the output (default: same as input)\n"
            "  --check                 parse, verify and infer types only; no output\n"
            "  --allow-unknown-ops     keep unknown ops as opaque ops instead of failing\n"
            "  -O0 | -O1 | -O2         optimisation level: -O0 type inference only,\n"
            "                          -O1 (default) + cleanup, -O2 + ANE lowering and fusions\n"
            "  --passes=a,b,c          run exactly these passes\n"
            "  --print-after=PASS|all  print the IR after a pass (stderr)\n"
            "  --verify-each           run the verifier after every pass\n"
            "  --stats                 ops per kind and time per pass (stderr)\n"
            "  --target=cpu|ane|ane-m1|ane-m4\n"
            "  --strict                ANE legality warnings become errors\n"
            "  --taps=v1,v2            export named intermediates as outputs\n"
            "  --pack-taps             pack taps into one [1, sum C, 1, S] output (with --grad: the\n"
            "                          [1, C, 1, S] grad taps, sliced out again in FUNC_bwd)\n"
            "  --grad[=FUNC]           add FUNC_fwd (FUNC + taps) and FUNC_bwd (gradients) for FUNC\n"
            "                          (default main); the passes then run on all functions\n"
            "    --wrt=a,b             inputs to differentiate (default: every floating-point input)\n"
            "    --loss=OUT            scalar output whose cotangent is 1 (default: every output y\n"
            "                          gets a cotangent input d_y)\n"
            "    --recompute=none|cheap  cheap: recompute element-wise / normalisation results in\n"
            "                          the backward instead of tapping them (default none)\n"
            "    --split-weight-grads  weight gradients of matmul/linear/conv go to FUNC_dw\n"
            "  --emit=grad-map         output the wiring of the --grad functions (JSON); without\n"
            "                          --grad, of the grad functions INPUT holds\n"
            "  --help                  this text\n"
            "  --version               print the version\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "milc: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'milc --help'.\n");
    return 2;
}

static bool starts(const char *s, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0) return false;
    *rest = s + n;
    return true;
}

/* Returns -1 to continue, otherwise an exit code. */
static int parse_args(int argc, char **argv, Options *o) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("milc %s\n", MIL_VERSION_STRING);
            return 0;
        } else if (!strcmp(a, "-o")) {
            if (++i >= argc) return usage_error("%s requires an argument", "-o");
            o->output = argv[i];
        } else if (starts(a, "-o", &v) && *v) {
            o->output = v;
        } else if (starts(a, "--emit=", &v)) {
            if (!strcmp(v, "mil")) o->emit = EMIT_MIL;
            else if (!strcmp(v, "taps")) o->emit = EMIT_TAPS;
            else if (!strcmp(v, "milb")) o->emit = EMIT_MILB;
            else if (!strcmp(v, "ane-mil")) o->emit = EMIT_ANE_MIL;
            else if (!strcmp(v, "grad-map")) o->emit = EMIT_GRAD_MAP;
            else return usage_error("unknown --emit kind '%s' (expected mil, taps, milb, ane-mil or grad-map)", v);
        } else if (starts(a, "--spelling=", &v)) {
            if (!strcmp(v, "1.0")) o->spelling = MIL_SPELLING_1_0;
            else if (!strcmp(v, "1.3")) o->spelling = MIL_SPELLING_1_3;
            else if (!strcmp(v, "same")) o->spelling = MIL_SPELLING_SAME;
            else return usage_error("unknown spelling '%s' (expected 1.0, 1.3 or same)", v);
        } else if (!strcmp(a, "--check")) {
            o->check_only = true;
        } else if (!strcmp(a, "--strip")) {
            o->milb_strip = true;
        } else if (!strcmp(a, "--no-debug")) {
            o->milb_no_debug = true;
        } else if (!strcmp(a, "--allow-unknown-ops")) {
            o->allow_unknown_ops = true;
        } else if (!strcmp(a, "-O0") || !strcmp(a, "-O1") || !strcmp(a, "-O2")) {
            o->pass.opt_level = a[2] - '0';
            o->opt_given = true;
        } else if (starts(a, "--passes=", &v)) {
            /* every name must be a known pass: a usage error otherwise */
            for (const char *q = v; *q;) {
                size_t n = strcspn(q, ",");
                bool known = n == 0;
                for (const char *const *pn = mil_pass_names(); *pn && !known; pn++)
                    known = strlen(*pn) == n && !strncmp(*pn, q, n);
                if (!known) {
                    char msg[1024];
                    int k = snprintf(msg, sizeof msg, "unknown pass '%.*s' in --passes (expected", (int)n, q);
                    const char *sep = " ";
                    for (const char *const *pn = mil_pass_names(); *pn; pn++, sep = ", ")
                        if (k > 0 && (size_t)k < sizeof msg)
                            k += snprintf(msg + k, sizeof msg - (size_t)k, "%s%s", sep, *pn);
                    if (k > 0 && (size_t)k < sizeof msg) snprintf(msg + k, sizeof msg - (size_t)k, ")");
                    return usage_error("%s", msg);
                }
                q += n;
                if (*q == ',') q++;
            }
            o->pass.passes = v;
            o->opt_given = true;
        } else if (starts(a, "--print-after=", &v)) {
            /* an unknown name is a usage error, like --passes= */
            bool known = !strcmp(v, "all");
            char msg[1024];
            int k = snprintf(msg, sizeof msg, "unknown pass '%s' in --print-after (expected all", v);
            for (const char *const *pn = mil_pass_names(); *pn; pn++) {
                known |= !strcmp(*pn, v);
                if (k > 0 && (size_t)k < sizeof msg) k += snprintf(msg + k, sizeof msg - (size_t)k, ", %s", *pn);
            }
            if (!known) {
                if (k > 0 && (size_t)k < sizeof msg) snprintf(msg + k, sizeof msg - (size_t)k, ")");
                return usage_error("%s", msg);
            }
            o->pass.print_after = v;
        } else if (!strcmp(a, "--verify-each")) {
            o->pass.verify_each = true;
        } else if (!strcmp(a, "--stats")) {
            o->pass.stats = true;
        } else if (starts(a, "--target=", &v)) {
            if (!strcmp(v, "cpu")) o->pass.target = MIL_TARGET_CPU;
            else if (!strcmp(v, "ane")) o->pass.target = MIL_TARGET_ANE;
            else if (!strcmp(v, "ane-m1")) o->pass.target = MIL_TARGET_ANE_M1;
            else if (!strcmp(v, "ane-m4")) o->pass.target = MIL_TARGET_ANE_M4;
            else return usage_error("unknown target '%s' (expected cpu, ane, ane-m1 or ane-m4)", v);
        } else if (!strcmp(a, "--strict")) {
            o->pass.strict = true;
        } else if (starts(a, "--taps=", &v)) {
            o->pass.taps = v;
        } else if (!strcmp(a, "--pack-taps")) {
            o->pass.pack_taps = true;
        } else if (!strcmp(a, "--grad")) {
            o->grad = true;
        } else if (starts(a, "--grad=", &v)) {
            if (!*v) return usage_error("%s", "--grad= needs a function name");
            o->grad = true;
            o->gopt.func = v;
        } else if (starts(a, "--wrt=", &v)) {
            o->gopt.wrt = v;
        } else if (starts(a, "--loss=", &v)) {
            if (!*v) return usage_error("%s", "--loss= needs an output name");
            o->gopt.loss = v;
        } else if (starts(a, "--recompute=", &v)) {
            if (!strcmp(v, "none")) o->gopt.recompute = MIL_RECOMPUTE_NONE;
            else if (!strcmp(v, "cheap")) o->gopt.recompute = MIL_RECOMPUTE_CHEAP;
            else return usage_error("unknown --recompute mode '%s' (expected none or cheap)", v);
        } else if (!strcmp(a, "--split-weight-grads")) {
            o->gopt.split_weight_grads = true;
        } else if (a[0] == '-' && a[1] != 0) {
            return usage_error("unknown option '%s'", a);
        } else {
            if (o->input) return usage_error("more than one input file ('%s')", a);
            o->input = a;
        }
    }
    if (!o->input) return usage_error("%s", "no input file");
    if ((o->emit == EMIT_MILB || o->emit == EMIT_ANE_MIL) && o->output && !strcmp(o->output, "-"))
        return usage_error("%s", o->emit == EMIT_MILB ? "--emit=milb cannot write to stdout (-o -); give -o PROG.milb"
                                                       : "--emit=ane-mil cannot write to stdout (-o -); give -o DIR");
    if (o->check_only && o->output) return usage_error("%s", "--check writes no output; drop -o");
    if (!o->grad && (o->gopt.wrt || o->gopt.loss || o->gopt.recompute || o->gopt.split_weight_grads))
        return usage_error("%s", "--wrt, --loss, --recompute and --split-weight-grads need --grad");
    return -1;
}

/* Writes text to path atomically (temp file + rename); "-"/NULL = stdout. */
static int write_output(const char *path, const char *text, size_t len) {
    if (!path || !strcmp(path, "-")) {
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
            fprintf(stderr, "milc: error: cannot write to stdout: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    MilDiag d;
    mil_diag_init(&d);
    int rc = mil_write_file_atomic(path, text, len, &d);
    for (int i = 0; i < d.n; i++) fprintf(stderr, "milc: error: %s\n", d.v[i].msg);
    mil_diag_free(&d);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------- pass outputs
 * Text, bundle and taps outputs of the optimiser (the .milb / ane-mil emitters
 * live apart from these). */

static bool is_bundle_path(const char *out) {
    if (!out) return false;
    size_t n = strlen(out);
    while (n && out[n - 1] == '/') n--;
    return n > 9 && !strncmp(out + n - 9, ".mlmodelc", 9);
}

static bool is_package_path(const char *out) {
    if (!out) return false;
    size_t n = strlen(out);
    while (n && out[n - 1] == '/') n--;
    return n > 10 && !strncmp(out + n - 10, ".mlpackage", 10);
}

/* -o NAME.mlpackage: a Core ML package (coreml/). */
static int write_package(MilProgram *p, const Options *o, const char *model_dir) {
    MilDiag d;
    mil_diag_init(&d);
    MilCoreMLWriteOptions co = {.model_dir = model_dir};
    int rc = mil_coreml_write(p, o->output, &co, &d);
    mil_diag_print(&d, stderr);
    mil_diag_free(&d);
    return rc ? 1 : 0;
}

static int emit_mil(MilProgram *p, const Options *o) {
    /* constants the passes created that coremltools would put in weight.bin
       (mil_const_needs_weight_file): text alone cannot hold them faithfully */
    if (o->pass.new_weights > 0) {
        fprintf(stderr,
                "milc: error: the optimised program has %d new constant%s that need%s a weight file (first: '%s'); "
                "text output cannot hold %s -- use -o NAME.mlmodelc (model.mil + weights/weight.bin)\n",
                o->pass.new_weights, o->pass.new_weights == 1 ? "" : "s", o->pass.new_weights == 1 ? "s" : "",
                o->pass.new_weight_name ? o->pass.new_weight_name : "?", o->pass.new_weights == 1 ? "it" : "them");
        return 1;
    }
    size_t len = 0;
    char *text = mil_print(p, o->spelling, &len);
    if (!text) {
        fprintf(stderr, "milc: error: out of memory while printing\n");
        return 1;
    }
    int rc = write_output(o->output, text, len);
    free(text);
    return rc;
}

static int emit_taps(const Options *o) {
    if (!o->pass.taps_json) {
        fprintf(stderr, "milc: error: --emit=taps needs --taps (or a `taps` function attribute)\n");
        return 1;
    }
    return write_output(o->output, o->pass.taps_json, strlen(o->pass.taps_json));
}

/* FILE.taps.json next to a text output, taps.json inside a bundle. */
static void taps_sidecar_path(const Options *o, char *path, size_t size) {
    if (is_bundle_path(o->output)) snprintf(path, size, "%s/taps.json", o->output);
    else snprintf(path, size, "%s.taps.json", o->output);
}

static int write_taps_sidecar(const Options *o) {
    if (!o->output || !strcmp(o->output, "-")) return 0;
    char path[4096];
    taps_sidecar_path(o, path, sizeof path);
    return write_output(path, o->pass.taps_json, strlen(o->pass.taps_json));
}

/* -o NAME.mlmodelc: NAME.mlmodelc/model.mil + weights/weight.bin holding every
 * BLOBFILE constant the output references (and large inline constants). */
static int write_bundle(MilProgram *p, const Options *o, const char *model_dir) {
    MilDiag d;
    mil_diag_init(&d);
    MilBundleOptions bo = {.spelling = o->spelling, .model_dir = model_dir};
    int rc = mil_bundle_write(p, o->output, &bo, &d);
    mil_diag_print(&d, stderr);
    mil_diag_free(&d);
    return rc ? 1 : 0;
}

/* ------------------------------------------------- binary outputs (issue 5)
 * --emit=milb / --emit=ane-mil and .milb inputs; the formats live in
 * backend/ (milb_write.c, milb_read.c, ane_emit.c). */

static MilProgram *load_milb_input(const char *path, MilDiag *d) {
    void *buf;
    size_t len;
    MilRtErr e;
    if (mil_rt_milb_read_file(path, &buf, &len, &e)) {
        mil_error(d, (MilLoc){0}, "%s", e.msg);
        return NULL;
    }
    MilProgram *p = mil_milb_disassemble(buf, len, path, d);
    free(buf);
    return p;
}

static int emit_binary(MilProgram *p, const Options *o, const char *model_dir) {
    int rc;
    MilDiag dd, *d = &dd;
    if (!o->output || !strcmp(o->output, "-")) {
        fprintf(stderr, "milc: error: --emit=%s needs -o %s\n", o->emit == EMIT_MILB ? "milb" : "ane-mil",
                o->emit == EMIT_MILB ? "PROG.milb" : "DIR");
        return 1;
    }
    mil_diag_init(d);
    if (o->emit == EMIT_MILB) {
        MilbWriteOptions wo = {.model_dir = model_dir ? model_dir : ".", .strip = o->milb_strip,
                               .no_debug = o->milb_no_debug};
        MilbStats st;
        rc = mil_milb_write_files(p, o->output, &wo, &st, d);
        if (!rc && o->pass.stats) mil_milb_print_stats(&st, o->output, stderr);
    } else {
        MilAneOptions ao = {.spelling = o->spelling, .model_dir = model_dir ? model_dir : "."};
        rc = mil_emit_ane_mil(p, o->output, &ao, d);
    }
    mil_diag_print(d, stderr);
    mil_diag_free(d);
    return rc ? 1 : 0;
}

/* --grad: an unknown function, --wrt or --loss name, a non-scalar
 * --loss and a --wrt input that is not floating-point are usage errors (2);
 * -1 = fine. */
static int check_grad_names(const MilProgram *p, const MilGradOptions *g) {
    const char *fn = g->func ? g->func : "main";
    const MilFunc *f = mil_program_find_func(p, fn);
    if (!f) return usage_error("--grad: the program has no function '%s'", fn);
    for (const char *q = g->wrt; q && *q;) {
        size_t l = strcspn(q, ",");
        const MilValue *x = NULL;
        for (int i = 0; i < f->nparams; i++)
            if (strlen(f->params[i]->name) == l && !strncmp(f->params[i]->name, q, l)) x = f->params[i];
        char nm[512];
        snprintf(nm, sizeof nm, "%.*s", (int)(l < 500 ? l : 500), q);
        char msg[800];
        if (l && !x) {
            snprintf(msg, sizeof msg, "--wrt: function '%s' has no input '%s'", fn, nm);
            return usage_error("%s", msg);
        }
        if (x && (!x->type || x->type->kind != MIL_TY_TENSOR || !mil_dtype_is_float(x->type->dtype))) {
            char t[128];
            mil_type_format(x->type, MIL_SPELLING_1_3, t, sizeof t);
            snprintf(msg, sizeof msg, "--wrt: input '%s' is %s, not a floating-point tensor", nm, t);
            return usage_error("%s", msg);
        }
        q += l;
        if (*q == ',') q++;
    }
    if (g->loss) {
        const MilValue *lv = NULL;
        for (int i = 0; i < f->body.nouts; i++)
            if (!strcmp(f->body.outs[i]->name, g->loss)) lv = f->body.outs[i];
        if (!lv) {
            fprintf(stderr, "milc: error: --loss: function '%s' has no output '%s'\nTry 'milc --help'.\n", fn, g->loss);
            return 2;
        }
        if (!lv->type || lv->type->kind != MIL_TY_TENSOR || !mil_dtype_is_float(lv->type->dtype) ||
            mil_type_numel(lv->type) != 1) {
            char t[128];
            mil_type_format(lv->type, MIL_SPELLING_1_3, t, sizeof t);
            fprintf(stderr, "milc: error: --loss: output '%s' is %s, not a floating-point scalar\nTry 'milc --help'.\n",
                    g->loss, t);
            return 2;
        }
    }
    return -1;
}

/* `-`: stdin holds MIL text or a .milb program (recognised by its magic). */
static MilProgram *load_stdin(Options *o, const MilParseOptions *po, MilDiag *d) {
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            char *nb = cap > ((size_t)1 << 40) ? NULL : realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + len, 1, cap - len, stdin);
        len += k;
        if (k == 0) break;
    }
    if (!buf || ferror(stdin)) {
        mil_error(d, (MilLoc){0}, "<stdin>: cannot read: %s", strerror(errno));
        free(buf);
        return NULL;
    }
    MilProgram *p;
    if (len >= 4 && !memcmp(buf, MILB_MAGIC, 4)) {
        if (!o->opt_given) o->pass.opt_level = 0;
        p = mil_milb_disassemble(buf, len, "<stdin>", d);
    } else {
        p = mil_parse("<stdin>", buf, len, po, d);
    }
    free(buf);
    return p;
}

int main(int argc, char **argv) {
    Options o;
    memset(&o, 0, sizeof o);
    mil_pass_options_init(&o.pass);
    o.pass.out = stderr;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    /* --check: shape inference (the checks) unless passes were chosen */
    if (o.check_only && !o.opt_given) o.pass.passes = "shape";
    /* a .milb input is disassembled as it is unless passes are asked for */
    if (mil_milb_is_path(o.input) && !o.opt_given) o.pass.opt_level = 0;

    char mil_path[4096], model_dir[4096];
    MilRtErr re;
    MilDiag d;
    mil_diag_init(&d);
    if (strcmp(o.input, "-") && mil_coreml_is_package(o.input)) {
        if (mil_coreml_model_dir(o.input, model_dir, sizeof model_dir, &d) == 0) o.pass.weights_dir = model_dir;
    } else if (strcmp(o.input, "-") && mil_rt_model_paths(o.input, mil_path, sizeof mil_path, model_dir,
                                                          sizeof model_dir, &re) == 0) {
        o.pass.weights_dir = model_dir;
    }
    MilParseOptions po = {.allow_unknown_ops = o.allow_unknown_ops};
    MilProgram *p = d.nerrors                    ? NULL
                    : !strcmp(o.input, "-")      ? load_stdin(&o, &po, &d)
                    : mil_milb_is_path(o.input) ? load_milb_input(o.input, &d)
                                                : mil_parse_file(o.input, &po, &d);
    if (p && mil_verify(p, &d) == 0 && o.grad) {
        /* names that do not exist are usage errors (exit 2), checked first */
        rc = check_grad_names(p, &o.gopt);
        if (rc >= 0) {
            mil_diag_print(&d, stderr);
            mil_program_free(p);
            mil_diag_free(&d);
            return rc;
        }
        o.gopt.pack_taps = o.pass.pack_taps;
        mil_grad(p, &o.gopt, &d);
    }
    if (p && d.nerrors == 0 && mil_verify(p, &d) == 0)
        mil_pass_run(p, &o.pass, &d);
    mil_diag_print(&d, stderr);
    if (!p || d.nerrors > 0) {
        mil_program_free(p);
        mil_diag_free(&d);
        free(o.pass.taps_json);
        return 1;
    }

    rc = 0;
    if (!o.check_only) {
        if (o.emit == EMIT_TAPS)
            rc = emit_taps(&o);
        else if (o.emit == EMIT_GRAD_MAP) {
            /* of --grad, or of grad functions the input already holds */
            char *js = mil_grad_map_json(p, o.gopt.func);
            if (!js) fprintf(stderr, "milc: error: no grad functions of '%s' (use --grad)\n", o.gopt.func ? o.gopt.func : "main");
            rc = js ? write_output(o.output, js, strlen(js)) : 1;
            free(js);
        }
        else if (o.emit == EMIT_MILB || o.emit == EMIT_ANE_MIL)
            rc = emit_binary(p, &o, o.pass.weights_dir);
        else if (is_package_path(o.output)) {
            if (o.pass.taps_json) {
                fprintf(stderr, "milc: error: --taps sidecars are not written into a .mlpackage; use --emit=taps\n");
                rc = 1;
            } else {
                rc = write_package(p, &o, o.pass.weights_dir);
            }
        } else if (is_bundle_path(o.output)) {
            /* the sidecar lives inside the bundle: refuse a bad target first */
            char sp[4096];
            struct stat st;
            taps_sidecar_path(&o, sp, sizeof sp);
            if (o.pass.taps_json && lstat(sp, &st) == 0 && !S_ISREG(st.st_mode)) {
                fprintf(stderr, "milc: error: cannot write '%s': not a regular file\n", sp);
                rc = 1;
            } else {
                rc = write_bundle(p, &o, o.pass.weights_dir);
                if (rc == 0 && o.pass.taps_json) rc = write_taps_sidecar(&o);
            }
        } else if (o.pass.taps_json && o.output && strcmp(o.output, "-")) {
            /* sidecar first: a failure of either leaves no new file behind */
            char sp[4096];
            struct stat st;
            taps_sidecar_path(&o, sp, sizeof sp);
            bool existed = lstat(sp, &st) == 0;
            rc = write_taps_sidecar(&o);
            if (rc == 0) {
                rc = emit_mil(p, &o);
                if (rc != 0 && !existed) remove(sp);
            }
        } else
            rc = emit_mil(p, &o);
    }
    mil_program_free(p);
    mil_diag_free(&d);
    free(o.pass.taps_json);
    return rc;
}
