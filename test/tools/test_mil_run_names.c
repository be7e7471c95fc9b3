/* test/tools/test_mil_run_names.c -- mil-run output files: a forged .milb
 * whose names are not MIL identifiers is rejected by the loader (an output
 * named "/../../x" must not write outside -o DIR), and outputs get the
 * mode 0666 & ~umask rather than mkstemp's 0600. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "ir/milbin.h"
#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp;
static char *out, *err;

static void setup(void) { tu_fixture_init(&tmp, &out, &err); }
static void teardown(void) { tu_fixture_fini(&tmp, &out, &err); }

TestSuite(mil_run_names, .init = setup, .fini = teardown);

#define tp(name) tu_path(tmp, name)
#define run(tool, ...) tu_runf(&out, &err, tu_tool(tool), __VA_ARGS__)

static const char *prog =
    "program(1.3)\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [4]> inp_abc) {\n"
    "            tensor<fp32, [4]> outname_aaaaaaaaaaa = relu(x = inp_abc);\n"
    "        } -> (outname_aaaaaaaaaaa);\n"
    "}\n";

/* Replaces the first FROM (same length as TO) and reseals: content hash and checksum. */
static void forge(const char *src, const char *dst, const char *from, const char *to) {
    size_t n;
    uint8_t *b = (uint8_t *)tu_read_file(src, &n);
    cr_assert(b && n > MILB_MIN_SIZE);
    size_t l = strlen(from);
    cr_assert_eq(strlen(to), l);
    uint8_t *hit = NULL;
    for (size_t i = 0; i + l <= n && !hit; i++)
        if (!memcmp(b + i, from, l)) hit = b + i;
    cr_assert(hit, "'%s' not in %s", from, src);
    memcpy(hit, to, l);
    MilbCursor c = {b + MILB_HEADER_SIZE, b + n - 8, false};
    int ns = b[21];
    uint64_t lens[16];
    int ids[16];
    for (int i = 0; i < ns; i++) {
        uint8_t id;
        cr_assert(milb_get_byte(&c, &id) && milb_get_varint(&c, &lens[i]));
        ids[i] = id;
    }
    size_t start = (size_t)(c.p - b), off = start;
    for (int i = 0; i < ns; i++) {
        if (ids[i] == MILB_SEC_HASH) {
            milb_put_u64(b + off, XXH3_64bits(b + start, off - start));
            break;
        }
        off += lens[i];
    }
    milb_put_u64(b + n - 8, XXH3_64bits(b, n - 8));
    tu_write_file(dst, b, n);
    free(b);
}

static bool exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

Test(mil_run_names, traversal_output_name_rejected) {
    tu_write_text(tp("p.mil"), prog);
    cr_assert_eq(run("milc", "--emit=milb -o %s %s", tp("p.milb"), tp("p.mil")), 0, "%s", err);
    cr_assert_eq(mkdir(tp("a"), 0700), 0);
    cr_assert_eq(mkdir(tp("a/b"), 0700), 0);
    /* the sane file runs */
    cr_assert_eq(run("mil-run", "--random-inputs 1 -o %s %s", tp("a/b/o"), tp("p.milb")), 0, "%s", err);
    cr_assert(exists(tp("a/b/o/outname_aaaaaaaaaaa.npy")));
    /* "/../../QQQ" climbs out of DIR */
    forge(tp("p.milb"), tp("t.milb"), "outname_aaaaaaaaaaa", "/../../../../../QQQ");
    cr_assert_eq(run("mil-run", "--random-inputs 1 -o %s %s", tp("a/b/o2"), tp("t.milb")), 1);
    cr_assert(strstr(err, "bad binary format (CODE: name '/../../../../../QQQ' is not an identifier)"), "%s", err);
    cr_assert_not(exists(tp("QQQ.npy")));
    cr_assert_not(exists(tp("a/QQQ.npy")));
    forge(tp("p.milb"), tp("t2.milb"), "outname_aaaaaaaaaaa", "..outname_aaaaaaaaa");
    cr_assert_eq(run("mil-run", "--random-inputs 1 -o %s %s", tp("a/b/o3"), tp("t2.milb")), 1);
    cr_assert(strstr(err, "is not an identifier"), "%s", err);
    /* an input (parameter) name */
    /* strings are front-coded: "inp_abc" follows "ios17" as "np_abc" */
    forge(tp("p.milb"), tp("t3.milb"), "np_abc", "np/abc");
    cr_assert_eq(run("mil-run", "--random-inputs 1 %s", tp("t3.milb")), 1);
    cr_assert(strstr(err, "bad binary format (FUNCS: name 'inp/abc' is not an identifier)"), "%s", err);
}

Test(mil_run_names, outputs_get_umask_mode) {
    tu_write_text(tp("p.mil"), prog);
    cr_assert_eq(tu_run(tu_fmt("umask 022 && %s --random-inputs 1 -o %s %s", tu_tool("mil-run"), tp("o"), tp("p.mil")),
                        NULL, &err), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(tp("o/outname_aaaaaaaaaaa.npy"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644, "mode %o", st.st_mode & 0777);
    free(err);
    err = NULL;
    cr_assert_eq(tu_run(tu_fmt("umask 027 && %s --random-inputs 1 -o %s %s", tu_tool("mil-run"), tp("o2"), tp("p.mil")),
                        NULL, &err), 0, "%s", err);
    cr_assert_eq(stat(tp("o2/outname_aaaaaaaaaaa.npy"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
}
