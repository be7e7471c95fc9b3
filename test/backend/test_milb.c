/* test/backend/test_milb.c -- .milb binary programs: round trips (corpus,
 * transformer programs, pass test programs), determinism, size goals,
 * corruption (every byte flipped, every truncation, random garbage, forged
 * files with valid checksums), loader messages, and mil-run on a .milb giving
 * bit-identical outputs to the source MIL. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "testutil.h"

static char *tmp;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmrf(tmp); free(tmp); }

#define tpath(name) tu_path(tmp, name)

static MilProgram *parse_text(const char *file, const char *text, MilDiag *d) {
    MilParseOptions po = {.allow_unknown_ops = true};
    MilProgram *p = mil_parse(file, text, strlen(text), &po, d);
    if (p && d->nerrors == 0) mil_verify(p, d);
    if (!p || d->nerrors) {
        mil_program_free(p);
        return NULL;
    }
    return p;
}

#define WPATH "@model_path/prog.weights.bin"

/* The full round trip of one program; returns false when it cannot be
 * written (reported by the caller). */
static bool roundtrip(const MilProgram *p, const char *model_dir, const char *what, size_t *size) {
    MilDiag d;
    mil_diag_init(&d);
    MilbWriteOptions wo = {.model_dir = model_dir, .weight_path = WPATH, .keep_unreadable_weights = true};
    MilbOutput a, a2, b;
    if (mil_milb_write(p, &wo, &a, &d)) {
        char msg[512] = "";
        if (d.n) mil_diag_format(&d, 0, msg, sizeof msg);
        tu_warn("%s: cannot write: %s", what, msg);
        mil_diag_free(&d);
        return false;
    }
    if (size) *size = a.milb_len;
    /* determinism */
    cr_assert_eq(mil_milb_write(p, &wo, &a2, &d), 0);
    cr_assert_eq(a.milb_len, a2.milb_len, "%s: not deterministic", what);
    cr_assert(!memcmp(a.milb, a2.milb, a.milb_len), "%s: not deterministic", what);
    mil_milb_output_free(&a2);
    /* weights next to the program, as mil_milb_write_files does */
    if (a.weights_len) tu_write_file(tpath("prog.weights.bin"), a.weights, a.weights_len);
    /* disassemble and write again: same bytes */
    MilProgram *q = mil_milb_disassemble(a.milb, a.milb_len, "prog.milb", &d);
    cr_assert(q, "%s: disassembly failed", what);
    cr_assert_eq(mil_verify(q, &d), 0, "%s: disassembled program does not verify", what);
    MilbWriteOptions wo2 = wo;
    wo2.model_dir = tmp;
    cr_assert_eq(mil_milb_write(q, &wo2, &b, &d), 0, "%s: cannot re-write the disassembly", what);
    cr_assert_eq(a.milb_len, b.milb_len, "%s: round trip changed the size (%zu -> %zu)", what, a.milb_len, b.milb_len);
    cr_assert(!memcmp(a.milb, b.milb, a.milb_len), "%s: round trip changed the bytes", what);
    cr_assert_eq(a.weights_len, b.weights_len, "%s: weight file changed", what);
    if (a.weights_len) cr_assert(!memcmp(a.weights, b.weights, a.weights_len), "%s: weight file changed", what);
    /* text of the disassembly is a fixed point too */
    MilProgram *q2 = mil_milb_disassemble(b.milb, b.milb_len, "prog.milb", &d);
    cr_assert(q2);
    char *t1 = mil_print(q, MIL_SPELLING_SAME, NULL), *t2 = mil_print(q2, MIL_SPELLING_SAME, NULL);
    cr_assert_str_eq(t1, t2, "%s: disassembly text differs", what);
    /* with nothing moved to a weight file the disassembly is the canonical text */
    if (!a.weights_len) {
        char *t0 = mil_print(p, MIL_SPELLING_SAME, NULL);
        cr_assert_str_eq(t0, t1, "%s: disassembly differs from the canonical source", what);
        free(t0);
    }
    free(t1);
    free(t2);
    mil_program_free(q);
    mil_program_free(q2);
    mil_milb_output_free(&a);
    mil_milb_output_free(&b);
    remove(tpath("prog.weights.bin"));
    mil_diag_free(&d);
    return true;
}

/* Round trip every .mil of dir (the first program of multi-program golden files). */
static void roundtrip_dir(const char *dir, int *ok, int *total) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *de;
    char **names = NULL;
    int n = 0;
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".mil")) {
            names = realloc(names, sizeof *names * (size_t)(n + 1));
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(dp);
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        char *text = tu_read_file(path, &len);
        cr_assert(text);
        char *second = strstr(text + 1, "\nprogram(");
        if (second) second[1] = 0;
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = parse_text(path, text, &d);
        if (p) {
            (*total)++;
            size_t sz = 0;
            if (roundtrip(p, dir, names[i], &sz)) (*ok)++;
            mil_program_free(p);
        }
        mil_diag_free(&d);
        free(text);
        free(names[i]);
    }
    free(names);
}

TestSuite(milb, .init = setup, .fini = teardown, .timeout = 300);

Test(milb, roundtrip_corpus) {
    const char *dir = tu_corpus_dir();
    if (!dir) {
        /* tu_corpus_dir() has printed the loud warning; the project's own
         * programs are covered by roundtrip_test_programs. */
        tu_warn("real corpus ABSENT: corpus round trips check nothing (set MILC_CORPUS_DIR)");
        return;
    }
    int ok = 0, total = 0;
    roundtrip_dir(dir, &ok, &total);
    cr_assert_gt(total, 10);
    cr_assert_eq(ok, total, "%d of %d corpus programs round-trip", ok, total);
}

Test(milb, roundtrip_test_programs) {
    int ok = 0, total = 0;
    roundtrip_dir(tu_src("test/backend/data"), &ok, &total);
    roundtrip_dir(tu_src("test/passes"), &ok, &total);
    roundtrip_dir(tu_src("test/frontend/data"), &ok, &total);
    roundtrip_dir(tu_src("examples/mil"), &ok, &total);
    cr_assert_gt(total, 5);
    cr_assert_eq(ok, total, "%d of %d test programs round-trip", ok, total);
}

static void roundtrip_stripped(const MilProgram *p, const char *model_dir, const char *what, size_t *size);

/* SRC (under the source tree) optimised at -OLVL, then round-tripped (with
 * names and debug info stripped if STRIP). */
