/* ir/types.c -- interned types (hash-consing).
 *
 * Every type of a program is created once, in its arena, and looked up in a
 * per-program open-addressing hash table, so `a == b` is type equality within
 * a program.  Component types (list element, dict key/value, tuple members,
 * state payload) are themselves interned, so the hash and the comparison look
 * at their pointers only.  A scalar is the rank-0 tensor: mil_type_scalar(p,
 * dt) == mil_type_tensor(p, dt, 0, NULL).
 */
#include "ir/ir_int.h"

#include <string.h>

struct MilTypeTable {
    MilType **slots;   /* NULL = empty */
    size_t cap, n;
};

static uint64_t hash_type(const MilType *t) {
    uint64_t h = MIL_HASH_SEED;
    int k = (int)t->kind;
    h = mil_hash_bytes(h, &k, sizeof k);
    switch (t->kind) {
    case MIL_TY_TENSOR: {
        int dt = (int)t->dtype;
        h = mil_hash_bytes(h, &dt, sizeof dt);
        h = mil_hash_bytes(h, &t->rank, sizeof t->rank);
        if (t->rank) h = mil_hash_bytes(h, t->dims, (size_t)t->rank * sizeof *t->dims);
        break;
    }
    case MIL_TY_LIST:
        h = mil_hash_bytes(h, &t->elem, sizeof t->elem);
        h = mil_hash_bytes(h, &t->len, sizeof t->len);
        break;
    case MIL_TY_DICT:
        h = mil_hash_bytes(h, &t->elem, sizeof t->elem);
        h = mil_hash_bytes(h, &t->val, sizeof t->val);
        break;
    case MIL_TY_TUPLE:
        h = mil_hash_bytes(h, &t->ntypes, sizeof t->ntypes);
        if (t->ntypes) h = mil_hash_bytes(h, t->types, (size_t)t->ntypes * sizeof *t->types);
        break;
    case MIL_TY_STATE:
        h = mil_hash_bytes(h, &t->elem, sizeof t->elem);
        break;
    }
    return h;
}

/* Shallow equality: components compared by pointer (they are interned). */
static bool same_shallow(const MilType *a, const MilType *b) {
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case MIL_TY_TENSOR:
        return a->dtype == b->dtype && a->rank == b->rank &&
               (a->rank == 0 || memcmp(a->dims, b->dims, (size_t)a->rank * sizeof *a->dims) == 0);
    case MIL_TY_LIST: return a->elem == b->elem && a->len == b->len;
    case MIL_TY_DICT: return a->elem == b->elem && a->val == b->val;
    case MIL_TY_TUPLE:
        return a->ntypes == b->ntypes &&
               (a->ntypes == 0 || memcmp(a->types, b->types, (size_t)a->ntypes * sizeof *a->types) == 0);
    case MIL_TY_STATE: return a->elem == b->elem;
    }
    return false;
}

static bool table_grow(MilProgram *p, MilTypeTable *tt) {
    size_t ncap = tt->cap ? tt->cap * 2 : 256;
    MilType **ns = mil_arena_alloc(&p->arena, ncap * sizeof *ns);
    if (!ns) return false;
    for (size_t i = 0; i < tt->cap; i++) {
        MilType *t = tt->slots[i];
        if (!t) continue;
        size_t j = (size_t)hash_type(t) & (ncap - 1);
        while (ns[j]) j = (j + 1) & (ncap - 1);
        ns[j] = t;
    }
    tt->slots = ns;
    tt->cap = ncap;
    return true;
}

/* Returns the interned copy of the prototype `key` (whose arrays may be on
 * the caller's stack), creating it if needed. */
static const MilType *intern(MilProgram *p, const MilType *key) {
    if (!p) return NULL;
    MilTypeTable *tt = p->types;
    if (!tt) {
        tt = mil_new(&p->arena, MilTypeTable);
        if (!tt) return NULL;
        p->types = tt;
    }
    if ((tt->n + 1) * 2 > tt->cap && !table_grow(p, tt)) return NULL;
    size_t mask = tt->cap - 1, i = (size_t)hash_type(key) & mask;
    for (; tt->slots[i]; i = (i + 1) & mask)
        if (same_shallow(tt->slots[i], key)) return tt->slots[i];
    MilType *t = mil_new(&p->arena, MilType);
    if (!t) return NULL;
    *t = *key;
    if (key->kind == MIL_TY_TENSOR && key->rank > 0) {
        int64_t *d = mil_arena_alloc(&p->arena, (size_t)key->rank * sizeof *d);
        if (!d) return NULL;
        memcpy(d, key->dims, (size_t)key->rank * sizeof *d);
        t->dims = d;
    } else if (key->kind == MIL_TY_TENSOR) {
        t->dims = NULL;
    }
    if (key->kind == MIL_TY_TUPLE && key->ntypes > 0) {
        const MilType **ts = mil_arena_alloc(&p->arena, (size_t)key->ntypes * sizeof *ts);
        if (!ts) return NULL;
        memcpy(ts, key->types, (size_t)key->ntypes * sizeof *ts);
        t->types = ts;
    } else if (key->kind == MIL_TY_TUPLE) {
        t->types = NULL;
    }
    tt->slots[i] = t;
    tt->n++;
    return t;
}

