/* backend/milb_write.c -- IR -> .milb bytes (format: ir/milbin.h) plus the
 * MILBlob v2 weight file the program references.
 *
 * One walk over the program: strings, types and constants are interned in
 * first-use order (constants deduplicated by their encoded bytes), the FUNCS
 * and CODE sections are encoded as the walk goes, then the sections are
 * assembled behind the header and the checksum is appended.  Weights: every
 * BLOBFILE constant is copied (raw payload, deduplicated) into one new weight
 * file, and inline tensors larger than inline_max bytes move there too, so
 * the program holds no tensor data beyond small literals. */
#include "backend/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

/* ------------------------------------------------------------------ buffer */

typedef struct Buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} Buf;

static uint8_t *buf_room(Buf *b, size_t n) {
    if (b->oom) return NULL;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->n + n) nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) { b->oom = true; return NULL; }
        b->p = np;
        b->cap = nc;
    }
    uint8_t *r = b->p + b->n;
    b->n += n;
    return r;
}
static void put_bytes(Buf *b, const void *src, size_t n) {
    uint8_t *d = buf_room(b, n);
    if (d && n) memcpy(d, src, n);
}
static void put_u8(Buf *b, uint8_t v) { put_bytes(b, &v, 1); }
static void put_var(Buf *b, uint64_t v) {
    uint8_t tmp[10];
    put_bytes(b, tmp, milb_varint_put(tmp, v));
}
static void put_u64(Buf *b, uint64_t v) {
    uint8_t tmp[8];
    milb_put_u64(tmp, v);
    put_bytes(b, tmp, 8);
}

/* --------------------------------------------------- byte-string hash map */

typedef struct Slot {
    uint64_t h;
    size_t off, len;     /* key bytes in Map.keys */
    int idx;             /* -1 = empty */
} Slot;

typedef struct Map {
    Slot *s;
    size_t cap, n;
    Buf keys;
} Map;

static int map_find(Map *m, const void *key, size_t len, uint64_t h) {
    if (!m->cap) return -1;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        Slot *s = &m->s[i];
        if (s->idx < 0) return -1;
        if (s->h == h && s->len == len && !memcmp(m->keys.p + s->off, key, len)) return s->idx;
    }
}

static int map_add(Map *m, const void *key, size_t len, uint64_t h, int idx) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        Slot *ns = malloc(sizeof *ns * nc);
        if (!ns) return -1;
        for (size_t i = 0; i < nc; i++) ns[i].idx = -1;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->s[i].idx < 0) continue;
            size_t j = m->s[i].h & (nc - 1);
            while (ns[j].idx >= 0) j = (j + 1) & (nc - 1);
            ns[j] = m->s[i];
        }
        free(m->s);
        m->s = ns;
        m->cap = nc;
    }
    size_t off = m->keys.n;
    put_bytes(&m->keys, key, len);
    if (m->keys.oom) return -1;
    size_t j = h & (m->cap - 1);
    while (m->s[j].idx >= 0) j = (j + 1) & (m->cap - 1);
    m->s[j] = (Slot){h, off, len, idx};
    m->n++;
    return 0;
}

