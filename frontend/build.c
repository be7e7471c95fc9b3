/* frontend/build.c -- grammar actions: IR construction and semantic checks.
 *
 * The parser calls these in source order.  Names live in two hash tables:
 * an intern table (every identifier that becomes an IR name is copied into
 * the arena once) and the current function's symbol table (name -> value,
 * with the definition's location for "previous definition" notes).
 *
 * Literals are a stack machine of FeFrames.  `T(` pushes a VALUE frame for
 * the declared type T; inside it each literal is checked against the type
 * its position expects (slot_type): the value's type at the top, the element
 * type in a list, the i-th member in a tuple, key then value in a dict pair.
 * A tensor literal is one TENSOR frame whatever its rank: `[` and `]` move a
 * depth counter, each level's element count is compared with the declared
 * dim (or, for `?` dims inside aggregates, with the first sibling's count;
 * a rank >= 2 literal whose first item is a scalar is read flat, row-major),
 * and numbers are converted on the spot into a typed buffer.  After the first
 * error inside a literal the frame is marked bad and its remaining content is
 * only walked, so one mistake gives one message.
 */
#include "frontend/fe_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ diagnostics */

MilLoc fe_loc(const FeState *ps, FeLoc l) { return (MilLoc){ ps->file, l.first_line, l.first_column }; }

/* Errors up to ps->maxerr are reported.  The next one is not: it stops the
 * parse (the scanner returns end of input) and leaves a note saying so, so
 * the output never ends silently at the cap. */
static void verror(FeState *ps, MilLoc l, const char *fmt, va_list ap) {
    if (ps->stop) return;
    if (ps->nerr >= ps->maxerr) {
        ps->stop = true;
        mil_diag_report(ps->d, MIL_SEV_NOTE, (MilLoc){ ps->file, 0, 0 }, "too many errors; stopped after %d",
                        ps->nerr);
        return;
    }
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    mil_diag_report(ps->d, MIL_SEV_ERROR, l, "%s", msg);
    ps->nerr++;
}

void fe_error(FeState *ps, FeLoc l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(ps, fe_loc(ps, l), fmt, ap);
    va_end(ap);
}

void fe_error_at(FeState *ps, MilLoc l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(ps, l, fmt, ap);
    va_end(ap);
}

static void note_at(FeState *ps, MilLoc l, const char *fmt, const char *s) {
    if (ps->stop) return;
    mil_diag_report(ps->d, MIL_SEV_NOTE, l, fmt, s);
}

const char *fe_tokdesc(const char *s, int n, char *buf, size_t size) {
    size_t k = 0, lim = size > 8 ? size - 8 : 0;
    if (size < 4) return "";
    buf[k++] = '\'';
    for (int i = 0; i < n && k < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= ' ' && c < 127 && c != '\'') {
            buf[k++] = (char)c;
        } else if (k + 4 < lim) {
            snprintf(buf + k, size - k, "\\x%02x", c);
            k += 4;
        } else {
            break;
        }
        if (k >= lim && i + 1 < n) {
            memcpy(buf + k, "...", 3);
            k += 3;
            break;
        }
    }
    buf[k++] = '\'';
    buf[k] = 0;
    return buf;
}

/* A type in MIL spelling, for messages. */
static void type_str_rec(const FeState *ps, const MilType *t, char *buf, size_t size, size_t *k, int depth) {
#define PUT(...) do { if (*k < size) *k += (size_t)snprintf(buf + *k, size - *k, __VA_ARGS__); } while (0)
    if (!t || depth > 8) {
        PUT("...");
        return;
    }
    switch (t->kind) {
    case MIL_TY_TENSOR:
        if (t->rank == 0 && mil_program_spelling(ps->p) == MIL_SPELLING_1_3) {
            PUT("%s", mil_dtype_name(t->dtype));
            break;
        }
        PUT("tensor<%s, [", mil_dtype_name(t->dtype));
        for (int i = 0; i < t->rank; i++) {
            if (t->dims[i] < 0) PUT("%s?", i ? ", " : "");
            else PUT("%s%lld", i ? ", " : "", (long long)t->dims[i]);
        }
        PUT("]>");
        break;
    case MIL_TY_LIST:
        PUT("list<");
        type_str_rec(ps, t->elem, buf, size, k, depth + 1);
        if (t->len < 0) PUT(", ?>");
        else PUT(", %lld>", (long long)t->len);
        break;
    case MIL_TY_DICT:
        PUT("dict<");
        type_str_rec(ps, t->elem, buf, size, k, depth + 1);
        PUT(", ");
        type_str_rec(ps, t->val, buf, size, k, depth + 1);
        PUT(">");
        break;
    case MIL_TY_TUPLE:
        PUT("tuple<");
        for (int i = 0; i < t->ntypes; i++) {
            if (i) PUT(", ");
            type_str_rec(ps, t->types[i], buf, size, k, depth + 1);
        }
        PUT(">");
        break;
    case MIL_TY_STATE:
        PUT("state<");
        type_str_rec(ps, t->elem, buf, size, k, depth + 1);
        PUT(">");
        break;
    }
#undef PUT
}

static const char *type_str(const FeState *ps, const MilType *t, char *buf, size_t size) {
    size_t k = 0;
    buf[0] = 0;
    type_str_rec(ps, t, buf, size, &k, 0);
    if (k >= size && size > 4) memcpy(buf + size - 4, "...", 4);
    return buf;
}

/* ------------------------------------------------------------ name tables */