static void roundtrip_optimised(const char *src, int lvl, bool strip) {
    MilDiag d;
    mil_diag_init(&d);
    size_t len;
    char *text = tu_read_file(tu_src(src), &len);
    MilProgram *p = parse_text(tu_src(src), text, &d);
    cr_assert(p);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tu_src(src));
    *strrchr(dir, '/') = 0;
    MilPassOptions po;
    mil_pass_options_init(&po);
    po.opt_level = lvl;
    po.weights_dir = dir;
    mil_pass_run(p, &po, &d);
    cr_assert_eq(d.nerrors, 0);
    char what[256];
    snprintf(what, sizeof what, "%s -O%d%s", src, lvl, strip ? " (stripped)" : "");
    size_t sz = 0;
    if (strip)
        roundtrip_stripped(p, dir, what, &sz);
    else
        cr_assert(roundtrip(p, dir, what, &sz), "%s", what);
    cr_log_info("%s: %zu bytes", what, sz);
    mil_program_free(p);
    free(text);
    free(po.taps_json);
    mil_diag_free(&d);
}

/* The transformer programs after each optimisation level. */
Test(milb, roundtrip_after_passes) {
    const char *srcs[] = {"test/backend/data/transformer_layer.mil", "examples/mil/ffn_block.mil"};
    for (int s = 0; s < 2; s++)
        for (int lvl = 0; lvl <= 2; lvl++) roundtrip_optimised(srcs[s], lvl, false);
}

static const char *matmul_src(int n) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, %d, %d]> a, tensor<fp16, [1, %d, %d]> b) {\n"
             "            bool tx = const()[name = string(\"tx\"), val = bool(false)];\n"
             "            bool ty = const()[name = string(\"ty\"), val = bool(false)];\n"
             "            tensor<fp16, [1, %d, %d]> y = matmul(transpose_x = tx, transpose_y = ty, x = a, y = b)[name = string(\"y\")];\n"
             "        } -> (y);\n}\n",
             n, n, n, n, n, n);
    return buf;
}

static size_t milb_size(const char *text) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text("mm.mil", text, &d);
    cr_assert(p);
    MilbOutput o;
    cr_assert_eq(mil_milb_write(p, NULL, &o, &d), 0);
    size_t n = o.milb_len;
    cr_assert_eq(o.weights_len, 0, "a program with dynamic weights needs no weight file");
    mil_milb_output_free(&o);
    mil_program_free(p);
    mil_diag_free(&d);
    return n;
}

Test(milb, size_goals) {
    size_t s128 = milb_size(matmul_src(128)), s1024 = milb_size(matmul_src(1024));
    cr_log_info("matmul 128x128: %zu bytes, 1024x1024: %zu bytes", s128, s1024);
    cr_assert_leq(s128, 268);
    cr_assert_leq(s1024, 268);
    cr_assert_leq(s1024 > s128 ? s1024 - s128 : s128 - s1024, 8);
}

/* ------------------------------------------------------------ corruption */

/* A small program touching every section: strings, several types, a weight,
 * constants of several kinds (scalar, string, int vector, aggregate attr),
 * variadic arguments, defaults, two outputs. */
static const char *small_src =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"k\", \"v\"}})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp16, [1, 4, 8]> x) {\n"
    "            tensor<fp16, [8, 8]> w = const()[name = string(\"w\"), val = tensor<fp16, [8, 8]>([[0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3], [0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3], [0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3], [0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3], [-0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3], [0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3], [0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3], [0x1p+0, 0x1p-1, 0x1p-2, 0x1p-3, 0x1p+0, 0x1p-1, 0x1p-2, -0x1p-3]])];\n"
    "            fp16 two = const()[name = string(\"two\"), val = fp16(0x1p+1)];\n"
    "            tensor<fp16, [1, 4, 8]> m = matmul(x = x, y = w)[name = string(\"m\")];\n"
    "            tensor<fp16, [1, 4, 8]> s = mul(x = m, y = two)[name = string(\"s\")];\n"
    "            tensor<fp16, [1, 4, 8]> r = relu(x = s)[name = string(\"r\")];\n"
    "            tensor<fp16, [1, 8, 8]> c = concat(axis = int32(1), interleave = bool(false), values = (r, x))[name = string(\"cat\")];\n"
    "            tensor<int32, [3]> shp = const()[name = string(\"shp\"), val = tensor<int32, [3]>([1, 64, 1])];\n"
    "            tensor<fp16, [1, 64, 1]> z = reshape(shape = shp, x = c)[name = string(\"z\")];\n"
    "        } -> (z, r);\n"
    "}\n";

typedef struct Small {
    uint8_t *milb;
    size_t len;
} Small;

/* The small program as .milb (names and debug info stripped if STRIP); its
 * weights in tmp. */
static Small small_program_opts(bool strip) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text("small.mil", small_src, &d);
    cr_assert(p);
    MilbWriteOptions wo = {.weight_path = WPATH, .strip = strip};
    MilbOutput o;
    cr_assert_eq(mil_milb_write(p, &wo, &o, &d), 0);
    cr_assert_gt(o.weights_len, 0);
    tu_write_file(tpath("prog.weights.bin"), o.weights, o.weights_len);
    Small s = {o.milb, o.milb_len};
    free(o.weights);
    mil_program_free(p);
    mil_diag_free(&d);
    return s;
}

static Small small_program(void) { return small_program_opts(false); }

/* Loads bytes fully (parse, runtime program, disassembly); true if accepted. */
static bool try_load(const uint8_t *b, size_t n, MilRtErr *e) {
    MilRtMilbOptions mo = {.model_dir = tmp};
    MilRtProgram *rp = mil_rt_milb_load_mem(b, n, "prog.milb", &mo, e);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_milb_disassemble(b, n, "prog.milb", &d);
    if (p) {
        mil_verify(p, &d);
        char *t = mil_print(p, MIL_SPELLING_SAME, NULL);
        free(t);
    }
    cr_assert(rp == NULL || p != NULL, "the loader accepted what the disassembler rejected: %s", d.n ? d.v[0].msg : "");
    mil_program_free(p);
    mil_diag_free(&d);
    bool ok = rp != NULL;
    mil_rt_program_free(rp);
    return ok;
}

/* Recomputes the content hash (if the section table is readable) and the checksum. */
static void reseal(uint8_t *b, size_t n) {
    if (n < MILB_MIN_SIZE) return;
    MilbCursor c = {b + MILB_HEADER_SIZE, b + n - 8, false};
    int ns = b[21];
    uint64_t lens[16];
    int ids[16];
    bool ok = ns >= 1 && ns <= MILB_SEC_MAX;
    for (int i = 0; ok && i < ns; i++) {
        uint8_t id;
        ok = milb_get_byte(&c, &id) && milb_get_varint(&c, &lens[i]);
        ids[i] = id;
    }
    int hi = -1;
    for (int i = 0; ok && i < ns; i++)
        if (ids[i] == MILB_SEC_HASH) hi = i;
    if (ok && hi >= 0 && lens[hi] == 8) {
        size_t start = (size_t)(c.p - b), off = start;
        for (int i = 0; i < hi && ok; i++) {
            off += lens[i];
            ok = off <= n - 8;
        }
        if (ok && off + 8 <= n - 8) milb_put_u64(b + off, XXH3_64bits(b + start, off - start));
    }
    milb_put_u64(b + n - 8, XXH3_64bits(b, n - 8));
}