static void map_free(Map *m) {
    free(m->s);
    free(m->keys.p);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ writer */

typedef struct Blob {
    uint64_t hash, size, meta_off;
    int code;
} Blob;

typedef struct W {
    const MilProgram *p;
    const MilbWriteOptions *o;
    MilDiag *d;
    int errors0;
    Buf sec[MILB_SEC_MAX + 1];
    int nstrings, ntypes, nconsts, nweights, nops;
    Map strings, types, consts, weights;
    MilRtBlobCache *cache;
    Buf wfile;               /* the new weight file */
    Blob *blobs;
    int nblobs, capblobs;
    int *vnum;               /* MilValue.id -> value number */
    bool *isout;             /* MilValue.id -> a function output */
    /* weight files and references (WEIGHTS is assembled at the end) */
    struct WFile { int path; bool hashed; } *wfiles;
    int nwfiles;
    struct WRef { int file; uint64_t off; bool hashed; } *wrefs;
    int capwrefs;
    /* ops (CODE is assembled at the end: palette, default flags, ops) */
    struct WOp { int pal; uint8_t flags; size_t off, len; int line, col; uint64_t mask; bool has_mask; } *ops;
    int capops;
    uint64_t pal[256 + MIL_OP_COUNT];
    int npal;
    Buf tails;
    const char *debug_file;
    size_t sprev_off, sprev_len;   /* the last string added (front coding) */
} W;

static void werr(W *w, MilLoc loc, const char *fmt, const char *a, const char *b) {
    mil_error(w->d, loc, fmt, a, b);
}

static int intern_str(W *w, const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    uint64_t h = XXH3_64bits(s, n);
    int i = map_find(&w->strings, s, n, h);
    if (i >= 0) return i;
    /* front coding: up to 7 leading bytes shared with the previous string */
    size_t pre = 0;
    if (w->nstrings && !w->strings.keys.oom) {
        const char *prev = (const char *)w->strings.keys.p + w->sprev_off;
        while (pre < 7 && pre < n && pre < w->sprev_len && prev[pre] == s[pre]) pre++;
    }
    i = w->nstrings++;
    size_t off = w->strings.keys.n;
    if (map_add(&w->strings, s, n, h, i)) w->sec[MILB_SEC_STRINGS].oom = true;
    w->sprev_off = off;
    w->sprev_len = n;
    put_var(&w->sec[MILB_SEC_STRINGS], (uint64_t)(n - pre) << 3 | pre);
    put_bytes(&w->sec[MILB_SEC_STRINGS], s + pre, n - pre);
    return i;
}

/* Types are deduplicated by their encoded bytes (identical descriptors are
 * shared whatever the IR objects). */
static int intern_type(W *w, const MilType *t) {
    if (!t) return -1;
    Buf e = {0};
    switch (t->kind) {
    case MIL_TY_TENSOR:
        if (t->rank > MILB_MAX_TYPE_RANK) {
            mil_error(w->d, (MilLoc){0}, "rank %d is above the .milb limit of %d", t->rank, MILB_MAX_TYPE_RANK);
            return -1;
        }
        for (int k = 0; k < t->rank; k++)
            if (t->dims[k] >= MILB_MAX_DIM) {   /* the loader's limit (encoded dim + 1 <= MILB_MAX_DIM) */
                mil_error(w->d, (MilLoc){0}, "dimension %d (%lld) is above the .milb limit of %lld", k,
                          (long long)t->dims[k], (long long)(MILB_MAX_DIM - 1));
                return -1;
            }
        put_u8(&e, (uint8_t)(MILB_TY_TENSOR | t->rank << 4));
        put_var(&e, (uint64_t)milb_dtype_code(t->dtype));
        for (int k = 0; k < t->rank; k++) put_var(&e, t->dims[k] < 0 ? 0 : (uint64_t)t->dims[k] + 1);
        break;
    case MIL_TY_LIST: {
        int el = intern_type(w, t->elem);
        put_u8(&e, MILB_TY_LIST);
        put_var(&e, (uint64_t)el);
        put_var(&e, milb_zigzag(t->len < 0 ? -1 : t->len));
        break;
    }
    case MIL_TY_DICT: {
        int k = intern_type(w, t->elem), v = intern_type(w, t->val);
        put_u8(&e, MILB_TY_DICT);
        put_var(&e, (uint64_t)k);
        put_var(&e, (uint64_t)v);
        break;
    }
    case MIL_TY_TUPLE: {
        int *ids = malloc(sizeof *ids * (size_t)(t->ntypes + 1));
        if (!ids) { e.oom = true; break; }
        for (int k = 0; k < t->ntypes; k++) ids[k] = intern_type(w, t->types[k]);
        put_u8(&e, MILB_TY_TUPLE);
        put_var(&e, (uint64_t)t->ntypes);
        for (int k = 0; k < t->ntypes; k++) put_var(&e, (uint64_t)ids[k]);
        free(ids);
        break;
    }
    case MIL_TY_STATE: {
        int el = intern_type(w, t->elem);
        put_u8(&e, MILB_TY_STATE);
        put_var(&e, (uint64_t)el);
        break;
    }
    }
    if (e.oom) w->sec[MILB_SEC_TYPES].oom = true;
    uint64_t h = XXH3_64bits(e.p, e.n);
    int i = map_find(&w->types, e.p, e.n, h);
    if (i < 0) {
        put_bytes(&w->sec[MILB_SEC_TYPES], e.p, e.n);
        i = w->ntypes++;
        if (map_add(&w->types, e.p, e.n, h, i)) w->sec[MILB_SEC_TYPES].oom = true;
    }
    free(e.p);
    return i;
}

static bool blob_dtype_ok(MilDType dt) { return mil_rt_dtype_blob_code(dt) != 0; }

/* Appends a payload to the new weight file (deduplicated); returns the
 * metadata offset or 0 on error. */
static uint64_t add_blob(W *w, MilDType dt, const uint8_t *payload, uint64_t size, uint64_t padbits) {
    int code = mil_rt_dtype_blob_code(dt);
    uint64_t h = XXH3_64bits(payload, (size_t)size);
    for (int i = 0; i < w->nblobs; i++) {
        Blob *b = &w->blobs[i];
        if (b->hash == h && b->size == size && b->code == code &&
            !memcmp(w->wfile.p + b->meta_off + 64, payload, (size_t)size))
            return b->meta_off;
    }
    if (w->wfile.n == 0) {
        uint8_t *hdr = buf_room(&w->wfile, 64);
        if (!hdr) return 0;
        memset(hdr, 0, 64);
        milb_put_u32(hdr + 4, 2);
    }
    size_t m = (w->wfile.n + 63) & ~(size_t)63, gap = m - w->wfile.n;
    if (gap) {
        uint8_t *pad = buf_room(&w->wfile, gap);
        if (!pad) return 0;
        memset(pad, 0, gap);
    }
    uint8_t *meta = buf_room(&w->wfile, 64);
    if (!meta) return 0;
    memset(meta, 0, 64);
    milb_put_u32(meta, 0xDEADBEEFu);
    milb_put_u32(meta + 4, (uint32_t)code);
    milb_put_u64(meta + 8, size);
    milb_put_u64(meta + 16, (uint64_t)m + 64);
    milb_put_u64(meta + 24, padbits);
    put_bytes(&w->wfile, payload, (size_t)size);
    if (w->wfile.oom) return 0;
    milb_put_u32(w->wfile.p, milb_get_u32(w->wfile.p) + 1);
    if (w->nblobs == w->capblobs) {
        int nc = w->capblobs ? w->capblobs * 2 : 16;
        Blob *nb = realloc(w->blobs, sizeof *nb * (size_t)nc);
        if (!nb) { w->wfile.oom = true; return 0; }
        w->blobs = nb;
        w->capblobs = nc;
    }
    w->blobs[w->nblobs++] = (Blob){h, size, m, code};
    return m;
}

/* A weight reference (path string, metadata offset, payload hash). */
static int intern_weight(W *w, const char *path, uint64_t off, bool has_hash, uint64_t hash) {
    Buf key = {0};
    put_bytes(&key, &off, sizeof off);
    put_bytes(&key, path, strlen(path));
    if (key.oom) return -1;
    uint64_t h = XXH3_64bits(key.p, key.n);
    int i = map_find(&w->weights, key.p, key.n, h);
    (void)hash;   /* the per-file hash is computed over the payloads at the end */
    if (i < 0) {
        Buf *s = &w->sec[MILB_SEC_WEIGHTS];
        int ps = intern_str(w, path), f = 0;
        while (f < w->nwfiles && w->wfiles[f].path != ps) f++;
        if (f == w->nwfiles) {
            struct WFile *nf = realloc(w->wfiles, sizeof *nf * (size_t)(w->nwfiles + 1));
            if (!nf) { s->oom = true; free(key.p); return 0; }
            w->wfiles = nf;
            w->wfiles[w->nwfiles++] = (struct WFile){ps, true};
        }
        if (!has_hash) w->wfiles[f].hashed = false;
        if (w->nweights == w->capwrefs) {
            int nc = w->capwrefs ? w->capwrefs * 2 : 16;
            struct WRef *nr = realloc(w->wrefs, sizeof *nr * (size_t)nc);
            if (!nr) { s->oom = true; free(key.p); return 0; }
            w->wrefs = nr;
            w->capwrefs = nc;
        }
        w->wrefs[w->nweights] = (struct WRef){f, off, has_hash};
        i = w->nweights++;
        if (map_add(&w->weights, key.p, key.n, h, i)) s->oom = true;
    }
    free(key.p);
    return i;
}

static uint64_t blob_hash(W *w, uint64_t off) {
    for (int k = 0; k < w->nblobs; k++)
        if (w->blobs[k].meta_off == off) return w->blobs[k].hash;
    return 0;
}

/* The encoded constant; -1 after an error.  top: may move to the weight file. */
static int intern_const(W *w, const MilConst *c, MilLoc loc, bool top) {
    if (!c) return -1;
    Buf e = {0};
    const MilType *t = c->type;
    int ti = intern_type(w, t);
    int rc = ti < 0 ? -1 : 0;
    if (rc) return -1;
    switch (c->kind) {
    case MIL_CONST_TENSOR: {
        MilDType dt = t->dtype;
        int64_t n = c->count;
        size_t es = mil_dtype_storage_size(dt);
        if (t->kind != MIL_TY_TENSOR || n != mil_type_numel(t)) {
            werr(w, loc, "constant of type %s%s: element count does not match its type", "", "");
            rc = -1;
            break;
        }
        if (top && dt != MIL_DT_STRING && (size_t)n * es > w->o->inline_max && blob_dtype_ok(dt) && n > 0) {
            uint64_t size = mil_rt_blob_payload_size(dt, n);
            uint8_t *pay = calloc(1, (size_t)size + 1);
            if (!pay) { rc = -1; e.oom = true; break; }
            mil_rt_blob_pack(dt, c->data, n, pay);
            int bits = mil_rt_dtype_bits(dt);
            uint64_t padbits = (uint64_t)(size * 8 - (uint64_t)n * (uint64_t)bits);
            uint64_t off = add_blob(w, dt, pay, size, bits < 8 ? padbits : 0);
            free(pay);
            if (!off) { rc = -1; e.oom = true; break; }
            put_var(&e, (uint64_t)ti << 3 | MILB_C_BLOB);
            put_var(&e, (uint64_t)intern_weight(w, w->o->weight_path, off, true, blob_hash(w, off)));
            break;
        }
        put_var(&e, (uint64_t)ti << 3 | MILB_C_TENSOR);
        int fb = milb_float_bytes(dt);
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *q = (const uint8_t *)c->data + (size_t)i * es;
            if (fb) {
                uint8_t tmp[8];
                if (fb == 1) tmp[0] = q[0];
                else if (fb == 2) { uint16_t u; memcpy(&u, q, 2); tmp[0] = (uint8_t)u; tmp[1] = (uint8_t)(u >> 8); }
                else if (fb == 4) { uint32_t u; memcpy(&u, q, 4); milb_put_u32(tmp, u); }
                else { uint64_t u; memcpy(&u, q, 8); milb_put_u64(tmp, u); }
                put_bytes(&e, tmp, (size_t)fb);
            } else if (dt == MIL_DT_STRING) {
                const char *s = ((const char *const *)c->data)[i];
                put_var(&e, (uint64_t)intern_str(w, s));
            } else {
                int64_t x = mil_const_get_i64(c, i);
                if (dt == MIL_DT_UINT64) { uint64_t u; memcpy(&u, q, 8); x = (int64_t)u; }
                put_var(&e, milb_zigzag(x));
            }
        }
        break;
    }
    case MIL_CONST_BLOB: {
        int64_t n = mil_type_numel(t);
        if (t->kind != MIL_TY_TENSOR || n < 0) {
            werr(w, loc, "BLOBFILE constant '%s' needs a concrete tensor type%s", c->blob_path, "");
            rc = -1;
            break;
        }
        MilRtErr re;
        MilRtBlobFile *bf = mil_rt_blob_cache_get(w->cache, c->blob_path, &re);
        MilRtBlobInfo info;
        if (!bf || mil_rt_blob_info(bf, c->blob_offset, &info, &re)) {
            if (w->o->keep_unreadable_weights && c->blob_offset % 64 == 0 && c->blob_offset >= 64 && c->blob_path[0]) {
                put_var(&e, (uint64_t)ti << 3 | MILB_C_BLOB);
                put_var(&e, (uint64_t)intern_weight(w, c->blob_path, c->blob_offset, false, 0));
                break;
            }
            werr(w, loc, "%s%s", re.msg, "");
            rc = -1;
            break;
        }
        if (info.dtype != t->dtype || info.size != mil_rt_blob_payload_size(t->dtype, n)) {
            char m[200];
            snprintf(m, sizeof m, "blob at offset %llu holds %s (%llu bytes), the constant is %s with %lld elements",
                     (unsigned long long)c->blob_offset, mil_rt_dtype_name(info.dtype), (unsigned long long)info.size,
                     mil_dtype_name(t->dtype), (long long)n);
            werr(w, loc, "%s: %s", mil_rt_blob_path(bf), m);
            rc = -1;
            break;
        }
        uint64_t off = add_blob(w, t->dtype, info.data, info.size, info.padding_bits);
        if (!off) { rc = -1; e.oom = true; break; }
        put_var(&e, (uint64_t)ti << 3 | MILB_C_BLOB);
        put_var(&e, (uint64_t)intern_weight(w, w->o->weight_path, off, true, blob_hash(w, off)));
        break;
    }
    case MIL_CONST_LIST: case MIL_CONST_TUPLE: case MIL_CONST_DICT: {
        int *ids = malloc(sizeof *ids * (size_t)(c->nitems + 1));
        if (!ids) { e.oom = true; rc = -1; break; }
        for (int i = 0; i < c->nitems && !rc; i++)
            if ((ids[i] = intern_const(w, c->items[i], loc, false)) < 0) rc = -1;
        if (!rc) {
            int nitems = c->nitems;
            put_var(&e, (uint64_t)ti << 3 |
                            (c->kind == MIL_CONST_LIST ? MILB_C_LIST : c->kind == MIL_CONST_TUPLE ? MILB_C_TUPLE : MILB_C_DICT));
            put_var(&e, (uint64_t)nitems);
            for (int i = 0; i < nitems; i++) put_var(&e, (uint64_t)ids[i]);
        }
        free(ids);
        break;
    }
    case MIL_CONST_EMPTY:
        put_var(&e, (uint64_t)ti << 3 | MILB_C_EMPTY);
        break;
    }
    if (rc || e.oom) {
        if (e.oom) mil_error(w->d, loc, "out of memory");
        free(e.p);
        return -1;
    }
    uint64_t h = XXH3_64bits(e.p, e.n);
    int i = map_find(&w->consts, e.p, e.n, h);
    if (i < 0) {
        i = w->nconsts++;
        if (map_add(&w->consts, e.p, e.n, h, i)) w->sec[MILB_SEC_CONSTS].oom = true;
        put_bytes(&w->sec[MILB_SEC_CONSTS], e.p, e.n);
    }
    free(e.p);
    return i;
}

