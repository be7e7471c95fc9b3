/* test/tools/test_bundle.c -- `milc -o NAME.mlmodelc` and `--emit=ane-mil`
 * write their directory atomically: complete on success, absent (or the old
 * one untouched) on failure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

static const char *prog_missing_weight =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp32, [4]> x) {\n"
    "            tensor<fp32, [4]> w = const()[name = string(\"w\"), val = tensor<fp32, [4]>(BLOBFILE(path = "
    "string(\"@model_path/weights/absent.bin\"), offset = uint64(64)))];\n"
    "            tensor<fp32, [4]> y = add(x = x, y = w)[name = string(\"y\")];\n"
    "        } -> (y);\n"
    "}\n";

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

Test(bundle, failure_leaves_nothing_and_keeps_old) {
    char *dir = tu_tmpdir();
    char src[4200], out[4200], cmd[9000], marker[4300];
    snprintf(src, sizeof src, "%s/m.mil", dir);
    tu_write_text(src, prog_missing_weight);
    const char *kinds[] = {"-o %s/out.mlmodelc", "--emit=ane-mil -o %s/out.mlmodelc"};
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/out.mlmodelc", dir);
        char oarg[4300];
        snprintf(oarg, sizeof oarg, kinds[k], dir);
        snprintf(cmd, sizeof cmd, "%s -O0 %s %s", tu_tool("milc"), oarg, src);
        char *err = NULL;
        cr_assert_eq(tu_run(cmd, NULL, &err), 1, "%s", cmd);
        cr_assert(err && strstr(err, "absent.bin"), "%s", err ? err : "");
        free(err);
        cr_assert(!exists(out), "%s left behind by a failed run", out);
        /* an existing bundle survives a failed run untouched */
        snprintf(cmd, sizeof cmd, "mkdir -p %s/weights && echo keep > %s/model.mil", out, out);
        cr_assert_eq(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "%s -O0 %s %s", tu_tool("milc"), oarg, src);
        cr_assert_eq(tu_run(cmd, NULL, NULL), 1);
        snprintf(marker, sizeof marker, "%s/model.mil", out);
        char *kept = tu_read_file(marker, NULL);
        cr_assert(kept && !strcmp(kept, "keep\n"));
        free(kept);
        snprintf(cmd, sizeof cmd, "ls -a %s | grep -c 'tmp\\|old' > /dev/null", dir);
        cr_assert_neq(system(cmd), 0, "staging directories left in %s", dir);
        snprintf(cmd, sizeof cmd, "rm -rf %s", out);
        cr_assert_eq(system(cmd), 0);
    }
    tu_rmrf(dir);
    free(dir);
}

Test(bundle, success_replaces_old_and_runs) {
    char *dir = tu_tmpdir();
    char out[4200], cmd[20000], marker[4300], model[4300];
    snprintf(out, sizeof out, "%s/ffn.mlmodelc", dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/weights && echo old > %s/model.mil && echo old > %s/weights/old.bin && echo '{}' > "
             "%s/taps.json",
             out, out, out, out);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s -O2 -o %s %s", tu_tool("milc"), out, tu_src("examples/mil/ffn_block.mil"));
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0, "%s", cmd);
    snprintf(marker, sizeof marker, "%s/weights/old.bin", out);
    cr_assert(!exists(marker), "the old bundle was not replaced");
    snprintf(model, sizeof model, "%s/model.mil", out);
    cr_assert(exists(model));
    snprintf(model, sizeof model, "%s/weights/weight.bin", out);
    cr_assert(exists(model));
    snprintf(cmd, sizeof cmd, "%s --random-inputs 1 %s", tu_tool("mil-run"), out);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0, "%s", cmd);
    tu_rmrf(dir);
    free(dir);
}

/* A directory that is not a model bundle (user files in it), a file or a
 * symlink at the output path is never replaced: the run fails, nothing moves. */