Test(milb, small_program_loads_and_runs) {
    Small s = small_program();
    MilRtErr e;
    cr_assert(try_load(s.milb, s.len, &e), "%s", e.msg);
    cr_log_info("small program: %zu bytes", s.len);
    free(s.milb);
}

/* Every byte of S flipped (several ways) is rejected (with the loader's
 * message if CHECK_MSG). */
static void expect_flips_rejected(const Small *s, bool check_msg) {
    uint8_t *b = malloc(s->len);
    const uint8_t xs[] = {0x01, 0x80, 0xff, 0x10};
    for (size_t i = 0; i < s->len; i++)
        for (size_t k = 0; k < sizeof xs; k++) {
            memcpy(b, s->milb, s->len);
            b[i] ^= xs[k];
            MilRtErr e;
            cr_assert(!try_load(b, s->len, &e), "flipping byte %zu by 0x%02x was accepted", i, xs[k]);
            if (check_msg) cr_assert(strstr(e.msg, "bad binary format ("), "message: %s", e.msg);
        }
    free(b);
}

/* Every truncation of S is rejected (with the loader's message if
 * CHECK_MSG), even with a forged checksum. */
static void expect_truncations_rejected(const Small *s, bool check_msg) {
    for (size_t n = 0; n < s->len; n++) {
        uint8_t *b = malloc(n + 1);   /* exact size: ASan catches over-reads */
        memcpy(b, s->milb, n);
        MilRtErr e;
        cr_assert(!try_load(n ? b : NULL, n, &e), "truncation to %zu bytes accepted", n);
        if (check_msg) cr_assert(strstr(e.msg, "prog.milb: bad binary format ("), "message: %s", e.msg);
        if (n >= MILB_MIN_SIZE) {
            reseal(b, n);
            cr_assert(!try_load(b, n, &e), "truncation to %zu bytes (resealed) accepted", n);
        }
        free(b);
    }
}

Test(milb, flip_every_byte) {
    Small s = small_program();
    expect_flips_rejected(&s, true);
    free(s.milb);
}

Test(milb, truncate_at_every_length) {
    Small s = small_program();
    expect_truncations_rejected(&s, true);
    free(s.milb);
}

Test(milb, random_garbage) {
    Small s = small_program();
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (int it = 0; it < 3000; it++) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        size_t n = (size_t)(st % (s.len * 2 + 1));
        uint8_t *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            st ^= st << 13; st ^= st >> 7; st ^= st << 17;
            b[i] = (uint8_t)st;
        }
        /* half of them with a valid header prefix and checksum */
        if (it & 1 && n >= MILB_MIN_SIZE) {
            memcpy(b, s.milb, MILB_HEADER_SIZE < n ? MILB_HEADER_SIZE : n);
            reseal(b, n);
        }
        MilRtErr e;
        cr_assert(!try_load(b, n, &e), "garbage %d accepted", it);
        free(b);
    }
    free(s.milb);
}

/* Forged files: every byte set to several values, then resealed (valid
 * checksum and content hash), so the field validation is what must catch
 * them.  Some mutations are valid programs (a name changes); nothing may
 * crash or read out of bounds. */
Test(milb, forged_every_byte) {
    Small s = small_program();
    uint8_t *b = malloc(s.len);
    const uint8_t vals[] = {0x00, 0x01, 0x02, 0x05, 0x7f, 0x80, 0xff, 0x3f, 0x40};
    int accepted = 0, total = 0;
    for (size_t i = 0; i + 8 < s.len; i++)
        for (size_t k = 0; k < sizeof vals; k++) {
            if (s.milb[i] == vals[k]) continue;
            memcpy(b, s.milb, s.len);
            b[i] = vals[k];
            reseal(b, s.len);
            MilRtErr e;
            total++;
            if (try_load(b, s.len, &e)) accepted++;
            else cr_assert(strstr(e.msg, "prog.milb: ") || strstr(e.msg, "small.mil:"), "message: %s", e.msg);
        }
    cr_log_info("forged: %d of %d mutations still load", accepted, total);
    free(b);
    free(s.milb);
}

/* ------------------------------------------------------------ messages */

static size_t section_offset(const uint8_t *b, size_t n, int want, size_t *size) {
    MilbView v;
    MilRtErr e;
    cr_assert_eq(mil_rt_milb_parse(b, n, "prog.milb", &v, &e), 0, "%s", e.msg);
    size_t off = 0;
    for (int i = 0; i < v.nsections; i++)
        if (v.sections[i].id == want) {
            off = v.sections[i].offset;
            if (size) *size = v.sections[i].size;
        }
    mil_rt_milb_view_free(&v);
    cr_assert(off, "no section %d", want);
    return off;
}

static void expect_error(const uint8_t *b, size_t n, const char *a, const char *c) {
    MilRtErr e;
    cr_assert(!try_load(b, n, &e));
    cr_assert(strstr(e.msg, a), "expected '%s' in: %s", a, e.msg);
    if (c) cr_assert(strstr(e.msg, c), "expected '%s' in: %s", c, e.msg);
}