static int cmp_attr(const void *a, const void *b) {
    const MilAttr *x = *(const MilAttr *const *)a, *y = *(const MilAttr *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x < y ? -1 : x > y);
}

/* attrs (minus `skip`) sorted by name: varint n; n x {name, const}. */
static int put_attrs(W *w, Buf *b, const MilAttr *attrs, int n, const MilAttr *skip, MilLoc loc) {
    const MilAttr **v = malloc(sizeof *v * (size_t)(n + 1));
    if (!v) return -1;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (&attrs[i] != skip) v[m++] = &attrs[i];
    qsort(v, (size_t)m, sizeof *v, cmp_attr);
    int *names = malloc(sizeof *names * (size_t)(m + 1) * 2);
    if (!names) { free(v); return -1; }
    int rc = 0;
    for (int i = 0; i < m && !rc; i++) {
        names[2 * i] = intern_str(w, v[i]->name);
        if ((names[2 * i + 1] = intern_const(w, v[i]->val, v[i]->loc.line ? v[i]->loc : loc, true)) < 0) rc = -1;
    }
    if (!rc) {
        put_var(b, (uint64_t)m);
        for (int i = 0; i < m; i++) {
            put_var(b, (uint64_t)names[2 * i]);
            put_var(b, (uint64_t)names[2 * i + 1]);
        }
    }
    free(names);
    free(v);
    return rc;
}