static uint64_t hash_n(const char *s, int n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static bool same(const char *a, const char *s, int n) { return strncmp(a, s, (size_t)n) == 0 && a[n] == 0; }

const char *fe_intern(FeState *ps, const char *s, int n) {
    if (!s) return NULL;
    if ((ps->nstrs + 1) * 2 > ps->strcap) {
        size_t ncap = ps->strcap ? ps->strcap * 2 : 64;
        const char **ns = calloc(ncap, sizeof *ns);
        if (!ns) return NULL;
        for (size_t i = 0; i < ps->strcap; i++) {
            const char *x = ps->strs[i];
            if (!x) continue;
            size_t j = (size_t)hash_n(x, (int)strlen(x)) & (ncap - 1);
            while (ns[j]) j = (j + 1) & (ncap - 1);
            ns[j] = x;
        }
        free(ps->strs);
        ps->strs = ns;
        ps->strcap = ncap;
    }
    size_t mask = ps->strcap - 1, i = (size_t)hash_n(s, n) & mask;
    for (; ps->strs[i]; i = (i + 1) & mask)
        if (same(ps->strs[i], s, n)) return ps->strs[i];
    char *c = mil_arena_strndup(&ps->p->arena, s, (size_t)n);
    if (!c) return NULL;
    ps->strs[i] = c;
    ps->nstrs++;
    return c;
}

static FeSym *sym_find(FeState *ps, const char *s, int n) {
    if (!ps->symcap) return NULL;
    size_t mask = ps->symcap - 1;
    for (size_t i = (size_t)hash_n(s, n) & mask; ps->syms[i].name; i = (i + 1) & mask)
        if (same(ps->syms[i].name, s, n)) return &ps->syms[i];
    return NULL;
}

static void sym_add(FeState *ps, const char *name, MilValue *v, MilLoc loc) {
    if (!name) return;
    if ((ps->nsyms + 1) * 2 > ps->symcap) {
        size_t ncap = ps->symcap ? ps->symcap * 2 : 32;
        FeSym *ns = calloc(ncap, sizeof *ns);
        if (!ns) return;
        for (size_t i = 0; i < ps->symcap; i++) {
            if (!ps->syms[i].name) continue;
            size_t j = (size_t)hash_n(ps->syms[i].name, (int)strlen(ps->syms[i].name)) & (ncap - 1);
            while (ns[j].name) j = (j + 1) & (ncap - 1);
            ns[j] = ps->syms[i];
        }
        free(ps->syms);
        ps->syms = ns;
        ps->symcap = ncap;
    }
    int n = (int)strlen(name);
    size_t mask = ps->symcap - 1, i = (size_t)hash_n(name, n) & mask;
    while (ps->syms[i].name) {
        if (ps->syms[i].name == name) { /* redefinition after an error: keep the first */
            return;
        }
        i = (i + 1) & mask;
    }
    ps->syms[i] = (FeSym){ name, v, loc };
    ps->nsyms++;
}

static void sym_clear(FeState *ps) {
    if (ps->syms) memset(ps->syms, 0, ps->symcap * sizeof *ps->syms);
    ps->nsyms = 0;
}

/* `name` must not be defined yet in this function (nor among the pending
 * results of this statement).  Reports and returns false otherwise. */
static bool check_new_name(FeState *ps, FeTok name, FeLoc l) {
    const FeSym *s = sym_find(ps, name.s, name.n);
    MilLoc prev = { 0 };
    bool dup = false;
    if (s) {
        dup = true;
        prev = s->loc;
    } else {
        for (int i = 0; i < ps->nres; i++)
            if (ps->res[i].name && same(ps->res[i].name, name.s, name.n)) {
                dup = true;
                prev = ps->res[i].loc;
                break;
            }
    }
    if (!dup) return true;
    fe_error(ps, l, "duplicate definition of '%.*s'", name.n, name.s);
    if (prev.line) note_at(ps, prev, "previous definition of '%s' is here", fe_intern(ps, name.s, name.n));
    return false;
}

/* -------------------------------------------------------------- structure */

/* Known versions: `1` (third-party dumps) and `1.` followed by digits
 * (1.0, 1.3, ...).  Anything else is kept as written but warned about: a
 * future file should still be read. */
void fe_version(FeState *ps, FeTok v, FeLoc l) {
    const char *s = mil_arena_strndup(&ps->p->arena, v.s, (size_t)v.n);
    if (s) ps->p->version = s;
    bool known = v.n >= 1 && v.s[0] == '1';
    if (known && v.n > 1) {
        known = v.n > 2 && v.s[1] == '.';
        for (int i = 2; known && i < v.n; i++) known = v.s[i] >= '0' && v.s[i] <= '9';
    }
    if (!known && !ps->stop)
        mil_diag_report(ps->d, MIL_SEV_WARNING, fe_loc(ps, l), "unknown program version %.*s (expected 1.0 or 1.3)",
                        v.n, v.s);
}

void fe_func_begin(FeState *ps, FeTok name, FeLoc l, FeTok opset) {
    fe_stmt_reset(ps);
    sym_clear(ps);
    ps->in_nested = 0;
    ps->nested_reported = false;
    const char *nm = fe_intern(ps, name.s, name.n);
    if (nm && mil_program_find_func(ps->p, nm)) fe_error(ps, l, "duplicate function '%s'", nm);
    bool later = ps->p->nfuncs > 0;
    ps->f = nm ? mil_func_new(ps->p, nm, fe_intern(ps, opset.s, opset.n)) : NULL;
    if (!ps->f) return;
    ps->f->loc = fe_loc(ps, l);
    /* An empty line (only blanks on it) right before `func` is kept for the
     * printer; coremlc 3600 writes none, older versions one. */
    int nl = 0;
    for (size_t i = ps->func_off; later && i > 0 && nl < 2; i--) {
        char c = ps->text[i - 1];
        if (c == '\n') nl++;
        else if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') break;
    }
    ps->f->blank_before = nl >= 2;
}

void fe_param(FeState *ps, FeType t, FeTok name, FeLoc l) {
    if (!check_new_name(ps, name, l)) return;
    const char *nm = fe_intern(ps, name.s, name.n);
    if (t.t && t.t->kind == MIL_TY_STATE) t.qline = 0;
    MilValue *v = (t.t && ps->f && nm) ? mil_func_add_param(ps->f, t.t, nm) : NULL;
    sym_add(ps, nm, v, fe_loc(ps, l));
}

static MilValue *lookup(FeState *ps, FeTok name, FeLoc l, bool *ok) {
    *ok = true;
    if (ps->in_nested) {
        *ok = false;
        return NULL;
    }
    const FeSym *s = sym_find(ps, name.s, name.n);
    if (!s) {
        fe_error(ps, l, "use of undefined value '%.*s'", name.n, name.s);
        *ok = false;
        return NULL;
    }
    if (!s->v) *ok = false;
    return s->v;
}

void fe_output(FeState *ps, FeTok name, FeLoc l) {
    if (ps->in_nested) return;
    bool ok;
    MilValue *v = lookup(ps, name, l, &ok);
    if (ok && v && ps->f) mil_func_add_output(ps->f, v);
}

void fe_block_end(FeState *ps, FeLoc arrow) {
    if (ps->f && !ps->in_nested) ps->f->body.outs_loc = fe_loc(ps, arrow);
}

void fe_op_begin(FeState *ps, FeTok name, FeLoc l, FeTok opset, bool has_opset) {
    ps->op = NULL;
    if (ps->in_nested || !ps->f) return;
    MilOpKind k = mil_op_lookup(name.s, (size_t)name.n);
    if (k == MIL_OP_UNKNOWN && !ps->opt.allow_unknown_ops)
        fe_error(ps, l, "unknown op '%.*s'", name.n, name.s);
    const char *nm = fe_intern(ps, name.s, name.n);
    MilOp *op = mil_op_new(ps->f, k, k == MIL_OP_UNKNOWN ? nm : NULL);
    if (!op) return;
    op->loc = fe_loc(ps, l);
    if (has_opset) op->opset = fe_intern(ps, opset.s, opset.n);
    ps->op = op;
}

void fe_result(FeState *ps, FeType t, FeTok name, FeLoc l) {
    if (ps->in_nested) return;
    bool fresh = check_new_name(ps, name, l);
    if (ps->nres == ps->capres) {
        int ncap = ps->capres ? ps->capres * 2 : 8;
        FeRes *nr = realloc(ps->res, (size_t)ncap * sizeof *nr);
        if (!nr) return;
        ps->res = nr;
        ps->capres = ncap;
    }
    if (t.t && t.t->kind == MIL_TY_STATE)
        fe_error(ps, l, "an op result cannot have a state type (states are function inputs)");
    ps->res[ps->nres++] = (FeRes){ t.t, fresh ? fe_intern(ps, name.s, name.n) : NULL, fe_loc(ps, l) };
}

void fe_stmt_end(FeState *ps) {
    if (ps->in_nested) return;
    MilOp *op = ps->op;
    for (int i = 0; i < ps->nres; i++) {
        FeRes *r = &ps->res[i];
        MilValue *v = (op && r->t && r->name) ? mil_op_add_result(op, r->t, r->name) : NULL;
        sym_add(ps, r->name, v, r->loc);
    }
    if (op && ps->f) mil_block_append(&ps->f->body, op);
    ps->nres = 0;
    ps->op = NULL;
    ps->quiet_syntax = false;
}

void fe_stmt_reset(FeState *ps) {
    ps->nres = 0;
    ps->op = NULL;
    ps->nvb = 0;
    ps->ntys = 0;
    ps->quiet_syntax = false;
    fe_lit_reset(ps);
}

void fe_stmt_error(FeState *ps) {
    /* Define the results of the broken statement, so later uses don't cascade. */
    if (!ps->in_nested)
        for (int i = 0; i < ps->nres; i++) sym_add(ps, ps->res[i].name, NULL, ps->res[i].loc);
    fe_stmt_reset(ps);
}

void fe_paren_results(FeState *ps, FeLoc l, char open) {
    if (open == '(')
        fe_error(ps, l, "results must not be parenthesised: write 'T a, T b = op(...)', not '(T a, T b) = op(...)'");
    else
        fe_error(ps, l, "results must not be bracketed: write 'T a, T b = op(...)', not '[T a, T b] = op(...)'");
    /* Define the names anyway, so later uses don't cascade. */
    for (int i = 0; i < ps->nres; i++) sym_add(ps, ps->res[i].name, NULL, ps->res[i].loc);
    fe_stmt_reset(ps);
}

void fe_nested_begin(FeState *ps, FeLoc l) {
    if (!ps->in_nested)
        fe_error(ps, l, "control flow (nested blocks) is not supported");
    ps->in_nested++;
}

void fe_nested_end(FeState *ps) {
    if (ps->in_nested > 0) ps->in_nested--;
}

MilBinding fe_ref(FeState *ps, FeTok name, FeLoc l) {
    bool ok;
    MilValue *v = lookup(ps, name, l, &ok);
    if (!ok) ps->vb_bad = true;
    return (MilBinding){ v, NULL };
}

/* Reports a second argument or attribute with the same name. */
static bool dup_arg(FeState *ps, const MilOp *op, FeTok name, FeLoc l) {
    for (int i = 0; i < op->nargs; i++)
        if (same(op->args[i].name, name.s, name.n)) {
            fe_error(ps, l, "duplicate argument '%.*s'", name.n, name.s);
            return true;
        }
    return false;
}

void fe_arg(FeState *ps, FeTok name, FeLoc l, MilBinding b) {
    MilOp *op = ps->op;
    if (!op || dup_arg(ps, op, name, l) || (!b.value && !b.cst)) return;
    const char *nm = fe_intern(ps, name.s, name.n);
    int n = op->nargs;
    if (b.value) mil_op_add_arg(op, nm, b.value);
    else mil_op_add_arg_const(op, nm, b.cst);
    if (op->nargs > n) op->args[n].loc = fe_loc(ps, l);
}

void fe_vb_reset(FeState *ps) {
    ps->nvb = 0;
    ps->vb_bad = false;
}

void fe_vb_push(FeState *ps, MilBinding b) {
    if (!b.value && !b.cst) {
        ps->vb_bad = true;
        return;
    }
    if (ps->nvb == ps->capvb) {
        int ncap = ps->capvb ? ps->capvb * 2 : 16;
        MilBinding *nv = realloc(ps->vb, (size_t)ncap * sizeof *nv);
        if (!nv) {
            ps->vb_bad = true;
            return;
        }
        ps->vb = nv;
        ps->capvb = ncap;
    }
    ps->vb[ps->nvb++] = b;
}

void fe_arg_tuple(FeState *ps, FeTok name, FeLoc l) {
    MilOp *op = ps->op;
    if (!op || dup_arg(ps, op, name, l) || ps->vb_bad) return;
    int n = op->nargs;
    mil_op_add_arg_tuple(op, fe_intern(ps, name.s, name.n), ps->nvb, ps->vb);
    if (op->nargs > n) op->args[n].loc = fe_loc(ps, l);
}

static void set_attr_loc(MilAttr *a, int n, const char *name, MilLoc loc) {
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].name, name) == 0) a[i].loc = loc;
}