const MilType *mil_type_tensor(MilProgram *p, MilDType dt, int rank, const int64_t *dims) {
    if (rank < 0 || rank > MIL_MAX_RANK || (rank > 0 && !dims)) return NULL;
    MilType k = { .kind = MIL_TY_TENSOR, .dtype = dt, .rank = rank, .dims = dims, .len = 0 };
    return intern(p, &k);
}

const MilType *mil_type_scalar(MilProgram *p, MilDType dt) { return mil_type_tensor(p, dt, 0, NULL); }

const MilType *mil_type_list(MilProgram *p, const MilType *elem, int64_t len) {
    if (!elem) return NULL;
    MilType k = { .kind = MIL_TY_LIST, .elem = elem, .len = len < 0 ? -1 : len };
    return intern(p, &k);
}

const MilType *mil_type_dict(MilProgram *p, const MilType *key, const MilType *val) {
    if (!key || !val) return NULL;
    MilType k = { .kind = MIL_TY_DICT, .elem = key, .val = val };
    return intern(p, &k);
}

const MilType *mil_type_tuple(MilProgram *p, int n, const MilType *const *types) {
    if (n < 0 || (n > 0 && !types)) return NULL;
    for (int i = 0; i < n; i++)
        if (!types[i]) return NULL;
    MilType k = { .kind = MIL_TY_TUPLE, .ntypes = n, .types = types };
    return intern(p, &k);
}

const MilType *mil_type_state(MilProgram *p, const MilType *wrapped) {
    if (!wrapped) return NULL;
    MilType k = { .kind = MIL_TY_STATE, .elem = wrapped };
    return intern(p, &k);
}

bool mil_type_equal(const MilType *a, const MilType *b) {
    if (a == b) return true;
    if (!a || !b || a->kind != b->kind) return false;
    switch (a->kind) {
    case MIL_TY_TENSOR:
        if (a->dtype != b->dtype || a->rank != b->rank) return false;
        for (int i = 0; i < a->rank; i++)
            if (a->dims[i] != b->dims[i]) return false;
        return true;
    case MIL_TY_LIST: return a->len == b->len && mil_type_equal(a->elem, b->elem);
    case MIL_TY_DICT: return mil_type_equal(a->elem, b->elem) && mil_type_equal(a->val, b->val);
    case MIL_TY_TUPLE:
        if (a->ntypes != b->ntypes) return false;
        for (int i = 0; i < a->ntypes; i++)
            if (!mil_type_equal(a->types[i], b->types[i])) return false;
        return true;
    case MIL_TY_STATE: return mil_type_equal(a->elem, b->elem);
    }
    return false;
}

bool mil_type_is_scalar(const MilType *t) { return t && t->kind == MIL_TY_TENSOR && t->rank == 0; }

bool mil_type_has_unknown(const MilType *t) {
    if (!t) return false;
    switch (t->kind) {
    case MIL_TY_TENSOR:
        for (int i = 0; i < t->rank; i++)
            if (t->dims[i] < 0) return true;
        return false;
    case MIL_TY_LIST: return t->len < 0 || mil_type_has_unknown(t->elem);
    case MIL_TY_DICT: return mil_type_has_unknown(t->elem) || mil_type_has_unknown(t->val);
    case MIL_TY_TUPLE:
        for (int i = 0; i < t->ntypes; i++)
            if (mil_type_has_unknown(t->types[i])) return true;
        return false;
    case MIL_TY_STATE: return mil_type_has_unknown(t->elem);
    }
    return false;
}

int64_t mil_type_numel(const MilType *t) {
    if (!t || t->kind != MIL_TY_TENSOR) return -1;
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0) return -1;
        if (t->dims[i] != 0 && n > INT64_MAX / t->dims[i]) return -1;
        n *= t->dims[i];
    }
    return n;
}
