/* passes/pipeline.c -- the pass manager.  The pipeline is data: a table of
 * named passes in QBE's straight-line order, each with the lowest -O level
 * that runs it (-1 = only when named in --passes) and the targets it applies
 * to.  -O0 = shape inference; -O1 = + cleanup; -O2 = + mm2conv, rmsnorm,
 * attention, sdpa-bwd, a second cleanup and (ane targets) legality.  Taps run
 * whenever --taps is given.
 *
 * Instrumentation: --verify-each runs mil_verify after every pass (an error
 * stops the pipeline), --print-after prints the IR with mil_print to o->out,
 * --stats prints the time of each pass and the op counts per kind that the
 * pass changed, then a before/after table.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "passes/pass_int.h"

enum { T_ANY = 0, T_ANE_ONLY = 1 };

typedef struct PassDef {
    const char *name;
    MilPassFn run;
    int min_level;     /* runs at -O >= min_level; -1 = only by name */
    int targets;       /* T_ANY or T_ANE_ONLY */
    const char *help;
} PassDef;

static int pass_taps_if(MilProgram *p, const MilPassOptions *o, MilDiag *d) { return mil_pass_taps(p, o, d); }

static const PassDef pass_table[] = {
    {"shape", mil_pass_shape, 0, T_ANY, "type and shape inference / checking"},
    {"taps", pass_taps_if, 0, T_ANY, "forward taps: named intermediates become outputs (--taps)"},
    {"cleanup", mil_pass_cleanup, 1, T_ANY, "fold + identity + cse + dce to a fixed point"},
    {"rmsnorm", mil_pass_rmsnorm, 2, T_ANY, "fuse RMSNorm spellings into rms_norm"},
    {"attention", mil_pass_attention, 2, T_ANY, "fuse attention (cpu) / decompose masked SDPA (ane)"},
    {"sdpa-bwd", mil_pass_sdpa_bwd, 2, T_ANY, "fuse the attention-backward subgraph into sdpa_backward"},
    {"mm2conv", mil_pass_mm2conv, 2, T_ANY, "matmul/linear with constant weights -> 1x1 conv"},
    {"cleanup2", mil_pass_cleanup, 2, T_ANY, "cleanup after the lowering"},
    {"legality", mil_pass_legality, 2, T_ANE_ONLY, "ANE legality checks (--target=ane*)"},
    /* only by name */
    {"fold", mil_pass_fold, -1, T_ANY, "constant folding"},
    {"identity", mil_pass_identity, -1, T_ANY, "identity elimination, reshape/transpose merging"},
    {"cse", mil_pass_cse, -1, T_ANY, "common subexpression elimination"},
    {"dce", mil_pass_dce, -1, T_ANY, "dead code elimination"},
    {"layout", mil_pass_layout, -1, T_ANY, "collapse reshape/transpose chains (also run by mm2conv)"},
    {NULL, NULL, 0, 0, NULL},
};

static const char *pass_name_list[sizeof pass_table / sizeof pass_table[0]];

void mil_pass_options_init(MilPassOptions *o) {
    memset(o, 0, sizeof *o);
    o->opt_level = 1;
    o->target = MIL_TARGET_CPU;
}

const char *const *mil_pass_names(void) {
    int n = 0;
    for (const PassDef *pd = pass_table; pd->name; pd++) pass_name_list[n++] = pd->name;
    pass_name_list[n] = NULL;
    return pass_name_list;
}

static const PassDef *find_pass(const char *name, size_t len) {
    for (const PassDef *pd = pass_table; pd->name; pd++)
        if (strlen(pd->name) == len && !strncmp(pd->name, name, len)) return pd;
    return NULL;
}

static bool is_ane(MilTarget t) { return t != MIL_TARGET_CPU; }

/* ------------------------------------------------------------- statistics */

static void count_ops(const MilProgram *p, int *counts) {
    memset(counts, 0, sizeof(int) * (MIL_OP_COUNT + 1));
    for (int i = 0; i < p->nfuncs; i++)
        for (const MilOp *op = p->funcs[i]->body.first; op; op = op->next) {
            counts[op->kind]++;
            counts[MIL_OP_COUNT]++;
        }
}

static const char *kind_name(int k) {
    const MilOpInfo *info = mil_op_info((MilOpKind)k);
    return info ? info->name : "<unknown>";
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_stats(FILE *out, const char *name, double ms, int changed, const int *before, const int *after) {
    fprintf(out, "stats: %-10s %9.3f ms  ops %d -> %d%s\n", name, ms, before[MIL_OP_COUNT], after[MIL_OP_COUNT],
            changed > 0 ? "  (changed)" : "");
    for (int k = 0; k < MIL_OP_COUNT; k++)
        if (before[k] != after[k]) fprintf(out, "stats:     %-28s %d -> %d\n", kind_name(k), before[k], after[k]);
}

/* ------------------------------------------------------ weight-file rule */

bool mil_const_needs_weight_file(const MilConst *c) {
    if (!c || c->kind != MIL_CONST_TENSOR || !c->type) return false;
    MilDType dt = c->type->dtype;
    if (dt != MIL_DT_FP16 && dt != MIL_DT_FP32 && dt != MIL_DT_INT8 && dt != MIL_DT_UINT8) return false;
    return c->count >= MIL_WEIGHT_FILE_MIN_ELEMS;
}

/* The inline constants of a program that fall under the weight-file rule, as
 * a sorted pointer set (constants are arena objects that passes share by
 * pointer and never mutate, so identity tells old from new). */
typedef struct ConstSet {
    const MilConst **v;
    int n, cap;
} ConstSet;

static void cs_add(ConstSet *s, const MilConst *c) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        const MilConst **nv = realloc(s->v, sizeof *nv * (size_t)cap);
        if (!nv) return;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = c;
}