static uint64_t binding(W *w, const MilBinding *bd, MilLoc loc, int nvals, int *err) {
    if (bd->value) {
        int id = bd->value->id;
        if (id < 0 || w->vnum[id] < 0) {
            mil_error(w->d, loc, "value '%s' is used before it is defined", bd->value->name ? bd->value->name : "?");
            *err = 1;
            return 0;
        }
        return (uint64_t)(nvals - 1 - w->vnum[id]) << 1;
    }
    int k = intern_const(w, bd->cst, loc, true);
    if (k < 0) { *err = 1; return 0; }
    return (uint64_t)k << 1 | 1;
}

static int cmp_arg(const void *a, const void *b) {
    const MilArg *x = *(const MilArg *const *)a, *y = *(const MilArg *const *)b;
    return strcmp(x->name, y->name);
}

/* Palette index of a wire code (first-use order). */
static int palette(W *w, uint64_t wire) {
    for (int i = 0; i < w->npal; i++)
        if (w->pal[i] == wire) return i;
    w->pal[w->npal] = wire;
    return w->npal++;
}

/* Is v a constant for the loader's A_CONST rule (a const or constexpr result)? */
static bool is_const_value(const MilValue *v) {
    if (!v->def) return false;
    const MilbOpRow *row = milb_op_row(v->def->kind);
    return v->def->kind == MIL_OP_CONST || (row && (row->flags & OPF_CONSTEXPR));
}

