/* test/tools/test_embed.c -- the embedding example (examples/embed.c), which
 * links only the runtime library, runs a milc-compiled .milb and gives the
 * same bytes as mil-run on the source program. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* -O0: the .milb run by the runtime-only app must give exactly the bytes of
 * mil-run on the source MIL; -O2: exactly the bytes of mil-run on the same
 * .milb. */
Test(embed, runs_milb_like_source) {
    char *dir = tu_tmpdir();
    cr_assert_not_null(dir);
    char cmd[8192], a[4200], b[4200];
    const char *src = tu_src("examples/mil/ffn_block.mil");
    snprintf(cmd, sizeof cmd, "%s --random-inputs 5 -o %s/ref %s", tu_tool("mil-run"), dir, src);
    tu_run_ok(cmd); /* ref/y.npy has x's shape: use it as the input below */
    snprintf(cmd, sizeof cmd, "%s -i x=%s/ref/y.npy -o %s/src %s", tu_tool("mil-run"), dir, dir, src);
    tu_run_ok(cmd);
    for (int lvl = 0; lvl <= 2; lvl += 2) {
        snprintf(cmd, sizeof cmd, "%s -O%d --emit=milb -o %s/p%d.milb %s", tu_tool("milc"), lvl, dir, lvl, src);
        tu_run_ok(cmd);
        snprintf(cmd, sizeof cmd, "mkdir -p %s/emb%d && %s/examples/embed %s/p%d.milb %s/emb%d x=%s/ref/y.npy",
                 dir, lvl, MILC_BINARY_DIR, dir, lvl, dir, lvl, dir);
        tu_run_ok(cmd);
        snprintf(b, sizeof b, "%s/emb%d/y.npy", dir, lvl);
        if (lvl == 0) {
            snprintf(a, sizeof a, "%s/src/y.npy", dir);
        } else {
            snprintf(cmd, sizeof cmd, "%s -i x=%s/ref/y.npy -o %s/run%d %s/p%d.milb", tu_tool("mil-run"), dir, dir,
                     lvl, dir, lvl);
            tu_run_ok(cmd);
            snprintf(a, sizeof a, "%s/run%d/y.npy", dir, lvl);
        }
        tu_assert_same_file(a, b);
    }
    snprintf(cmd, sizeof cmd, "%s/examples/embed", MILC_BINARY_DIR);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof cmd, "%s/examples/embed %s/nonexistent.milb %s", MILC_BINARY_DIR, dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 1);
    tu_rmrf(dir);
    free(dir);
}