static int ptr_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)*(const MilConst *const *)a, y = (uintptr_t)*(const MilConst *const *)b;
    return x < y ? -1 : x > y;
}

static bool cs_has(const ConstSet *s, const MilConst *c) {
    return s->n && bsearch(&c, s->v, (size_t)s->n, sizeof *s->v, ptr_cmp) != NULL;
}

static void walk_const(const MilConst *c, ConstSet *orig, int *nnew, const char **first, const char *name) {
    if (!c) return;
    if (c->kind == MIL_CONST_LIST || c->kind == MIL_CONST_TUPLE || c->kind == MIL_CONST_DICT) {
        for (int i = 0; i < c->nitems; i++) walk_const(c->items[i], orig, nnew, first, name);
        return;
    }
    if (!mil_const_needs_weight_file(c)) return;
    if (!nnew) {
        cs_add(orig, c);
    } else if (!cs_has(orig, c)) {
        if (!*nnew) *first = name;
        (*nnew)++;
    }
}

/* Collects (nnew == NULL) or checks against `orig` every constant of p. */
static void walk_consts(const MilProgram *p, ConstSet *orig, int *nnew, const char **first) {
    for (int i = 0; i < p->nfuncs; i++)
        for (const MilOp *op = p->funcs[i]->body.first; op; op = op->next) {
            const char *name = op->nresults ? op->results[0]->name : op->opname;
            for (int a = 0; a < op->nargs; a++)
                for (int j = 0; j < op->args[a].n; j++) walk_const(op->args[a].items[j].cst, orig, nnew, first, name);
            for (int a = 0; a < op->nattrs; a++) walk_const(op->attrs[a].val, orig, nnew, first, name);
        }
    if (!nnew && orig->n) qsort(orig->v, (size_t)orig->n, sizeof *orig->v, ptr_cmp);
}

/* ------------------------------------------------------------------ driver */

static int run_one(MilProgram *p, const PassDef *pd, const MilPassOptions *o, MilDiag *d, double *total_ms) {
    int before[MIL_OP_COUNT + 1], after[MIL_OP_COUNT + 1];
    if (o->stats) count_ops(p, before);
    double t0 = now_ms();
    int errs0 = d->nerrors;
    int r = pd->run(p, o, d);
    double ms = now_ms() - t0;
    *total_ms += ms;
    if (o->stats && o->out) {
        count_ops(p, after);
        print_stats(o->out, pd->name, ms, r, before, after);
    }
    if (r < 0 || d->nerrors > errs0) return -1;
    if (o->verify_each && mil_verify(p, d) > 0) {
        mil_error(d, (MilLoc){0}, "the IR does not verify after pass '%s'", pd->name);
        return -1;
    }
    if (o->print_after && o->out && (!strcmp(o->print_after, "all") || !strcmp(o->print_after, pd->name))) {
        fprintf(o->out, "// -----// IR after %s //----- //\n", pd->name);
        mil_print_file(p, MIL_SPELLING_SAME, o->out);
        if (!p->trailing_newline) fputc('\n', o->out);
    }
    return r;
}

int mil_pass_run(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    int errs0 = d->nerrors;
    int first[MIL_OP_COUNT + 1], last[MIL_OP_COUNT + 1];
    double total = 0;
    if (o->stats) count_ops(p, first);
    pass_set_weights_dir(o->weights_dir);
    ConstSet orig = {0};
    walk_consts(p, &orig, NULL, NULL);

    if (o->passes) {
        const char *s = o->passes;
        /* validate every name first */
        for (const char *q = s; *q;) {
            size_t n = strcspn(q, ",");
            if (n && !find_pass(q, n)) {
                mil_error(d, (MilLoc){0}, "unknown pass '%.*s'", (int)n, q);
                free(orig.v);
                return d->nerrors - errs0;
            }
            q += n;
            if (*q == ',') q++;
        }
        for (const char *q = s; *q;) {
            size_t n = strcspn(q, ",");
            const PassDef *pd = n ? find_pass(q, n) : NULL;
            if (pd && run_one(p, pd, o, d, &total) < 0) break;
            q += n;
            if (*q == ',') q++;
        }
    } else {
        for (const PassDef *pd = pass_table; pd->name; pd++) {
            if (pd->min_level < 0 || o->opt_level < pd->min_level) continue;
            if (pd->targets == T_ANE_ONLY && !is_ane(o->target)) continue;
            if (pd->run == pass_taps_if && !o->taps) {
                /* taps also come from a function attribute */
                bool attr = false;
                for (int i = 0; i < p->nfuncs; i++)
                    for (int j = 0; j < p->funcs[i]->nattrs; j++)
                        attr |= !strcmp(p->funcs[i]->attrs[j].name, "taps");
                if (!attr) continue;
            }
            if (run_one(p, pd, o, d, &total) < 0) break;
        }
    }
    {
        MilPassOptions *mo = (MilPassOptions *)o;   /* OUT fields, like taps_json */
        mo->new_weights = 0;
        mo->new_weight_name = NULL;
        walk_consts(p, &orig, &mo->new_weights, &mo->new_weight_name);
        free(orig.v);
    }
    if (o->stats && o->out) {
        count_ops(p, last);
        fprintf(o->out, "stats: total %9.3f ms  ops %d -> %d\n", total, first[MIL_OP_COUNT], last[MIL_OP_COUNT]);
        for (int k = 0; k < MIL_OP_COUNT; k++)
            if (first[k] || last[k]) fprintf(o->out, "stats:   %-30s %6d -> %6d\n", kind_name(k), first[k], last[k]);
    }
    return d->nerrors - errs0;
}