static int encode_op(W *w, const MilOp *op, int *nvals) {
    Buf *c = &w->tails;
    Buf e = {0};
    bool strip = w->o->strip;
    const MilOpInfo *info = mil_op_info(op->kind);
    const MilAttr *name_attr = NULL;
    for (int i = 0; i < op->nattrs; i++) {
        const MilConst *v = op->attrs[i].val;
        if (!strcmp(op->attrs[i].name, "name") && v && v->kind == MIL_CONST_TENSOR && v->type->dtype == MIL_DT_STRING &&
            v->type->rank == 0 && v->count == 1)
            name_attr = &op->attrs[i];
    }
    uint8_t fl = 0;
    const char *nm = name_attr ? mil_const_get_str(name_attr->val) : NULL;
    if (strip) {
        /* names go, except those of function outputs (the runtime binds by name) */
        nm = NULL;
        bool out = false;
        for (int i = 0; i < op->nresults; i++) out |= op->results[i]->id >= 0 && w->isout[op->results[i]->id];
        if (!out) fl |= MILB_OP_ANON;
    }
    if (nm && op->nresults > 0 && op->results[0]->name && !strcmp(nm, op->results[0]->name)) fl |= MILB_OP_NAME0;
    else if (nm) fl |= MILB_OP_NAME;
    if (op->opset) fl |= MILB_OP_OPSET;
    int nattrs = op->nattrs - (name_attr ? 1 : 0);
    int err = 0;
    /* const ops: the `val` constant and an implicit result type */
    int val = -1;
    if (op->kind == MIL_OP_CONST && nattrs == 1 && op->nargs == 0 && op->nresults == 1) {
        const MilAttr *va = NULL;
        for (int i = 0; i < op->nattrs; i++)
            if (&op->attrs[i] != name_attr) va = &op->attrs[i];
        if (!strcmp(va->name, "val") && va->val && va->val->type) {
            int k = intern_const(w, va->val, va->loc.line ? va->loc : op->loc, true);
            if (k < 0) return -1;
            if (intern_type(w, va->val->type) == intern_type(w, op->results[0]->type)) val = k;
        }
    }
    if (val >= 0) {
        fl |= MILB_OP_VAL;
        intern_str(w, "val");   /* the loader names the attribute from the string table */
    } else if (nattrs > 0) {
        fl |= MILB_OP_ATTRS;
    }
    /* ops.def ops: arguments by slot */
    uint64_t mask = 0;
    const MilArg *by_slot[64] = {0};
    if (info && val < 0) {
        for (int i = 0; i < op->nargs && !err; i++) {
            int s = -1;
            for (int k = 0; k < info->nargs && k < 64; k++)
                if (!strcmp(op->args[i].name, info->args[k].name)) s = k;
            if (s < 0) {
                mil_error(w->d, op->args[i].loc, "op '%s' has no argument '%s'", op->opname, op->args[i].name);
                err = 1;
            } else if (by_slot[s]) {
                mil_error(w->d, op->args[i].loc, "op '%s': argument '%s' given twice", op->opname, op->args[i].name);
                err = 1;
            } else if (!(info->args[s].flags & A_VARIADIC) && (op->args[i].variadic || op->args[i].n != 1)) {
                mil_error(w->d, op->args[i].loc, "op '%s': argument '%s' is not variadic", op->opname, op->args[i].name);
                err = 1;
            } else {
                by_slot[s] = &op->args[i];
                mask |= (uint64_t)1 << s;
            }
        }
        if (err) return -1;
        /* implicit result type: that of the first non-constant value argument */
        const MilValue *first = NULL;
        for (int s = 0; s < info->nargs && s < 64 && !first; s++)
            for (int j = 0; by_slot[s] && j < by_slot[s]->n && !first; j++) {
                const MilValue *x = by_slot[s]->items[j].value;
                if (x && !is_const_value(x)) first = x;
            }
        if (first && op->nresults == 1 && info->nresults == 1) {
            int a1 = intern_type(w, first->type), a2 = intern_type(w, op->results[0]->type);
            if (a1 >= 0 && a1 == a2) fl |= MILB_OP_TSAME;
        }
    }
    int pal = palette(w, info ? info->wire : 0);
    if (!info) put_var(&e, (uint64_t)intern_str(w, op->opname));
    if (fl & MILB_OP_OPSET) put_var(&e, (uint64_t)intern_str(w, op->opset));
    if (fl & MILB_OP_NAME) put_var(&e, (uint64_t)intern_str(w, nm));
    if (val >= 0) {
        put_var(&e, (uint64_t)val);
        if (!(fl & MILB_OP_ANON)) put_var(&e, (uint64_t)intern_str(w, op->results[0]->name));
    } else if (!info || info->nresults < 0) put_var(&e, (uint64_t)op->nresults);
    else if (info->nresults != op->nresults) {
        mil_error(w->d, op->loc, "op '%s' has %d results, the ops table says %d", op->opname, op->nresults,
                  info->nresults);
        free(e.p);
        return -1;
    }
    for (int i = 0; val < 0 && i < op->nresults; i++) {
        if (!(fl & MILB_OP_ANON)) put_var(&e, (uint64_t)intern_str(w, op->results[i]->name));
        int ti = intern_type(w, op->results[i]->type);
        if (ti < 0) { free(e.p); return -1; }
        if (!(fl & MILB_OP_TSAME)) put_var(&e, (uint64_t)ti);
    }
    if (val >= 0) {
        /* nothing else */
    } else if (info) {
        /* the slot mask goes in front of the op (assemble); the bindings of each bound slot */
        for (int s = 0; s < info->nargs && s < 64 && !err; s++) {
            const MilArg *a = by_slot[s];
            if (!a) continue;
            if (info->args[s].flags & A_VARIADIC) put_var(&e, (uint64_t)a->n << 1 | (a->variadic ? 1 : 0));
            for (int j = 0; j < a->n && !err; j++) put_var(&e, binding(w, &a->items[j], a->loc, *nvals, &err));
        }
    } else {
        const MilArg **args = malloc(sizeof *args * (size_t)(op->nargs + 1));
        if (!args) err = 1;
        for (int i = 0; !err && i < op->nargs; i++) args[i] = &op->args[i];
        if (!err) qsort(args, (size_t)op->nargs, sizeof *args, cmp_arg);
        if (!err) put_var(&e, (uint64_t)op->nargs);
        for (int i = 0; !err && i < op->nargs; i++) {
            const MilArg *a = args[i];
            if (i && !strcmp(args[i - 1]->name, a->name)) {
                mil_error(w->d, a->loc, "op '%s': argument '%s' given twice", op->opname, a->name);
                err = 1;
                break;
            }
            put_var(&e, (uint64_t)intern_str(w, a->name));
            put_var(&e, (uint64_t)a->n << 1 | (a->variadic ? 1 : 0));
            for (int j = 0; j < a->n && !err; j++) put_var(&e, binding(w, &a->items[j], a->loc, *nvals, &err));
        }
        free(args);
    }
    if (!err && (fl & MILB_OP_ATTRS) && put_attrs(w, &e, op->attrs, op->nattrs, name_attr, op->loc)) err = 1;
    if (!err) {
        for (int i = 0; i < op->nresults; i++)
            if (op->results[i]->id >= 0) w->vnum[op->results[i]->id] = (*nvals)++;
        if (w->nops == w->capops) {
            int nc = w->capops ? w->capops * 2 : 64;
            struct WOp *no = realloc(w->ops, sizeof *no * (size_t)nc);
            if (!no) { c->oom = true; free(e.p); return -1; }
            w->ops = no;
            w->capops = nc;
        }
        int line = op->loc.line > 0 ? op->loc.line : 0;
        if (line && op->loc.file && !w->debug_file) w->debug_file = op->loc.file;
        w->ops[w->nops] = (struct WOp){pal, fl, c->n, e.n, line, line ? op->loc.col : 0, mask, info && val < 0};
        put_bytes(c, e.p, e.n);
        if (e.oom) c->oom = true;
        w->nops++;
    }
    free(e.p);
    return err ? -1 : 0;
}