void fe_attr(FeState *ps, FeTok name, FeLoc l, MilConst *c) {
    MilAttr *v = NULL;
    int n = 0;
    switch (ps->attr_target) {
    case ATTR_PROGRAM: v = ps->p->attrs; n = ps->p->nattrs; break;
    case ATTR_FUNC: if (!ps->f || ps->in_nested) return; v = ps->f->attrs; n = ps->f->nattrs; break;
    case ATTR_OP: if (!ps->op) return; v = ps->op->attrs; n = ps->op->nattrs; break;
    default: return;
    }
    for (int i = 0; i < n; i++)
        if (same(v[i].name, name.s, name.n)) {
            fe_error(ps, l, "duplicate attribute '%.*s'", name.n, name.s);
            return;
        }
    if (!c) return;
    const char *nm = fe_intern(ps, name.s, name.n);
    if (!nm) return;
    switch (ps->attr_target) {
    case ATTR_PROGRAM:
        mil_program_set_attr(ps->p, nm, c);
        set_attr_loc(ps->p->attrs, ps->p->nattrs, nm, fe_loc(ps, l));
        break;
    case ATTR_FUNC:
        mil_func_set_attr(ps->f, nm, c);
        set_attr_loc(ps->f->attrs, ps->f->nattrs, nm, fe_loc(ps, l));
        break;
    case ATTR_OP:
        mil_op_set_attr(ps->op, nm, c);
        set_attr_loc(ps->op->attrs, ps->op->nattrs, nm, fe_loc(ps, l));
        break;
    }
}