Test(milb, error_messages) {
    Small s = small_program();
    uint8_t *b = malloc(s.len);
    /* header */
    memcpy(b, s.milb, s.len);
    b[0] = 'X';
    expect_error(b, s.len, "prog.milb: bad binary format (not a .milb file", NULL);
    memcpy(b, s.milb, s.len);
    b[4] = 0x20;
    expect_error(b, s.len, "bad binary format (version mismatch", NULL);
    memcpy(b, s.milb, s.len);
    b[8] = '\n';   /* "\r\n" -> "\n\n": a text-mode copy */
    expect_error(b, s.len, "newline", NULL);
    memcpy(b, s.milb, s.len);
    b[s.len / 2] ^= 1;
    expect_error(b, s.len, "checksum mismatch", NULL);
    memcpy(b, s.milb, s.len);
    b[12] ^= 1;
    reseal(b, s.len);
    expect_error(b, s.len, "integer format mismatch", NULL);
    /* TYPES: the first type's dtype code */
    memcpy(b, s.milb, s.len);
    size_t t = section_offset(s.milb, s.len, MILB_SEC_TYPES, NULL);
    cr_assert_eq(b[t + 1] & 7, MILB_TY_TENSOR);
    b[t + 2] = 99;
    reseal(b, s.len);
    expect_error(b, s.len, "(TYPES: type 0: unknown dtype code 99", NULL);
    /* TYPES: an unknown layout */
    memcpy(b, s.milb, s.len);
    b[t + 1] |= 8;
    reseal(b, s.len);
    expect_error(b, s.len, "TYPES: type 0: unknown layout", NULL);
    /* CODE: the first op's opcode */
    memcpy(b, s.milb, s.len);
    size_t c = section_offset(s.milb, s.len, MILB_SEC_CODE, NULL);
    cr_assert_eq(b[c + 1], 0x01);   /* the palette's first opcode: const */
    b[c + 1] = 0x7e;
    reseal(b, s.len);
    expect_error(b, s.len, "CODE: op palette: unknown opcode 0x007e", NULL);
    /* CODE: a palette index out of range */
    memcpy(b, s.milb, s.len);
    size_t np = b[c];
    MilbCursor pc = {b + c + 1, b + s.len, false};
    for (size_t i = 0; i < np; i++) {
        uint64_t wv;
        uint8_t fv;
        cr_assert(milb_get_varint(&pc, &wv) && milb_get_byte(&pc, &fv));
        if (wv) cr_assert(milb_get_varint(&pc, &wv));   /* default slot mask */
    }
    b[pc.p - b] = (uint8_t)(np << 1);
    reseal(b, s.len);
    expect_error(b, s.len, "CODE: function 'main' op 0: op palette index", NULL);
    /* STRINGS: forged count */
    memcpy(b, s.milb, s.len);
    size_t st = section_offset(s.milb, s.len, MILB_SEC_STRINGS, NULL);
    b[st] = 0x7f;
    reseal(b, s.len);
    expect_error(b, s.len, "STRINGS", NULL);
    /* DEBUG: a forged file name length, a forged line delta */
    memcpy(b, s.milb, s.len);
    size_t dbg_size = 0, dbg = section_offset(s.milb, s.len, MILB_SEC_DEBUG, &dbg_size);
    cr_assert_eq(b[dbg], 9);   /* "small.mil" */
    b[dbg] = 0x7f;
    reseal(b, s.len);
    expect_error(b, s.len, "(DEBUG: source file name", NULL);
    memcpy(b, s.milb, s.len);
    b[dbg + 10] = 0x01;         /* first op: line -1 */
    reseal(b, s.len);
    expect_error(b, s.len, "(DEBUG: function 'main' op 0: location out of range", NULL);
    memcpy(b, s.milb, s.len);
    b[dbg + dbg_size - 1] = 0x80;   /* the last column no longer terminates */
    reseal(b, s.len);
    expect_error(b, s.len, "(DEBUG: function 'main' op", "location truncated");
    /* WEIGHTS: a reference to a file that is not listed */
    memcpy(b, s.milb, s.len);
    size_t ws = section_offset(s.milb, s.len, MILB_SEC_WEIGHTS, NULL);
    cr_assert_eq(b[ws], 1);     /* one file, hashed: path << 1 | 1, 8 hash bytes, one reference */
    cr_assert_eq(b[ws + 10], 1);
    cr_assert_eq(b[ws + 11], 0);
    b[ws + 11] = 1;
    reseal(b, s.len);
    expect_error(b, s.len, "(WEIGHTS: weight reference file 1 out of range", NULL);
    /* weight file: one payload byte changed */
    size_t wl;
    char *wf = tu_read_file(tpath("prog.weights.bin"), &wl);
    wf[130] ^= 1;
    tu_write_file(tpath("prog.weights.bin"), wf, wl);
    expect_error(s.milb, s.len, "does not match the program", "xxhash");
    /* missing weight file */
    remove(tpath("prog.weights.bin"));
    expect_error(s.milb, s.len, "prog.weights.bin", NULL);
    free(wf);
    free(b);
    free(s.milb);
}

Test(milb, weight_file_layout) {
    Small s = small_program();
    size_t wl;
    unsigned char *w = (unsigned char *)tu_read_file(tpath("prog.weights.bin"), &wl);
    cr_assert(w);
    uint32_t count, version, sentinel, code;
    uint64_t size, off;
    memcpy(&count, w, 4);
    memcpy(&version, w + 4, 4);
    memcpy(&sentinel, w + 64, 4);
    memcpy(&code, w + 68, 4);
    memcpy(&size, w + 72, 8);
    memcpy(&off, w + 80, 8);
    cr_assert_eq(count, 1);
    cr_assert_eq(version, 2);
    cr_assert_eq(sentinel, 0xDEADBEEFu);
    cr_assert_eq(code, 1);
    cr_assert_eq(size, 128);
    cr_assert_eq(off, 128);
    cr_assert_eq(wl, 256);
    free(w);
    free(s.milb);
}

/* ------------------------------------------------------- write_files */

static const char *noweights_src =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp32, [4]> x) {\n"
    "            tensor<fp32, [4]> y = relu(x = x)[name = string(\"y\")];\n"
    "        } -> (y);\n"
    "}\n";

static int write_files(const char *src, const char *path, char *msg, size_t size) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text("w.mil", src, &d);
    cr_assert(p);
    int rc = mil_milb_write_files(p, path, NULL, NULL, &d);
    msg[0] = 0;
    if (d.n) mil_diag_format(&d, 0, msg, size);
    mil_program_free(p);
    mil_diag_free(&d);
    return rc;
}

static bool lexists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Files in tmp other than those named (NULL-terminated). */
static int others_in_tmp(const char *const *names) {
    DIR *dp = opendir(tmp);
    cr_assert(dp);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        bool known = false;
        for (int i = 0; names[i]; i++) known |= !strcmp(names[i], de->d_name);
        if (!known) {
            tu_warn("unexpected file %s", de->d_name);
            n++;
        }
    }
    closedir(dp);
    return n;
}

/* A symlink, directory, fifo or device at either output path is refused,
 * never followed or replaced, and nothing is written. */
Test(milb, write_files_refuses_non_regular_targets) {
    char msg[1024];
    tu_write_text(tpath("victim"), "keep\n");
    const char *srcs[] = {small_src, noweights_src};
    const char *targets[] = {"prog.milb", "prog.weights.bin"};
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < 2; t++)
            for (int kind = 0; kind < 3; kind++) {
                const char *target = tpath(targets[t]);
                if (kind == 0) cr_assert_eq(symlink("victim", target), 0);
                if (kind == 1) cr_assert_eq(mkdir(target, 0777), 0);
                if (kind == 2) cr_assert_eq(mkfifo(target, 0666), 0);
                cr_assert_eq(write_files(srcs[s], tpath("prog.milb"), msg, sizeof msg), -1, "kind %d target %s", kind,
                             targets[t]);
                cr_assert(strstr(msg, "not a regular file"), "%s", msg);
                cr_assert(lexists(target));
                const char *other = tpath(targets[!t]);
                cr_assert(!lexists(other), "%s written", other);
                char *v = tu_read_file(tpath("victim"), NULL);
                cr_assert_str_eq(v, "keep\n");
                free(v);
                const char *known[] = {"victim", targets[t], NULL};
                cr_assert_eq(others_in_tmp(known), 0);
                if (kind == 1) rmdir(target);
                else remove(target);
            }
    cr_assert_eq(write_files(small_src, "/dev/full", msg, sizeof msg), -1);
    cr_assert(strstr(msg, "cannot write '/dev/full': not a regular file"), "%s", msg);
}