static int encode_func(W *w, const MilFunc *f) {
    Buf *b = &w->sec[MILB_SEC_FUNCS];
    free(w->vnum);
    w->vnum = malloc(sizeof *w->vnum * (size_t)(f->nvalues + 1));
    if (!w->vnum) return -1;
    for (int i = 0; i < f->nvalues; i++) w->vnum[i] = -1;
    free(w->isout);
    w->isout = calloc((size_t)f->nvalues + 1, sizeof *w->isout);
    if (!w->isout) return -1;
    for (int i = 0; i < f->body.nouts; i++)
        if (f->body.outs[i] && f->body.outs[i]->id >= 0 && f->body.outs[i]->id < f->nvalues)
            w->isout[f->body.outs[i]->id] = true;
    put_var(b, (uint64_t)intern_str(w, f->name));
    put_var(b, f->opset ? (uint64_t)intern_str(w, f->opset) + 1 : 0);
    if (put_attrs(w, b, f->attrs, f->nattrs, NULL, f->loc)) return -1;
    put_var(b, (uint64_t)f->nparams);
    int nvals = 0;
    for (int i = 0; i < f->nparams; i++) {
        put_var(b, (uint64_t)intern_str(w, f->params[i]->name));
        int ti = intern_type(w, f->params[i]->type);
        if (ti < 0) return -1;
        put_var(b, (uint64_t)ti);
        if (f->params[i]->id >= 0) w->vnum[f->params[i]->id] = nvals;
        nvals++;
    }
    int nops = 0, rc = 0;
    for (const MilOp *op = f->body.first; op; op = op->next) {
        nops++;
        /* stop at the first op that cannot be encoded: later ops would only
         * report its results as undefined */
        if (encode_op(w, op, &nvals)) return -1;
    }
    put_var(b, (uint64_t)nops);
    put_var(b, (uint64_t)f->body.nouts);
    for (int i = 0; i < f->body.nouts; i++) {
        const MilValue *v = f->body.outs[i];
        if (!v || v->id < 0 || w->vnum[v->id] < 0) {
            mil_error(w->d, f->body.outs_loc, "output '%s' is not defined", v && v->name ? v->name : "?");
            rc = -1;
            continue;
        }
        put_var(b, (uint64_t)w->vnum[v->id]);
    }
    return rc;
}

static int cmp_pm(const void *a, const void *b) {
    const struct { int pal; uint64_t mask; } *x = a, *y = b;
    if (x->pal != y->pal) return x->pal < y->pal ? -1 : 1;
    return x->mask < y->mask ? -1 : x->mask > y->mask;
}