/* ------------------------------------------------------------------ types */

MilDType fe_bad_dtype(FeState *ps, FeTok t, FeLoc l) {
    fe_error(ps, l, "unknown dtype '%.*s'", t.n, t.s);
    return MIL_DT_NONE;
}

FeType fe_ty_scalar(FeState *ps, MilDType dt) {
    if (ps->p->written == MIL_SPELLING_SAME) ps->p->written = MIL_SPELLING_1_3;  /* bare scalar: 1.3 style */
    return (FeType){ mil_type_scalar(ps->p, dt), 0, 0 };
}

void fe_dims_reset(FeState *ps) {
    ps->ndims = 0;
    ps->dims_bad = false;
    ps->qline = ps->qcol = 0;
}

void fe_dim(FeState *ps, FeTok t, FeLoc l, int kind) {
    if (ps->dims_bad) return;
    if (ps->ndims >= MIL_MAX_RANK) {
        fe_error(ps, l, "tensor rank exceeds %d", MIL_MAX_RANK);
        ps->dims_bad = true;
        return;
    }
    int64_t d = MIL_DIM_UNKNOWN;
    if (kind == 'i') {
        bool neg;
        uint64_t mag;
        if (!fe_parse_u64(t.s, t.n, &neg, &mag) || mag > (uint64_t)INT64_MAX) {
            fe_error(ps, l, "dimension %.*s is too large", t.n, t.s);
            ps->dims_bad = true;
            return;
        }
        if (neg && mag) {
            fe_error(ps, l, "negative dimension %.*s", t.n, t.s);
            ps->dims_bad = true;
            return;
        }
        d = (int64_t)mag;
    } else if (!ps->qline) {
        ps->qline = l.first_line;
        ps->qcol = l.first_column;
    }
    ps->dims[ps->ndims++] = d;
}

FeType fe_ty_tensor(FeState *ps, MilDType dt, FeLoc l) {
    (void)l;
    FeType r = { NULL, ps->qline, ps->qcol };
    if (ps->dims_bad || dt == MIL_DT_NONE) return r;
    if (ps->ndims == 0 && ps->p->written == MIL_SPELLING_SAME) ps->p->written = MIL_SPELLING_1_0; /* tensor<T, []> */
    r.t = mil_type_tensor(ps->p, dt, ps->ndims, ps->dims);
    return r;
}

int64_t fe_list_len(FeState *ps, FeTok t, FeLoc l) {
    bool neg;
    uint64_t mag;
    if (!fe_parse_u64(t.s, t.n, &neg, &mag) || mag > (uint64_t)INT64_MAX || (neg && mag)) {
        fe_error(ps, l, "bad list length %.*s", t.n, t.s);
        return -2;
    }
    return (int64_t)mag;
}

FeType fe_ty_list(FeState *ps, FeType elem, int64_t len) {
    FeType r = { NULL, 0, 0 };
    if (elem.t && len >= -1) r.t = mil_type_list(ps->p, elem.t, len);
    return r;
}

FeType fe_ty_dict(FeState *ps, FeType k, FeType v) {
    FeType r = { NULL, 0, 0 };
    if (k.t && v.t) r.t = mil_type_dict(ps->p, k.t, v.t);
    return r;
}

int fe_tys_mark(FeState *ps) { return ps->ntys; }

void fe_tys_push(FeState *ps, FeType t) {
    if (ps->ntys == ps->captys) {
        int ncap = ps->captys ? ps->captys * 2 : 16;
        const MilType **nt = realloc(ps->tys, (size_t)ncap * sizeof *nt);
        if (!nt) return;
        ps->tys = nt;
        ps->captys = ncap;
    }
    ps->tys[ps->ntys++] = t.t;
}

FeType fe_ty_tuple(FeState *ps, int mark) {
    FeType r = { NULL, 0, 0 };
    if (mark < 0 || mark > ps->ntys) mark = ps->ntys;
    int n = ps->ntys - mark;
    bool ok = true;
    for (int i = mark; i < ps->ntys; i++)
        if (!ps->tys[i]) ok = false;
    if (ok) r.t = mil_type_tuple(ps->p, n, ps->tys + mark);
    ps->ntys = mark;
    return r;
}

FeType fe_ty_state(FeState *ps, FeType t, FeLoc l) {
    FeType r = { NULL, 0, 0 };
    if (!t.t) return r;
    if (t.t->kind != MIL_TY_TENSOR) {
        fe_error(ps, l, "state<...> must wrap a tensor type");
        return r;
    }
    r.t = mil_type_state(ps->p, t.t);
    return r;
}