Test(bundle, refuses_to_replace_non_bundle) {
    char *dir = tu_tmpdir();
    char out[4200], cmd[9000], keep[4300];
    const char *setups[] = {
        "mkdir -p %s/x && echo keep > %s/x/data",                 /* user subdirectory */
        "mkdir -p %s && echo keep > %s/data",                     /* user file */
        "mkdir -p %s/weights && echo keep > %s/weights/data",     /* no model.mil */
        "mkdir -p %s/weights && touch %s/model.mil %s/weights/data", /* weights/ with a non-.bin */
    };
    const char *kept[] = {"x/data", "data", "weights/data", "weights/data"};
    const char *kinds[] = {"-o", "--emit=ane-mil -o"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) {
            snprintf(out, sizeof out, "%s/d.mlmodelc", dir);
            snprintf(cmd, sizeof cmd, setups[i], out, out, out);
            cr_assert_eq(system(cmd), 0);
            snprintf(cmd, sizeof cmd, "%s %s %s %s", tu_tool("milc"), kinds[k], out, tu_src("examples/mil/ffn_block.mil"));
            char *err = NULL;
            cr_assert_eq(tu_run(cmd, NULL, &err), 1, "%s", cmd);
            cr_assert(err && strstr(err, "is not a model directory (remove it first)"), "%s", err ? err : "");
            free(err);
            snprintf(keep, sizeof keep, "%s/%s", out, kept[i]);
            cr_assert(exists(keep), "%s was removed", keep);
            snprintf(cmd, sizeof cmd, "ls -a %s | grep -c 'tmp\\|old' > /dev/null", dir);
            cr_assert_neq(system(cmd), 0, "staging directories left in %s", dir);
            snprintf(cmd, sizeof cmd, "rm -rf %s", out);
            cr_assert_eq(system(cmd), 0);
        }
    /* a symlink to a bundle directory is not followed */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/real/weights && echo keep > %s/real/model.mil && ln -s real %s/d.mlmodelc", dir,
             dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s -o %s/d.mlmodelc %s", tu_tool("milc"), dir, tu_src("examples/mil/ffn_block.mil"));
    char *err = NULL;
    cr_assert_eq(tu_run(cmd, NULL, &err), 1, "%s", cmd);
    cr_assert(err && strstr(err, "symbolic link"), "%s", err ? err : "");
    free(err);
    snprintf(keep, sizeof keep, "%s/real/model.mil", dir);
    char *txt = tu_read_file(keep, NULL);
    cr_assert(txt && !strcmp(txt, "keep\n"));
    free(txt);
    /* a regular file */
    snprintf(keep, sizeof keep, "%s/f.mlmodelc", dir);
    tu_write_text(keep, "keep\n");
    snprintf(cmd, sizeof cmd, "%s -o %s %s", tu_tool("milc"), keep, tu_src("examples/mil/ffn_block.mil"));
    cr_assert_eq(tu_run(cmd, NULL, NULL), 1, "%s", cmd);
    txt = tu_read_file(keep, NULL);
    cr_assert(txt && !strcmp(txt, "keep\n"));
    free(txt);
    tu_rmrf(dir);
    free(dir);
}

/* A constant whose size overflows (or is unknown) is an error: no bundle. */
Test(bundle, const_too_large_is_an_error) {
    char *dir = tu_tmpdir();
    char src[4200], out[4200], cmd[9000];
    snprintf(src, sizeof src, "%s/huge.mil", dir);
    tu_write_text(src, "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [2]> a) {\n"
                       "            tensor<fp16, [9223372036854775807, 9223372036854775807]> c = const()[name = "
                       "string(\"c\"), val = tensor<fp16, [9223372036854775807, 9223372036854775807]>(BLOBFILE(path "
                       "= string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];\n"
                       "            tensor<fp16, [2]> y = add(x = a, y = a)[name = string(\"y\")];\n"
                       "        } -> (y, c);\n}\n");
    const char *kinds[] = {"-o", "--emit=ane-mil -o"};
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/h.mlmodelc", dir);
        snprintf(cmd, sizeof cmd, "%s -O0 %s %s %s", tu_tool("milc"), kinds[k], out, src);
        char *err = NULL;
        cr_assert_eq(tu_run(cmd, NULL, &err), 1, "%s", cmd);
        cr_assert(err && strstr(err, "tensor too large"), "%s", err ? err : "");
        free(err);
        cr_assert(!exists(out), "%s written", out);
    }
    tu_rmrf(dir);
    free(dir);
}