/* A failed .milb write leaves nothing new: no weight file written, a stale
 * one kept; a successful one replaces both and removes a stale weight file. */
Test(milb, write_files_failure_leaves_nothing_new) {
    char msg[1024];
    const char *milb = tpath("prog.milb"), *wts = tpath("prog.weights.bin");
    /* make the .milb temporary file impossible to create */
    char block[4096];
    snprintf(block, sizeof block, "%s.tmp.%ld", milb, (long)getpid());
    cr_assert_eq(mkdir(block, 0777), 0);
    tu_write_text(tu_path(block, "x"), "x");
    for (int s = 0; s < 2; s++) {
        tu_write_text(wts, "stale\n");
        tu_write_text(milb, "old\n");
        cr_assert_eq(write_files(s ? noweights_src : small_src, milb, msg, sizeof msg), -1);
        char *w = tu_read_file(wts, NULL), *m = tu_read_file(milb, NULL);
        cr_assert_str_eq(w, "stale\n", "the weight file changed on a failed write");
        cr_assert_str_eq(m, "old\n");
        free(w);
        free(m);
        const char *known[] = {"prog.milb", "prog.weights.bin", block + strlen(tmp) + 1, NULL};
        cr_assert_eq(others_in_tmp(known), 0);
    }
    tu_rmrf(block);
    /* success: with weights both replaced; without, the stale one removed */
    cr_assert_eq(write_files(small_src, milb, msg, sizeof msg), 0, "%s", msg);
    size_t wl;
    char *w = tu_read_file(wts, &wl);
    cr_assert(w && wl > 64);
    free(w);
    cr_assert_eq(write_files(noweights_src, milb, msg, sizeof msg), 0, "%s", msg);
    cr_assert(!lexists(wts), "stale weight file kept");
    cr_assert(lexists(milb));
    const char *known[] = {"prog.milb", NULL};
    cr_assert_eq(others_in_tmp(known), 0);
}

/* ------------------------------------------------------------ tools */


/* Same program: every section but DEBUG identical (a text round trip moves
 * the source lines, so only the DEBUG section may differ). */
static void same_program(const char *a, const char *b) {
    size_t la, lb;
    char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    cr_assert(x && y, "missing %s or %s", a, b);
    MilbView va, vb;
    MilRtErr e;
    cr_assert_eq(mil_rt_milb_parse(x, la, a, &va, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_milb_parse(y, lb, b, &vb, &e), 0, "%s", e.msg);
    cr_assert_eq(va.content_hash, vb.content_hash, "%s vs %s: content hash", a, b);
    int ia = 0, ib = 0;
    while (ia < va.nsections || ib < vb.nsections) {
        if (ia < va.nsections && va.sections[ia].id == MILB_SEC_DEBUG) { ia++; continue; }
        if (ib < vb.nsections && vb.sections[ib].id == MILB_SEC_DEBUG) { ib++; continue; }
        cr_assert(ia < va.nsections && ib < vb.nsections, "%s vs %s: section lists differ", a, b);
        const MilbSectionInfo *sa = &va.sections[ia++], *sb = &vb.sections[ib++];
        cr_assert_eq(sa->id, sb->id, "%s vs %s: section lists differ", a, b);
        cr_assert_eq(sa->size, sb->size, "%s vs %s: %s differs", a, b, milb_section_name(sa->id));
        cr_assert(!memcmp(x + sa->offset, y + sb->offset, sa->size), "%s vs %s: %s differs", a, b, milb_section_name(sa->id));
    }
    mil_rt_milb_view_free(&va);
    mil_rt_milb_view_free(&vb);
    free(x);
    free(y);
}

Test(milb, mil_run_bit_identical) {
    const char *milc = tu_tool("milc"), *run = tu_tool("mil-run");
    const char *src = tu_src("test/backend/data/transformer_layer.mil");
    char *err = NULL;
    for (int lvl = 0; lvl <= 2; lvl++) {
        int rc = tu_run(tu_fmt("%s -O%d --stats --emit=milb -o %s %s", milc, lvl, tpath("prog.milb"), src), NULL, &err);
        cr_assert_eq(rc, 0, "%s", err);
        cr_assert(strstr(err, "milb: "), "--stats: %s", err);
        free(err);
        /* the program and its weight file are all mil-run needs */
        /* the reference: the same optimised program as a text bundle */
        cr_assert_eq(tu_run(tu_fmt("%s -O%d -o %s %s", milc, lvl, tpath("ref.mlmodelc"), src), NULL, &err), 0, "%s", err);
        free(err);
        cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 11 -o %s %s", run, tpath("outb"), tpath("prog.milb")), NULL, &err), 0,
                     "%s", err);
        free(err);
        cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 11 -o %s %s", run, tpath("outt"), tpath("ref.mlmodelc")), NULL, &err), 0,
                     "%s", err);
        free(err);
        tu_assert_same_file(tpath("outb/y.npy"), tpath("outt/y.npy"));
        if (lvl == 0) {
            cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 11 -o %s %s", run, tpath("outs"), src), NULL, NULL), 0);
            tu_assert_same_file(tpath("outb/y.npy"), tpath("outs/y.npy"));
        }
        /* disassembly -> milb gives the same program (the DEBUG section
         * records the disassembly's lines then) */
        cr_assert_eq(tu_run(tu_fmt("%s --emit=mil -o %s %s", milc, tpath("dis.mil"), tpath("prog.milb")), NULL, NULL), 0);
        cr_assert_eq(tu_run(tu_fmt("mkdir -p %s && %s -O0 --emit=milb -o %s %s", tpath("again"), milc, tpath("again/prog.milb"),
                                tpath("dis.mil")), NULL, &err), 0, "%s", err);
        free(err);
        same_program(tpath("prog.milb"), tpath("again/prog.milb"));
        tu_assert_same_file(tpath("prog.weights.bin"), tpath("again/prog.weights.bin"));
        /* without debug info: the same bytes */
        for (int strip = 0; strip <= 1; strip++) {
            const char *mode = strip ? "--strip" : "--no-debug";
            cr_assert_eq(tu_run(tu_fmt("%s -O%d %s --stats --emit=milb -o %s %s", milc, lvl, mode, tpath("nd.milb"), src), NULL,
                                &err), 0, "%s", err);
            cr_assert(strstr(err, strip ? "names: stripped" : "names: kept"), "--stats: %s", err);
            cr_assert(strstr(err, "debug info: no"), "--stats: %s", err);
            free(err);
            cr_assert_eq(tu_run(tu_fmt("%s --emit=mil -o %s %s", milc, tpath("dis.mil"), tpath("nd.milb")), NULL, NULL), 0);
            cr_assert_eq(tu_run(tu_fmt("%s -O0 %s --emit=milb -o %s %s", milc, mode, tpath("again/nd.milb"), tpath("dis.mil")),
                                NULL, &err), 0, "%s", err);
            free(err);
            tu_assert_same_file(tpath("nd.milb"), tpath("again/nd.milb"));
            /* the stripped program runs bit-identically to the named one */
            cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 11 -o %s %s", run, tpath("outn"), tpath("nd.milb")), NULL, &err), 0,
                         "%s", err);
            free(err);
            tu_assert_same_file(tpath("outb/y.npy"), tpath("outn/y.npy"));
        }
    }
    /* a corrupted program: exit status 1 and a clear message */
    size_t n;
    char *b = tu_read_file(tpath("prog.milb"), &n);
    b[n / 2] ^= 4;
    tu_write_file(tpath("bad.milb"), b, n);
    free(b);
    cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 1 %s", run, tpath("bad.milb")), NULL, &err), 1);
    cr_assert(strstr(err, "bad binary format (checksum mismatch"), "%s", err);
    free(err);
}