FeType fe_ty_buffer(FeState *ps, FeLoc l) {
    fe_error(ps, l, "tensor_buffer types are not supported (they occur only in ANE compiler dumps)");
    return (FeType){ NULL, 0, 0 };
}

/* --------------------------------------------------------------- literals */

static FeFrame *frame(FeState *ps, int i) { return &ps->frblk[i / FE_FRAME_BLOCK][i % FE_FRAME_BLOCK]; }
static FeFrame *top(FeState *ps) { return ps->nfr ? frame(ps, ps->nfr - 1) : NULL; }

static FeFrame *push(FeState *ps, int kind, const MilType *t, FeLoc l) {
    if (ps->nfr >= FE_MAX_FRAMES) {
        fe_error(ps, l, "literal nested too deeply");
        ps->stop = true;
        return NULL;
    }
    FeFrame **blk = &ps->frblk[ps->nfr / FE_FRAME_BLOCK];
    if (!*blk && !(*blk = calloc(FE_FRAME_BLOCK, sizeof **blk))) {
        fe_error(ps, l, "out of memory");
        ps->stop = true;
        return NULL;
    }
    FeFrame *f = frame(ps, ps->nfr++);
    f->kind = kind;
    f->type = t;
    f->loc = fe_loc(ps, l);
    f->bad = f->filled = f->top = f->flat = false;
    f->result = NULL;
    f->items = NULL;
    f->nitems = f->capitems = 0;
    f->buf = NULL;
    f->cap = 0;
    f->count = 0;
    f->depth = f->rank = 0;
    return f;
}

static void pop(FeState *ps) {
    FeFrame *f = top(ps);
    if (!f) return;
    free(f->buf);
    free(f->items);
    f->buf = NULL;
    f->items = NULL;
    ps->nfr--;
}

void fe_lit_reset(FeState *ps) {
    while (ps->nfr) pop(ps);
}

static void add_item(FeFrame *f, MilConst *c) {
    if (f->nitems == f->capitems) {
        int ncap = f->capitems ? f->capitems * 2 : 8;
        MilConst **ni = realloc(f->items, (size_t)ncap * sizeof *ni);
        if (!ni) {
            f->bad = true;
            return;
        }
        f->items = ni;
        f->capitems = ncap;
    }
    f->items[f->nitems++] = c;
}

/* Hands a finished literal (NULL = bad) to the frame below. */
static void put(FeState *ps, MilConst *c) {
    FeFrame *f = top(ps);
    if (!f || f->kind == FR_SKIP) return;
    if (!c) {
        f->bad = true;
        return;
    }
    switch (f->kind) {
    case FR_VALUE: f->result = c; break;
    case FR_LIST: case FR_TUPLE: case FR_PAIR: add_item(f, c); break;
    default: f->bad = true; break;
    }
}

/* The type the next literal in frame f must have; NULL if unknown (an error
 * was already reported). */
static const MilType *slot_type(FeState *ps, FeLoc l) {
    FeFrame *f = top(ps);
    if (!f || f->bad || !f->type) return NULL;
    const MilType *t = f->type;
    switch (f->kind) {
    case FR_VALUE: return t;
    case FR_LIST: return t->elem;
    case FR_TUPLE:
        if (f->nitems < t->ntypes) return t->types[f->nitems];
        {
            char tb[256];
            fe_error(ps, l, "too many elements in tuple literal: type %s has %d", type_str(ps, t, tb, sizeof tb),
                     t->ntypes);
        }
        f->bad = true;
        return NULL;
    case FR_PAIR: return f->nitems == 0 ? t->elem : t->val;
    default: return NULL;
    }
}

static const char *kind_literal(const MilType *t) {
    switch (t->kind) {
    case MIL_TY_TENSOR: return t->rank ? "a tensor literal '[...]'" : "a scalar";
    case MIL_TY_LIST: return "a list literal '[...]'";
    case MIL_TY_DICT: return "a dict literal '{...}'";
    case MIL_TY_TUPLE: return "a tuple literal '(...)'";
    case MIL_TY_STATE: return "no literal (state)";
    }
    return "a literal";
}

static const char *scalar_desc(int kind, FeTok t, char *buf, size_t size) {
    char tb[48];
    fe_tokdesc(t.s, t.n, tb, sizeof tb);
    switch (kind) {
    case LK_STR: snprintf(buf, size, "string %s", tb); break;
    case LK_IDENT: snprintf(buf, size, "identifier %s", tb); break;
    case LK_INT: case LK_FLOAT: snprintf(buf, size, "number %s", tb); break;
    default: snprintf(buf, size, "%s", tb); break;
    }
    return buf;
}