static void assemble(W *w, MilbOutput *out) {
    Buf f = {0};
    put_bytes(&f, MILB_MAGIC, 4);
    put_u8(&f, MILB_VERSION);
    put_u8(&f, MILB_FORMAT);
    put_bytes(&f, MILB_SENTINEL, 6);
    uint8_t tmp[4];
    milb_put_u32(tmp, MILB_SAMPLE_INT);
    put_bytes(&f, tmp, 4);
    float fv = MILB_SAMPLE_FLOAT;
    uint32_t fb;
    memcpy(&fb, &fv, 4);
    milb_put_u32(tmp, fb);
    put_bytes(&f, tmp, 4);
    put_u8(&f, w->nweights ? MILB_F_WEIGHTS : 0);
    /* section payloads: counts first */
    Buf body[MILB_SEC_MAX + 1] = {{0}};
    int counts[MILB_SEC_MAX + 1] = {0, w->nstrings, w->ntypes, 0, w->nconsts};
    for (int id = 1; id <= MILB_SEC_CONSTS; id++) {
        if (!counts[id]) continue;
        put_var(&body[id], (uint64_t)counts[id]);
        put_bytes(&body[id], w->sec[id].p, w->sec[id].n);
    }
    /* WEIGHTS: files with one hash over their references' payloads, then the
     * references (offsets / 64, delta-encoded) */
    if (w->nweights) {
        Buf *b = &body[MILB_SEC_WEIGHTS];
        put_var(b, (uint64_t)w->nwfiles);
        for (int fi = 0; fi < w->nwfiles; fi++) {
            put_var(b, (uint64_t)w->wfiles[fi].path << 1 | (w->wfiles[fi].hashed ? 1 : 0));
            if (!w->wfiles[fi].hashed) continue;
            XXH3_state_t *st = XXH3_createState();
            if (!st) { b->oom = true; continue; }
            XXH3_64bits_reset(st);
            for (int r = 0; r < w->nweights; r++) {
                if (w->wrefs[r].file != fi) continue;
                for (int k = 0; k < w->nblobs; k++)
                    if (w->blobs[k].meta_off == w->wrefs[r].off) {
                        XXH3_64bits_update(st, w->wfile.p + w->blobs[k].meta_off + 64, (size_t)w->blobs[k].size);
                        break;
                    }
            }
            put_u64(b, XXH3_64bits_digest(st));
            XXH3_freeState(st);
        }
        put_var(b, (uint64_t)w->nweights);
        int64_t prev = 0;
        for (int r = 0; r < w->nweights; r++) {
            int64_t o = (int64_t)(w->wrefs[r].off / 64);
            put_var(b, (uint64_t)w->wrefs[r].file);
            put_var(b, milb_zigzag(o - prev));
            prev = o;
        }
    }
    /* FUNCS: version, flags, program attrs, nfuncs, then the function records */
    put_bytes(&body[MILB_SEC_FUNCS], w->sec[0].p, w->sec[0].n);
    put_bytes(&body[MILB_SEC_FUNCS], w->sec[MILB_SEC_FUNCS].p, w->sec[MILB_SEC_FUNCS].n);
    /* CODE: the op palette, the most common flags, then the ops */
    {
        Buf *b = &body[MILB_SEC_CODE];
        enum { NF = MILB_OP_ALL + 1 };
        int np = w->npal;
        int *freq = calloc((size_t)np + 1, sizeof *freq * NF);
        uint8_t def[sizeof w->pal / sizeof w->pal[0]] = {0};
        uint64_t defmask[sizeof w->pal / sizeof w->pal[0]] = {0};
        if (!freq) b->oom = true;
        /* per palette entry: the most common slot mask (ties: the smaller
         * mask), then the most common flags once the masks are settled */
        struct PM { int pal; uint64_t mask; } *pm = malloc(sizeof *pm * ((size_t)w->nops + 1));
        int npm = 0;
        if (!pm) b->oom = true;
        for (int i = 0; pm && i < w->nops; i++)
            if (w->ops[i].has_mask) pm[npm++] = (struct PM){w->ops[i].pal, w->ops[i].mask};
        if (pm) qsort(pm, (size_t)npm, sizeof *pm, cmp_pm);
        int bestn[sizeof w->pal / sizeof w->pal[0]] = {0};
        for (int i = 0; i < npm;) {
            int j = i;
            while (j < npm && pm[j].pal == pm[i].pal && pm[j].mask == pm[i].mask) j++;
            if (j - i > bestn[pm[i].pal]) {
                bestn[pm[i].pal] = j - i;
                defmask[pm[i].pal] = pm[i].mask;
            }
            i = j;
        }
        free(pm);
        if (freq) memset(freq, 0, sizeof *freq * NF * ((size_t)np + 1));
        for (int i = 0; i < w->nops; i++)
            if (w->ops[i].has_mask && w->ops[i].mask != defmask[w->ops[i].pal]) w->ops[i].flags |= MILB_OP_MASK;
        for (int i = 0; freq && i < w->nops; i++) freq[w->ops[i].pal * NF + w->ops[i].flags]++;
        put_var(b, (uint64_t)np);
        for (int i = 0; freq && i < np; i++) {
            const int *fr = freq + i * NF;
            for (int k = 1; k < NF; k++)
                if (fr[k] > fr[def[i]]) def[i] = (uint8_t)k;
            put_var(b, w->pal[i]);
            put_u8(b, def[i]);
            if (w->pal[i]) put_var(b, defmask[i]);
        }
        free(freq);
        for (int i = 0; i < w->nops; i++) {
            const struct WOp *op = &w->ops[i];
            bool ex = op->flags != def[op->pal];
            put_var(b, (uint64_t)op->pal << 1 | ex);
            if (ex) put_u8(b, op->flags);
            if (op->flags & MILB_OP_MASK) put_var(b, op->mask);
            put_bytes(b, w->tails.p + op->off, op->len);
        }
        if (w->tails.oom) b->oom = true;
    }
    /* DEBUG: source file, per op line delta and column */
    if (w->debug_file && !w->o->strip && !w->o->no_debug) {
        Buf *b = &body[MILB_SEC_DEBUG];
        size_t n = strlen(w->debug_file);
        put_var(b, n);
        put_bytes(b, w->debug_file, n);
        int64_t prev = 0;
        for (int i = 0; i < w->nops; i++) {
            put_var(b, milb_zigzag((int64_t)w->ops[i].line - prev));
            put_var(b, (uint64_t)(w->ops[i].col > 0 ? w->ops[i].col : 0));
            prev = w->ops[i].line;
        }
    }
    /* content hash over the other sections in file order */
    Buf all = {0};
    for (int id = 1; id < MILB_SEC_HASH; id++) put_bytes(&all, body[id].p, body[id].n);
    uint64_t ch = XXH3_64bits(all.p, all.n);
    free(all.p);
    put_u64(&body[MILB_SEC_HASH], ch);
    int ns = 0;
    for (int id = 1; id <= MILB_SEC_MAX; id++) ns += body[id].n > 0;
    put_u8(&f, (uint8_t)ns);
    for (int id = 1; id <= MILB_SEC_MAX; id++)
        if (body[id].n) {
            put_u8(&f, (uint8_t)id);
            put_var(&f, body[id].n);
        }
    out->stats.header = f.n + MILB_CHECKSUM_SIZE;
    for (int id = 1; id <= MILB_SEC_MAX; id++) {
        out->stats.sections[id] = body[id].n;
        put_bytes(&f, body[id].p, body[id].n);
        if (body[id].oom) f.oom = true;
        free(body[id].p);
    }
    put_u64(&f, XXH3_64bits(f.p, f.n));
    out->stats.content_hash = ch;
    if (f.oom) {
        free(f.p);
        f.p = NULL;
        f.n = 0;
    }
    out->milb = f.p;
    out->milb_len = f.n;
}

int mil_milb_write(const MilProgram *p, const MilbWriteOptions *opt, MilbOutput *out, MilDiag *d) {
    MilbWriteOptions o = {0};
    if (opt) o = *opt;
    if (!o.inline_max) o.inline_max = MILB_INLINE_MAX_DEFAULT;
    if (!o.weight_path) o.weight_path = "@model_path/weights.bin";
    memset(out, 0, sizeof *out);
    W w = {.p = p, .o = &o, .d = d, .errors0 = d->nerrors};
    w.cache = mil_rt_blob_cache_new(o.model_dir ? o.model_dir : ".", o.weights_dir);
    int rc = w.cache ? 0 : -1;
    /* program header goes to sec[0] (prepended to FUNCS) */
    Buf *hb = &w.sec[0];
    put_var(hb, (uint64_t)intern_str(&w, p->version ? p->version : "1.0"));
    put_u8(hb, p->trailing_newline ? MILB_PF_TRAILING_NEWLINE : 0);
    if (!rc && put_attrs(&w, hb, p->attrs, p->nattrs, NULL, (MilLoc){0})) rc = -1;
    put_var(hb, (uint64_t)p->nfuncs);
    for (int i = 0; i < p->nfuncs && !rc; i++)
        if (encode_func(&w, p->funcs[i])) rc = -1;
    bool oom = false;
    for (int i = 0; i <= MILB_SEC_MAX; i++) oom |= w.sec[i].oom;
    oom |= w.wfile.oom || w.tails.oom;
    if (oom) mil_error(d, (MilLoc){0}, "out of memory while writing the binary program");
    if (!rc && !oom && d->nerrors == w.errors0) {
        assemble(&w, out);
        if (!out->milb) mil_error(d, (MilLoc){0}, "out of memory while writing the binary program");
        out->weights = w.wfile.p;
        out->weights_len = w.wfile.n;
        w.wfile.p = NULL;
        out->stats.total = out->milb_len;
        out->stats.nstrings = w.nstrings;
        out->stats.ntypes = w.ntypes;
        out->stats.nconsts = w.nconsts;
        out->stats.nweights = w.nweights;
        out->stats.nblobs = w.nblobs;
        out->stats.nops = w.nops;
        out->stats.nfuncs = p->nfuncs;
        out->stats.weight_bytes = out->weights_len;
        out->stats.stripped = o.strip;
    }
    for (int i = 0; i <= MILB_SEC_MAX; i++) free(w.sec[i].p);
    free(w.isout);
    free(w.wfiles);
    free(w.wrefs);
    free(w.ops);
    free(w.tails.p);
    map_free(&w.strings);
    map_free(&w.types);
    map_free(&w.consts);
    map_free(&w.weights);
    free(w.wfile.p);
    free(w.blobs);
    free(w.vnum);
    mil_rt_blob_cache_free(w.cache);
    if (d->nerrors > w.errors0 || !out->milb) {
        mil_milb_output_free(out);
        return -1;
    }
    return 0;
}