/* ------------------------------------------------------------ stripped programs */

/* MIL -> milb(stripped) -> MIL -> milb(stripped) gives the same bytes; only
 * function inputs and outputs keep their names. */
static void roundtrip_stripped(const MilProgram *p, const char *model_dir, const char *what, size_t *size) {
    MilDiag d;
    mil_diag_init(&d);
    MilbWriteOptions wo = {.model_dir = model_dir, .weight_path = WPATH, .keep_unreadable_weights = true, .strip = true};
    MilbOutput a, b;
    cr_assert_eq(mil_milb_write(p, &wo, &a, &d), 0, "%s: cannot write stripped", what);
    if (size) *size = a.milb_len;
    if (a.weights_len) tu_write_file(tpath("prog.weights.bin"), a.weights, a.weights_len);
    MilbView v;
    MilRtErr e;
    cr_assert_eq(mil_rt_milb_parse(a.milb, a.milb_len, "prog.milb", &v, &e), 0, "%s", e.msg);
    cr_assert_null(v.debug_file, "%s: a stripped program has no DEBUG section", what);
    for (int fi = 0; fi < v.nfuncs; fi++)
        for (int oi = 0; oi < v.funcs[fi].nops; oi++) {
            const MilbOp *op = &v.funcs[fi].ops[oi];
            cr_assert_lt(op->name, 0, "%s: a stripped op keeps its name", what);
            bool out = false;
            for (int j = 0; j < v.funcs[fi].nouts; j++)
                out |= v.funcs[fi].outs[j] >= (uint32_t)op->first_result &&
                       v.funcs[fi].outs[j] < (uint32_t)(op->first_result + op->nresults);
            cr_assert_eq(op->anon, !out, "%s: op %d: names kept exactly for outputs", what, oi);
        }
    mil_rt_milb_view_free(&v);
    MilProgram *q = mil_milb_disassemble(a.milb, a.milb_len, "prog.milb", &d);
    cr_assert(q, "%s: stripped disassembly failed", what);
    cr_assert_eq(mil_verify(q, &d), 0, "%s: stripped disassembly does not verify", what);
    /* through text too: synthesised names parse back */
    char *t1 = mil_print(q, MIL_SPELLING_SAME, NULL);
    MilProgram *q2 = parse_text("dis.mil", t1, &d);
    cr_assert(q2, "%s: the stripped disassembly does not parse: %s", what, d.n ? d.v[0].msg : "");
    MilbWriteOptions wo2 = wo;
    wo2.model_dir = tmp;
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(mil_milb_write(k ? q2 : q, &wo2, &b, &d), 0, "%s: cannot re-write", what);
        cr_assert_eq(a.milb_len, b.milb_len, "%s: stripped round trip changed the size (%zu -> %zu)", what, a.milb_len,
                     b.milb_len);
        cr_assert(!memcmp(a.milb, b.milb, a.milb_len), "%s: stripped round trip changed the bytes", what);
        mil_milb_output_free(&b);
    }
    free(t1);
    mil_program_free(q);
    mil_program_free(q2);
    mil_milb_output_free(&a);
    remove(tpath("prog.weights.bin"));
    mil_diag_free(&d);
}

Test(milb, stripped_roundtrip) {
    const char *srcs[] = {"test/backend/data/transformer_layer.mil", "examples/mil/ffn_block.mil"};
    for (int s = 0; s < 2; s++)
        for (int lvl = 0; lvl <= 2; lvl++) roundtrip_optimised(srcs[s], lvl, true);
    /* the small program (aggregates, variadics, two outputs) and a name clash
     * between a kept output and a synthesised name */
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text("small.mil", small_src, &d);
    cr_assert(p);
    roundtrip_stripped(p, tmp, "small", NULL);
    mil_program_free(p);
    const char *clash =
        "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> v2) {\n"
        "            tensor<fp32, [2]> a = relu(x = v2)[name = string(\"a\")];\n"
        "            tensor<fp32, [2]> b = relu(x = a)[name = string(\"b\")];\n"
        "            tensor<fp32, [2]> v1 = relu(x = b)[name = string(\"v1\")];\n"
        "        } -> (v1);\n}\n";
    p = parse_text("clash.mil", clash, &d);
    cr_assert(p);
    roundtrip_stripped(p, tmp, "clash", NULL);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* The stripped encoding (anonymous results, no DEBUG) under the same
 * corruption: every byte flipped, every truncation, every byte forged. */
Test(milb, stripped_corruption) {
    Small s = small_program_opts(true);
    MilRtErr e;
    cr_assert(try_load(s.milb, s.len, &e), "%s", e.msg);
    expect_flips_rejected(&s, false);
    expect_truncations_rejected(&s, false);
    uint8_t *b = malloc(s.len);
    const uint8_t vals[] = {0x00, 0x01, 0x02, 0x05, 0x7f, 0x80, 0xff, 0x3f, 0x40, 0x21, 0x11};
    for (size_t i = 0; i + 8 < s.len; i++)
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(b, s.milb, s.len);
            b[i] = vals[k];
            reseal(b, s.len);
            if (!try_load(b, s.len, &e)) cr_assert(strstr(e.msg, "prog.milb: "), "message: %s", e.msg);
        }
    free(b);
    free(s.milb);
}

/* ------------------------------------------------------------ debug info */