/* Converts one scalar token into a storage cell of dtype dt. */
static bool conv_elem(FeState *ps, MilDType dt, int kind, FeTok t, FeLoc l, void *cell) {
    char fb[96];
    int special = 0; /* 1 inf, 2 nan */
    if (kind == LK_IDENT) {
        if (t.n == 3 && memcmp(t.s, "inf", 3) == 0) special = 1;
        else if (t.n == 3 && memcmp(t.s, "nan", 3) == 0) special = 2;
        else {
            fe_error(ps, l, "expected a literal, found %s", scalar_desc(kind, t, fb, sizeof fb));
            return false;
        }
    }
    if (dt == MIL_DT_STRING) {
        if (kind != LK_STR) {
            fe_error(ps, l, "expected a string literal for string, found %s", scalar_desc(kind, t, fb, sizeof fb));
            return false;
        }
        *(const char **)cell = t.str ? t.str : "";
        return true;
    }
    if (dt == MIL_DT_BOOL) {
        if (kind != LK_TRUE && kind != LK_FALSE) {
            fe_error(ps, l, "expected true or false for bool, found %s", scalar_desc(kind, t, fb, sizeof fb));
            return false;
        }
        *(uint8_t *)cell = kind == LK_TRUE;
        return true;
    }
    if (mil_dtype_is_int(dt)) {
        if (kind != LK_INT) {
            fe_error(ps, l, "expected an integer literal for %s, found %s", mil_dtype_name(dt),
                     scalar_desc(kind, t, fb, sizeof fb));
            return false;
        }
        bool neg;
        uint64_t mag;
        int bits = mil_dtype_bits(dt);
        bool ok = fe_parse_u64(t.s, t.n, &neg, &mag);
        if (ok) {
            if (mil_dtype_is_signed(dt)) {
                uint64_t lim = 1ull << (bits - 1);   /* |min|; max = lim - 1 */
                ok = neg ? mag <= lim : mag < lim;
            } else {
                ok = (!neg || mag == 0) && (bits >= 64 || mag < (1ull << bits));
            }
        }
        if (!ok) {
            fe_error(ps, l, "integer literal %.*s is out of range for %s", t.n, t.s, mil_dtype_name(dt));
            return false;
        }
        int64_t v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        switch (dt) {
        case MIL_DT_INT8: case MIL_DT_INT4: *(int8_t *)cell = (int8_t)v; break;
        case MIL_DT_INT16: *(int16_t *)cell = (int16_t)v; break;
        case MIL_DT_INT32: *(int32_t *)cell = (int32_t)v; break;
        case MIL_DT_INT64: *(int64_t *)cell = v; break;
        case MIL_DT_UINT16: *(uint16_t *)cell = (uint16_t)mag; break;
        case MIL_DT_UINT32: *(uint32_t *)cell = (uint32_t)mag; break;
        case MIL_DT_UINT64: *(uint64_t *)cell = mag; break;
        default: *(uint8_t *)cell = (uint8_t)mag; break;   /* uint8 and the sub-byte uints */
        }
        return true;
    }
    if (mil_dtype_is_float(dt)) {
        double d;
        const char *s = NULL;
        int n = 0;
        if (kind == LK_INT || kind == LK_FLOAT) {
            d = fe_strtod(t.s, t.n);
            s = t.s;
            n = t.n;
        } else if (kind == LK_NEGINF) {
            d = -INFINITY;
        } else if (special == 1) {
            d = INFINITY;
        } else if (special == 2) {
            d = NAN;
        } else {
            fe_error(ps, l, "expected a number for %s, found %s", mil_dtype_name(dt), scalar_desc(kind, t, fb, sizeof fb));
            return false;
        }
        if (!fe_store_float(dt, d, s, n, cell)) {
            fe_error(ps, l, "value %.*s is out of range for %s", t.n, t.s, mil_dtype_name(dt));
            return false;
        }
        return true;
    }
    fe_error(ps, l, "no literal values for dtype %s", mil_dtype_name(dt));
    return false;
}

void fe_lit_begin(FeState *ps, FeType t, FeLoc l) {
    FeFrame *f = push(ps, FR_VALUE, t.t, l);
    if (!f) return;
    if (!t.t) {
        f->bad = true;
        return;
    }
    if (t.t->kind == MIL_TY_TENSOR && t.qline) {
        fe_error_at(ps, (MilLoc){ ps->file, t.qline, t.qcol },
                    "unknown dimension in the type of a literal value (literal types need every dim)");
        f->bad = true;
    } else if (t.t->kind == MIL_TY_STATE) {
        fe_error(ps, l, "a state type has no literal values");
        f->bad = true;
    }
}

MilConst *fe_lit_end(FeState *ps) {
    FeFrame *f = top(ps);
    if (!f) return NULL;
    if (f->kind != FR_VALUE) { /* cannot happen with a consistent grammar */
        fe_lit_reset(ps);
        return NULL;
    }
    MilConst *c = NULL;
    if (!f->bad) {
        if (f->result) c = f->result;
        else if (!f->filled) c = mil_const_aggregate(ps->p, MIL_CONST_EMPTY, f->type, 0, NULL);
    }
    pop(ps);
    return c;
}

/* BLOBFILE(path = string(...), offset = uint64(...)): the arguments come one
 * by one into the VALUE frame; every argument error is reported at the
 * BLOBFILE keyword, one per literal. */
void fe_blob_begin(FeState *ps, FeLoc kw) {
    FeFrame *f = top(ps);
    if (!f || f->kind != FR_VALUE) return;
    f->filled = true;
    f->bkw = kw;
    f->bpath = f->boff = NULL;
    f->bhas_path = f->bhas_off = false;
}

void fe_blob_arg(FeState *ps, FeTok key, FeLoc l, MilConst *v) {
    FeFrame *f = top(ps);
    if (!f || f->kind != FR_VALUE || f->bad) return;
    bool is_path = key.n == 4 && memcmp(key.s, "path", 4) == 0;
    bool is_off = key.n == 6 && memcmp(key.s, "offset", 6) == 0;
    if (!is_path && !is_off) {
        fe_error(ps, f->bkw, "unknown BLOBFILE argument '%.*s' (expected 'path' and 'offset')", key.n, key.s);
        f->bad = true;
        return;
    }
    if (is_path ? f->bhas_path : f->bhas_off) {
        fe_error(ps, f->bkw, "duplicate BLOBFILE argument '%.*s'", key.n, key.s);
        f->bad = true;
        return;
    }
    if (!v) { /* the error inside the value was reported */
        f->bad = true;
        return;
    }
    if (is_path) {
        f->bhas_path = true;
        f->bpath = v;
        f->bpath_loc = l;
    } else {
        f->bhas_off = true;
        f->boff = v;
        f->boff_loc = l;
    }
}

void fe_lit_blob(FeState *ps) {
    FeFrame *f = top(ps);
    if (!f || f->kind != FR_VALUE || f->bad) return;
    char tb[256];
    if (f->type->kind != MIL_TY_TENSOR) {
        fe_error(ps, f->bkw, "BLOBFILE needs a tensor type, not %s", type_str(ps, f->type, tb, sizeof tb));
        f->bad = true;
        return;
    }
    if (!f->bhas_path || !f->bhas_off) {
        fe_error(ps, f->bkw, "BLOBFILE needs %s argument", f->bhas_path ? "an 'offset'" : "a 'path'");
        f->bad = true;
        return;
    }
    MilConst *pv = f->bpath, *ov = f->boff;
    FeLoc pl = f->bpath_loc, ol = f->boff_loc;
    const char *path = mil_const_get_str(pv);
    if (!path) {
        fe_error(ps, pl, "BLOBFILE path must be a string");
        f->bad = true;
        return;
    }
    if (ov->kind != MIL_CONST_TENSOR || ov->type->rank != 0 || ov->type->dtype != MIL_DT_UINT64) {
        fe_error(ps, ol, "BLOBFILE offset must be a uint64 scalar");
        f->bad = true;
        return;
    }
    f->result = mil_const_blob(ps->p, f->type, path, *(const uint64_t *)ov->data);
    if (!f->result) f->bad = true;
}

