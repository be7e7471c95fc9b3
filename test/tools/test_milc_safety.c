/* test/tools/test_milc_safety.c -- milc output safety and usage checks:
 * non-regular targets refused, taps sidecar failure leaves nothing behind,
 * --passes / --emit / --check usage errors, .milb on stdin. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char *tmp;
static char *out, *err;

static void setup(void) { tu_fixture_init(&tmp, &out, &err); }
static void teardown(void) { tu_fixture_fini(&tmp, &out, &err); }

TestSuite(milc_safety, .init = setup, .fini = teardown);

#define tp(name) tu_path(tmp, name)
#define run(...) tu_runf(&out, &err, tu_tool("milc"), __VA_ARGS__)

static const char *prog =
    "program(1.3)\n"
    "{\n"
    "    func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {\n"
    "            tensor<fp16, [1, 4, 1, 32]> h = relu(x = x);\n"
    "            tensor<fp16, [1, 4, 1, 32]> y = sigmoid(x = h);\n"
    "        } -> (y);\n"
    "}\n";

static bool exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

Test(milc_safety, refuses_symlink_fifo_dir_and_device_targets) {
    tu_write_text(tp("p.mil"), prog);
    tu_write_text(tp("victim"), "keep");
    cr_assert_eq(symlink(tp("victim"), tp("link.mil")), 0);
    cr_assert_eq(run("-o %s %s", tp("link.mil"), tp("p.mil")), 1);
    cr_assert_str_eq(err, tu_fmt("milc: error: cannot write '%s': not a regular file\n", tp("link.mil")));
    struct stat st;
    cr_assert_eq(lstat(tp("link.mil"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    size_t n;
    char *v = tu_read_file(tp("victim"), &n);
    cr_assert_str_eq(v, "keep");
    free(v);
    cr_assert_eq(mkfifo(tp("fifo"), 0600), 0);
    cr_assert_eq(run("-o %s %s", tp("fifo"), tp("p.mil")), 1);
    cr_assert(strstr(err, "not a regular file"), "%s", err);
    cr_assert_eq(lstat(tp("fifo"), &st), 0);
    cr_assert(S_ISFIFO(st.st_mode));
    cr_assert_eq(mkdir(tp("d.mil"), 0700), 0);
    cr_assert_eq(run("-o %s %s", tp("d.mil"), tp("p.mil")), 1);
    cr_assert(strstr(err, "not a regular file"), "%s", err);
    cr_assert_eq(run("-o /dev/full %s", tp("p.mil")), 1);
    cr_assert_str_eq(err, "milc: error: cannot write '/dev/full': not a regular file\n");
    /* a regular file is still replaced, and -o - is stdout */
    tu_write_text(tp("reg.mil"), "old");
    cr_assert_eq(run("-o %s %s", tp("reg.mil"), tp("p.mil")), 0, "%s", err);
    cr_assert_eq(run("-o - %s", tp("p.mil")), 0, "%s", err);
    cr_assert(strstr(out, "sigmoid"), "%s", out);
}

Test(milc_safety, failed_taps_sidecar_leaves_no_main_output) {
    tu_write_text(tp("p.mil"), prog);
    cr_assert_eq(mkdir(tp("o.mil.taps.json"), 0700), 0);
    cr_assert_eq(run("--passes=taps,cleanup --taps=h -o %s %s", tp("o.mil"), tp("p.mil")), 1);
    cr_assert(strstr(err, "o.mil.taps.json': not a regular file"), "%s", err);
    cr_assert_not(exists(tp("o.mil")));
    rmdir(tp("o.mil.taps.json"));
    cr_assert_eq(run("--passes=taps,cleanup --taps=h -o %s %s", tp("o.mil"), tp("p.mil")), 0, "%s", err);
    cr_assert(exists(tp("o.mil")));
    cr_assert(exists(tp("o.mil.taps.json")));
}

Test(milc_safety, usage_errors) {
    tu_write_text(tp("p.mil"), prog);
    cr_assert_eq(run("--passes=foo %s", tp("p.mil")), 2);
    cr_assert(strstr(err, "milc: error: unknown pass 'foo' in --passes (expected shape, "), "%s", err);
    cr_assert(strstr(err, "cleanup"), "%s", err);
    cr_assert_eq(run("--passes=shape,bar %s", tp("p.mil")), 2);
    cr_assert(strstr(err, "unknown pass 'bar'"), "%s", err);
    cr_assert_eq(run("--passes=shape,cleanup %s", tp("p.mil")), 0, "%s", err);
    cr_assert_eq(run("--emit=milb -o - %s", tp("p.mil")), 2);
    cr_assert(strstr(err, "milc: error: --emit=milb cannot write to stdout"), "%s", err);
    cr_assert_eq(run("--emit=ane-mil -o - %s", tp("p.mil")), 2);
    cr_assert(strstr(err, "milc: error: --emit=ane-mil cannot write to stdout"), "%s", err);
    cr_assert_eq(run("--check --emit=milb -o %s %s", tp("x.milb"), tp("p.mil")), 2);
    cr_assert(strstr(err, "milc: error: --check writes no output"), "%s", err);
    cr_assert_not(exists(tp("x.milb")));
    cr_assert_eq(run("--check %s", tp("p.mil")), 0, "%s", err);
}

Test(milc_safety, milb_on_stdin) {
    tu_write_text(tp("p.mil"), prog);
    cr_assert_eq(run("--emit=milb -o %s %s", tp("p.milb"), tp("p.mil")), 0, "%s", err);
    cr_assert_eq(run("%s", tp("p.milb")), 0, "%s", err);
    char *want = strdup(out);
    cr_assert_eq(run("- < %s", tp("p.milb")), 0, "%s", err);
    cr_assert_str_eq(out, want);
    free(want);
    cr_assert_eq(run("- < %s", tp("p.mil")), 0, "%s", err);
    cr_assert(strstr(out, "sigmoid"), "%s", out);
}