Test(milb, debug_locations) {
    Small s = small_program_opts(false);
    MilbView v;
    MilRtErr e;
    cr_assert_eq(mil_rt_milb_parse(s.milb, s.len, "prog.milb", &v, &e), 0, "%s", e.msg);
    cr_assert_str_eq(v.debug_file, "small.mil");
    /* op 2 is `m = matmul(...)` on line 7 */
    cr_assert_eq(v.funcs[0].ops[2].kind, MIL_OP_MATMUL);
    cr_assert_eq(v.funcs[0].ops[2].line, 7);
    cr_assert_gt(v.funcs[0].ops[2].col, 0);
    mil_rt_milb_view_free(&v);
    /* the runtime program's ops carry them: file:line:col in run-time messages */
    MilRtMilbOptions mo = {.model_dir = tmp};
    MilRtProgram *rp = mil_rt_milb_load_mem(s.milb, s.len, "prog.milb", &mo, &e);
    cr_assert(rp, "%s", e.msg);
    const MilRtFunc *f = rp->funcs[0];
    cr_assert_eq(f->ops[0].line, 7);
    char where[256];
    mil_rt_op_where(f, &f->ops[0], where, sizeof where);
    cr_assert(!strncmp(where, "small.mil:7:", 12), "%s", where);
    mil_rt_program_free(rp);
    /* the DEBUG section is optional, and the stripped file is smaller */
    Small t = small_program_opts(true);
    cr_assert_lt(t.len, s.len);
    cr_assert(try_load(t.milb, t.len, &e), "%s", e.msg);
    free(t.milb);
    free(s.milb);
    /* a load-time error about an op names its source line */
    const char *src =
        "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> x) {\n"
        "            tensor<fp32, [2]> a = relu(x = x)[name = string(\"a\")];\n"
        "            tensor<fp32, [2]> b = frobnicate(x = a)[name = string(\"b\")];\n"
        "        } -> (b);\n}\n";
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text("model.mil", src, &d);
    cr_assert(p);
    MilbOutput o;
    cr_assert_eq(mil_milb_write(p, NULL, &o, &d), 0);
    cr_assert_null(mil_rt_milb_load_mem(o.milb, o.milb_len, "prog.milb", &mo, &e));
    cr_assert(strstr(e.msg, "model.mil:5:"), "%s", e.msg);
    cr_assert(strstr(e.msg, "error: op 'frobnicate'"), "%s", e.msg);
    mil_milb_output_free(&o);
    /* without debug info: the .milb is named instead */
    MilbWriteOptions nd = {.no_debug = true};
    cr_assert_eq(mil_milb_write(p, &nd, &o, &d), 0);
    cr_assert_null(mil_rt_milb_load_mem(o.milb, o.milb_len, "prog.milb", &mo, &e));
    cr_assert(!strncmp(e.msg, "prog.milb: ", 11), "%s", e.msg);
    mil_milb_output_free(&o);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* ------------------------------------------------------------ default shapes */

Test(milb, default_shapes) {
    const char *src =
        "program(1.3)\n{\n    func main<ios16>(tensor<fp32, [1, ?]> x) [FlexibleShapeInformation = "
        "tuple<tuple<string, dict<string, tensor<int32, [?]>>>, tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>>"
        "(((\"DefaultShapes\", {{\"x\", [1, 5]}}), (\"RangeDims\", {{\"x\", [[1, 1], [1, 64]]}})))] {\n"
        "            tensor<fp32, [1, ?]> y = relu(x = x)[name = string(\"y\")];\n"
        "        } -> (y);\n}\n";
    tu_write_file(tpath("flex.mil"), src, strlen(src));
    const char *milc = tu_tool("milc"), *run = tu_tool("mil-run");
    char *err = NULL;
    for (int strip = 0; strip <= 1; strip++) {
        cr_assert_eq(tu_run(tu_fmt("%s %s --emit=milb -o %s %s", milc, strip ? "--strip" : "", tpath("flex.milb"),
                                tpath("flex.mil")), NULL, &err), 0, "%s", err);
        free(err);
        int64_t dims[2] = {0, 0};
        cr_assert_eq(mil_rt_milb_default_shape(tpath("flex.milb"), NULL, "x", 2, dims), 1);
        cr_assert_eq(dims[0], 1);
        cr_assert_eq(dims[1], 5);
        cr_assert_eq(mil_rt_milb_default_shape(tpath("flex.milb"), "main", "x", 3, dims), 0);
        cr_assert_eq(mil_rt_milb_default_shape(tpath("flex.milb"), "main", "nope", 2, dims), 0);
        cr_assert_eq(mil_rt_milb_default_shape(tpath("missing.milb"), "main", "x", 2, dims), -1);
        /* mil-run uses them for random inputs, like for the source */
        cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 3 -o %s %s", run, tpath("fb"), tpath("flex.milb")), NULL, &err), 0, "%s",
                     err);
        free(err);
        cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 3 -o %s %s", run, tpath("ft"), tpath("flex.mil")), NULL, &err), 0, "%s",
                     err);
        free(err);
        tu_assert_same_file(tpath("fb/y.npy"), tpath("ft/y.npy"));
    }
}

/* An op that cannot be encoded (its weight file is missing) gives one clear
 * error and exit 1, never a crash or follow-on "used before defined" errors
 * for the ops after it; enough later ops to need the op array grown. */
Test(milb, encode_failure_one_error) {
    const char *milc = tu_tool("milc");
    char src[16384];
    int n = snprintf(src, sizeof src,
                     "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4]> x) {\n"
                     "            tensor<fp16, [1, 4]> a = add(x = x, y = tensor<fp16, [1, 4]>(BLOBFILE(path = "
                     "string(\"@model_path/weights/weight.bin\"), offset = uint64(64))));\n");
    for (int i = 0; i < 150; i++) {
        if (i) n += snprintf(src + n, sizeof src - (size_t)n, "            tensor<fp16, [1, 4]> r%d = relu(x = r%d);\n", i, i - 1);
        else n += snprintf(src + n, sizeof src - (size_t)n, "            tensor<fp16, [1, 4]> r0 = relu(x = a);\n");
    }
    n += snprintf(src + n, sizeof src - (size_t)n, "        } -> (r149, a);\n}\n");
    tu_write_file(tpath("bad_w.mil"), src, (size_t)n);
    char *err = NULL;
    int rc = tu_run(tu_fmt("%s --emit=milb -o %s %s", milc, tpath("bad_w.milb"), tpath("bad_w.mil")), NULL, &err);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, err ? err : "");
    cr_assert(err && strstr(err, "cannot open weight file"), "%s", err ? err : "");
    int nerr = 0;
    for (const char *s = err; (s = strstr(s, "error:")); s++) nerr++;
    cr_assert_eq(nerr, 1, "%s", err);
    free(err);
    const char *corpus = tu_corpus_dir();
    char path[4096];
    if (corpus) {
        snprintf(path, sizeof path, "%s/FluidAudio__ParakeetEOU_1280ms__streaming_encoder.mil", corpus);
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            char wpath[4200];
            snprintf(wpath, sizeof wpath, "%s/weights/weight.bin", corpus);
            FILE *wf = fopen(wpath, "r");
            if (wf) fclose(wf);
            else {
                err = NULL;
                rc = tu_run(tu_fmt("%s -O0 --emit=milb -o %s %s", milc, tpath("pk.milb"), path), NULL, &err);
                cr_assert_eq(rc, 1, "rc %d: %s", rc, err ? err : "");
                free(err);
            }
        }
    }
}