/* Starts a tensor literal at its outermost `[`. */
static void tensor_begin(FeState *ps, const MilType *t, FeLoc l, bool is_top) {
    FeFrame *f = push(ps, FR_TENSOR, t, l);
    if (!f) return;
    f->top = is_top;
    f->dt = t->dtype;
    f->rank = t->rank;
    f->esz = mil_dtype_storage_size(t->dtype);
    f->depth = 1;
    f->seen[0] = 0;
    f->oloc[0] = fe_loc(ps, l);
    for (int i = 0; i < t->rank; i++) f->want[i] = t->dims[i] < 0 ? -1 : t->dims[i];
    if (f->esz == 0) {
        fe_error(ps, l, "no literal values for dtype %s", mil_dtype_name(t->dtype));
        f->bad = true;
        return;
    }
    /* Reserve the whole tensor up front when its size is plausible: every
     * element takes at least two bytes of text. */
    int64_t n = mil_type_numel(t);
    if (n > 0 && (uint64_t)n <= ps->len / 2 + 1) {
        f->buf = malloc((size_t)n * f->esz);
        if (f->buf) f->cap = (size_t)n;
    }
}

static void tensor_open(FeState *ps, FeFrame *f, FeLoc l) {
    int d = f->depth++;
    if (f->bad) return;
    if (d >= f->rank || f->flat) {
        char tb[256];
        if (f->flat)
            fe_error(ps, l, "'[' inside a flat tensor literal (type %s): write one level or nest by the rank",
                     type_str(ps, f->type, tb, sizeof tb));
        else
            fe_error(ps, l, "tensor literal is nested deeper than the rank %d of %s", f->rank,
                     type_str(ps, f->type, tb, sizeof tb));
        f->bad = true;
        return;
    }
    f->seen[d - 1]++;
    f->seen[d] = 0;
    f->oloc[d] = fe_loc(ps, l);
}

static void tensor_elem(FeState *ps, FeFrame *f, int kind, FeTok t, FeLoc l) {
    if (f->bad) return;
    /* A rank >= 2 tensor written as one flat list (hand-written files; Apple's
     * tooling reads them): taken in row-major order when its first item is a
     * scalar and every dim is known; the count is checked at the `]`. */
    if (f->depth == 1 && f->rank >= 2 && f->count == 0 && f->seen[0] == 0 && !mil_type_has_unknown(f->type))
        f->flat = true;
    if (f->depth < f->rank && !f->flat) {
        char tb[256];
        fe_error(ps, l, "expected '[': tensor literal nesting must match the rank %d of %s", f->rank,
                 type_str(ps, f->type, tb, sizeof tb));
        f->bad = true;
        return;
    }
    if ((size_t)f->count == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 64;
        unsigned char *nb = realloc(f->buf, ncap * f->esz);
        if (!nb) {
            fe_error(ps, l, "out of memory");
            f->bad = true;
            return;
        }
        f->buf = nb;
        f->cap = ncap;
    }
    if (!conv_elem(ps, f->dt, kind, t, l, f->buf + (size_t)f->count * f->esz)) {
        f->bad = true;
        return;
    }
    f->seen[f->depth - 1]++;
    f->count++;
}

static void tensor_close(FeState *ps, FeFrame *f) {
    int d = --f->depth;
    if (!f->bad && f->flat) {
        char tb[256];
        int64_t want = mil_type_numel(f->type);
        if (f->count != want) {
            fe_error_at(ps, f->oloc[0], "flat tensor literal has %lld elements, expected %lld (type %s)",
                        (long long)f->count, (long long)want, type_str(ps, f->type, tb, sizeof tb));
            f->bad = true;
        } else if (!ps->stop) {
            mil_diag_report(ps->d, MIL_SEV_WARNING, f->oloc[0], "flat literal for a rank-%d tensor read in row-major order",
                            f->rank);
        }
    } else if (!f->bad && d < f->rank) {
        int64_t n = f->seen[d];
        if (f->want[d] < 0) {
            f->want[d] = n;
        } else if (n != f->want[d]) {
            char tb[256];
            fe_error_at(ps, f->oloc[d], "tensor literal has %lld elements in dimension %d, expected %lld (type %s)",
                        (long long)n, d, (long long)f->want[d], type_str(ps, f->type, tb, sizeof tb));
            f->bad = true;
        }
    }
    if (f->depth > 0) return;
    MilConst *c = NULL;
    if (!f->bad) {
        const MilType *t = f->type;
        if (mil_type_has_unknown(t)) {
            int64_t dims[MIL_MAX_RANK];
            for (int i = 0; i < t->rank; i++) dims[i] = f->want[i] < 0 ? 0 : f->want[i];
            t = mil_type_tensor(ps->p, t->dtype, t->rank, dims);
        }
        c = t ? mil_const_tensor(ps->p, t, f->buf, f->count) : NULL;
    }
    pop(ps);
    put(ps, c);
}