void mil_milb_output_free(MilbOutput *o) {
    if (!o) return;
    free(o->milb);
    free(o->weights);
    o->milb = o->weights = NULL;
    o->milb_len = o->weights_len = 0;
}

/* ---------------------------------------------------------------- files */

/* 0 when path may be (re)placed: absent or a regular file.  lstat, so a
 * symlink, device, fifo or directory at path is refused, never followed. */
static int check_target(const char *path, MilDiag *d) {
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT) return 0;
        mil_error(d, (MilLoc){0}, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': not a regular file", path);
        return -1;
    }
    return 0;
}

/* Writes data to a new temporary file next to path; its name (malloc'd) in
 * *tmp_out.  Nothing is left behind on failure. */
static int write_temp(const char *path, const void *data, size_t len, char **tmp_out, MilDiag *d) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    *tmp_out = NULL;
    if (!tmp) {
        mil_error(d, (MilLoc){0}, "out of memory");
        return -1;
    }
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0666);
    if (fd < 0 && errno == EEXIST && remove(tmp) == 0) fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0666);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    if (!f) {
        mil_error(d, (MilLoc){0}, "cannot open '%s' for writing: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            remove(tmp);
        }
        free(tmp);
        return -1;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        remove(tmp);
        free(tmp);
        return -1;
    }
    *tmp_out = tmp;
    return 0;
}

int mil_write_file_atomic(const char *path, const void *data, size_t len, MilDiag *d) {
    char *tmp = NULL;
    if (check_target(path, d) || write_temp(path, data, len, &tmp, d)) return -1;
    if (rename(tmp, path)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int mil_milb_weights_name(const char *milb_path, char *out, size_t size) {
    return milb_weights_name(milb_path, NULL, out, size);
}

int mil_milb_write_files(const MilProgram *p, const char *path, const MilbWriteOptions *opt, MilbStats *stats,
                         MilDiag *d) {
    char wname[1024], wpath[4096];
    if (mil_milb_weights_name(path, wname, sizeof wname)) {
        mil_error(d, (MilLoc){0}, "output path too long: %s", path);
        return -1;
    }
    const char *slash = strrchr(path, '/');
    snprintf(wpath, sizeof wpath, "%.*s%s", slash ? (int)(slash - path + 1) : 0, path, wname);
    MilbWriteOptions o = {0};
    if (opt) o = *opt;
    o.weight_path = MILB_WEIGHTS_SELF;   /* name-independent bytes (ir/milbin.h) */
    MilbOutput out;
    if (mil_milb_write(p, &o, &out, d)) return -1;
    /* Both files go to temporary names first and are renamed into place only
     * when both were written, so a failed run leaves nothing new behind; a
     * stale weight file is removed only once the .milb is in place. */
    int rc = check_target(path, d) || check_target(wpath, d) ? -1 : 0;
    char *mtmp = NULL, *wtmp = NULL;
    if (!rc) rc = write_temp(path, out.milb, out.milb_len, &mtmp, d);
    if (!rc && out.weights_len) rc = write_temp(wpath, out.weights, out.weights_len, &wtmp, d);
    if (!rc && wtmp && rename(wtmp, wpath)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': %s", wpath, strerror(errno));
        rc = -1;
    }
    if (!rc) {
        if (wtmp) {
            free(wtmp);
            wtmp = NULL;
        }
        if (rename(mtmp, path)) {
            mil_error(d, (MilLoc){0}, "cannot write '%s': %s", path, strerror(errno));
            rc = -1;
        } else {
            free(mtmp);
            mtmp = NULL;
            if (!out.weights_len) remove(wpath); /* dynamic weights: no weight file, and no stale one */
        }
    }
    if (mtmp) remove(mtmp);
    if (wtmp) remove(wtmp);
    free(mtmp);
    free(wtmp);
    if (stats) *stats = out.stats;
    mil_milb_output_free(&out);
    return rc;
}

void mil_milb_print_stats(const MilbStats *s, const char *path, FILE *out) {
    fprintf(out, "milb: %s: %zu bytes (header+table+checksum %zu", path ? path : "-", s->total, s->header);
    for (int id = 1; id <= MILB_SEC_MAX; id++)
        if (s->sections[id]) fprintf(out, ", %s %zu", milb_section_name(id), s->sections[id]);
    fprintf(out, ")\n");
    fprintf(out, "milb: %d functions, %d ops, %d strings, %d types, %d constants, %d weight refs\n", s->nfuncs, s->nops,
            s->nstrings, s->ntypes, s->nconsts, s->nweights);
    fprintf(out, "milb: weights: %d blobs, %zu bytes; content hash %016llx\n", s->nblobs, s->weight_bytes,
            (unsigned long long)s->content_hash);
    fprintf(out, "milb: names: %s; debug info: %s\n", s->stripped ? "stripped (inputs and outputs only)" : "kept",
            s->sections[MILB_SEC_DEBUG] ? "yes" : "no");
}