/* The writer refuses what its loader would reject: a dim >= MILB_MAX_DIM
 * (2^40); the largest allowed one writes and loads back. */
Test(milb, dim_limit_shared_with_loader) {
    const char *milc = tu_tool("milc");
    for (int ok = 0; ok < 2; ok++) {
        long long dim = (long long)MILB_MAX_DIM - ok;
        char src[512];
        int n = snprintf(src, sizeof src,
                         "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [%lld, 4]> x) {\n"
                         "            tensor<fp16, [%lld, 4]> r = relu(x = x);\n        } -> (r);\n}\n",
                         dim, dim);
        tu_write_file(tpath("big.mil"), src, (size_t)n);
        char *err = NULL;
        int rc = tu_run(tu_fmt("%s --passes=dce --emit=milb -o %s %s", milc, tpath("big.milb"), tpath("big.mil")), NULL, &err);
        if (ok) {
            cr_assert_eq(rc, 0, "%s", err ? err : "");
            free(err);
            err = NULL;
            rc = tu_run(tu_fmt("%s --emit=mil -o %s %s", milc, tpath("big_dis.mil"), tpath("big.milb")), NULL, &err);
            cr_assert_eq(rc, 0, "the loader rejects what the writer wrote: %s", err ? err : "");
        } else {
            cr_assert_eq(rc, 1, "rc %d: %s", rc, err ? err : "");
            cr_assert(err && strstr(err, "above the .milb limit"), "%s", err ? err : "");
        }
        free(err);
    }
}

/* A constexpr op that fails at load time: one location prefix, one op
 * label (was "lut.mil:4:46: error: op 'w': lut.mil: error: op ..."). */
Test(milb, constexpr_error_message) {
    const char *src = "program(1.0)\n{\n    func main<ios16>(tensor<fp16, [4]> x) {\n"
                      "            tensor<fp16, [65536, 65536]> w = constexpr_lut_to_dense()[indices = tensor<uint8, [2]>([1, "
                      "2]), lut = tensor<fp16, [2]>([0x1p+0, 0x1p+1]), name = tensor<string, []>(\"w\"), shape = "
                      "tensor<uint32, [2]>([65536, 65536])];\n"
                      "            tensor<fp16, [4]> y = relu(x = x);\n        } -> (y, w);\n}\n";
    tu_write_file(tpath("lut.mil"), src, strlen(src));
    const char *why = "op 'constexpr_lut_to_dense' ('w'): constexpr_lut_to_dense: indices has 2 bytes, expected 536870912";
    for (int dbg = 0; dbg < 2; dbg++) {
        char *err = NULL;
        int rc = tu_run(tu_fmt("cd %s && %s %s --emit=milb -o lut.milb lut.mil", tmp, tu_tool("milc"), dbg ? "" : "--no-debug"),
                        NULL, &err);
        cr_assert_eq(rc, 0, "%s", err ? err : "");
        free(err);
        size_t n;
        char *b = tu_read_file(tpath("lut.milb"), &n);
        cr_assert(b);
        MilRtMilbOptions mo = {.model_dir = tmp};
        MilRtErr e;
        MilRtProgram *rp = mil_rt_milb_load_mem(b, n, "lut.milb", &mo, &e);
        cr_assert_null(rp);
        char want[512];
        if (dbg) snprintf(want, sizeof want, "lut.mil:4:46: error: %s", why);
        else snprintf(want, sizeof want, "lut.milb: %s", why);
        cr_assert_str_eq(e.msg, want);
        free(b);
    }
}

/* The program does not embed its own file name: the same IR written as
 * a.milb and b.milb gives the same bytes (without DEBUG), and a renamed pair
 * (prog.milb + prog.weights.bin) still loads and runs. */
Test(milb, output_name_independent) {
    const char *milc = tu_tool("milc"), *run = tu_tool("mil-run");
    const char *src = tu_src("test/backend/data/transformer_layer.mil");
    char *err = NULL;
    cr_assert_eq(tu_run(tu_fmt("%s -O2 --no-debug --emit=milb -o %s %s", milc, tpath("a.milb"), src), NULL, &err), 0, "%s",
                 err ? err : "");
    free(err);
    err = NULL;
    cr_assert_eq(tu_run(tu_fmt("%s -O2 --no-debug --emit=milb -o %s %s", milc, tpath("b.milb"), src), NULL, &err), 0, "%s",
                 err ? err : "");
    free(err);
    tu_assert_same_file(tpath("a.milb"), tpath("b.milb"));
    tu_assert_same_file(tpath("a.weights.bin"), tpath("b.weights.bin"));
    cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 5 -o %s %s", run, tpath("out_a"), tpath("a.milb")), NULL, NULL), 0);
    char *dst = strdup(tpath("renamed.milb"));
    cr_assert_eq(rename(tpath("a.milb"), dst), 0);
    free(dst);
    dst = strdup(tpath("renamed.weights.bin"));
    cr_assert_eq(rename(tpath("a.weights.bin"), dst), 0);
    free(dst);
    err = NULL;
    cr_assert_eq(tu_run(tu_fmt("%s --random-inputs 5 -o %s %s", run, tpath("out_r"), tpath("renamed.milb")), NULL, &err), 0,
                 "renamed pair does not load: %s", err ? err : "");
    free(err);
    DIR *dd = opendir(tpath("out_a"));
    cr_assert(dd);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dd))) {
        if (de->d_name[0] == '.') continue;
        char a[2048], b[2048];
        snprintf(a, sizeof a, "%s/out_a/%s", tmp, de->d_name);
        snprintf(b, sizeof b, "%s/out_r/%s", tmp, de->d_name);
        tu_assert_same_file(a, b);
        n++;
    }
    closedir(dd);
    cr_assert_gt(n, 0);
    /* the disassembly names the weight file after the program */
    cr_assert_eq(tu_run(tu_fmt("%s --emit=mil -o %s %s", milc, tpath("ren.mil"), tpath("renamed.milb")), NULL, NULL), 0);
    size_t len;
    char *t = tu_read_file(tpath("ren.mil"), &len);
    cr_assert(t && strstr(t, "@model_path/renamed.weights.bin"));
    free(t);
}