void fe_lit_scalar(FeState *ps, int kind, FeTok tok, FeLoc l) {
    FeFrame *f = top(ps);
    if (!f || f->kind == FR_SKIP) return;
    if (f->kind == FR_TENSOR) {
        tensor_elem(ps, f, kind, tok, l);
        return;
    }
    if (f->kind == FR_VALUE) f->filled = true;
    const MilType *t = slot_type(ps, l);
    if (!t) {
        put(ps, NULL);
        return;
    }
    char tb[256], fb[96];
    if (t->kind != MIL_TY_TENSOR) {
        fe_error(ps, l, "expected %s for type %s, found %s", kind_literal(t), type_str(ps, t, tb, sizeof tb),
                 scalar_desc(kind, tok, fb, sizeof fb));
        put(ps, NULL);
        return;
    }
    int64_t n = 1;
    if (t->rank > 0) {
        n = mil_type_numel(t);
        if (!ps->opt.lenient || n < 0 || n > (1 << 24)) {
            fe_error(ps, l, "expected '[' for %s, found %s", type_str(ps, t, tb, sizeof tb),
                     scalar_desc(kind, tok, fb, sizeof fb));
            put(ps, NULL);
            return;
        }
    }
    union { uint64_t u; double d; const char *p; unsigned char b[8]; } cell = { 0 };
    if (!conv_elem(ps, t->dtype, kind, tok, l, &cell)) {
        put(ps, NULL);
        return;
    }
    MilConst *c;
    if (n == 1) {
        c = mil_const_tensor(ps->p, t, &cell, 1);
    } else { /* lenient: a bare scalar fills the whole tensor */
        size_t es = mil_dtype_storage_size(t->dtype);
        unsigned char *buf = malloc((size_t)n * es + 1);
        for (int64_t i = 0; buf && i < n; i++) memcpy(buf + (size_t)i * es, &cell, es);
        c = buf ? mil_const_tensor(ps->p, t, buf, n) : NULL;
        free(buf);
    }
    put(ps, c);
}

void fe_lit_open(FeState *ps, char what, FeLoc l) {
    FeFrame *f = top(ps);
    if (!f) return;
    if (f->kind == FR_SKIP) {
        push(ps, FR_SKIP, NULL, l);
        return;
    }
    char shown = what == 'p' ? '{' : what;
    if (f->kind == FR_TENSOR) {
        if (what == '[') {
            tensor_open(ps, f, l);
            return;
        }
        if (!f->bad) fe_error(ps, l, "unexpected '%c' in a tensor literal", shown);
        f->bad = true;
        push(ps, FR_SKIP, NULL, l);
        return;
    }
    if (what == 'p') {
        if (f->kind == FR_DICT) push(ps, FR_PAIR, f->type, l);
        else push(ps, FR_SKIP, NULL, l);
        if (f->kind == FR_DICT && f->bad) top(ps)->bad = true;
        return;
    }
    bool is_top = f->kind == FR_VALUE;
    if (is_top) f->filled = true;
    const MilType *t = slot_type(ps, l);
    if (!t) {
        push(ps, FR_SKIP, NULL, l);
        return;
    }
    char tb[256];
    if (what == '[' && t->kind == MIL_TY_TENSOR) {
        if (t->rank == 0) {
            fe_error(ps, l, "a rank-0 tensor literal is a bare scalar, not '[...]' (type %s)",
                     type_str(ps, t, tb, sizeof tb));
            push(ps, FR_SKIP, NULL, l);
            return;
        }
        tensor_begin(ps, t, l, is_top);
        return;
    }
    if ((what == '[' && t->kind == MIL_TY_LIST) || (what == '{' && t->kind == MIL_TY_DICT) ||
        (what == '(' && t->kind == MIL_TY_TUPLE)) {
        push(ps, what == '[' ? FR_LIST : what == '{' ? FR_DICT : FR_TUPLE, t, l);
        return;
    }
    fe_error(ps, l, "expected %s for type %s, found '%c'", kind_literal(t), type_str(ps, t, tb, sizeof tb), shown);
    push(ps, FR_SKIP, NULL, l);
}

void fe_lit_close(FeState *ps, char what, FeLoc l) {
    (void)what;
    (void)l;
    FeFrame *f = top(ps);
    if (!f) return;
    char tb[256];
    MilConst *c = NULL;
    bool nested = ps->nfr >= 2 && frame(ps, ps->nfr - 2)->kind != FR_VALUE;
    switch (f->kind) {
    case FR_TENSOR:
        tensor_close(ps, f);
        return;
    case FR_LIST:
        if (f->bad) break;
        if (f->type->len >= 0 && f->nitems != f->type->len) {
            fe_error_at(ps, f->loc, "list literal has %d elements, type %s has length %lld", f->nitems,
                        type_str(ps, f->type, tb, sizeof tb), (long long)f->type->len);
            break;
        }
        c = mil_const_aggregate(ps->p, MIL_CONST_LIST,
                                nested ? mil_type_list(ps->p, f->type->elem, f->nitems) : f->type, f->nitems,
                                f->items);
        break;
    case FR_TUPLE:
        if (f->bad) break;
        if (f->nitems != f->type->ntypes) {
            fe_error_at(ps, f->loc, "tuple literal has %d elements, type %s has %d", f->nitems,
                        type_str(ps, f->type, tb, sizeof tb), f->type->ntypes);
            break;
        }
        c = mil_const_aggregate(ps->p, MIL_CONST_TUPLE, f->type, f->nitems, f->items);
        break;
    case FR_DICT:
        if (f->bad) break;
        c = mil_const_aggregate(ps->p, MIL_CONST_DICT, f->type, f->nitems, f->items);
        break;
    case FR_PAIR: {
        bool ok = !f->bad && f->nitems == 2;
        MilConst *k = ok ? f->items[0] : NULL, *v = ok ? f->items[1] : NULL;
        pop(ps);
        FeFrame *dict = top(ps);
        if (!dict || dict->kind != FR_DICT) return;
        if (!ok) {
            dict->bad = true;
            return;
        }
        add_item(dict, k);
        add_item(dict, v);
        return;
    }
    default: /* SKIP, or a VALUE frame out of step: drop it */
        if (f->kind == FR_VALUE) return;
        break;
    }
    pop(ps);
    put(ps, c);
}

void fe_state_free(FeState *ps) {
    fe_lit_reset(ps);
    for (size_t i = 0; i < sizeof ps->frblk / sizeof ps->frblk[0]; i++) {
        free(ps->frblk[i]);
        ps->frblk[i] = NULL;
    }
    free(ps->syms);
    free(ps->strs);
    free(ps->res);
    free(ps->vb);
    free(ps->tys);
    ps->syms = NULL;
    ps->strs = NULL;
    ps->res = NULL;
    ps->vb = NULL;
    ps->tys = NULL;
}
