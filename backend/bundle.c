/* backend/bundle.c -- writes a model directory: DIR/model.mil plus
 * DIR/weights/weight.bin (MILBlob v2) holding every BLOBFILE constant the
 * program references and every inline tensor big enough to belong in a weight
 * file.  Used by `milc -o NAME.mlmodelc` and `milc --emit=ane-mil`.
 *
 * The directory is built under a temporary name next to DIR and renamed into
 * place only when everything has been written, so a failed run leaves no
 * partial output (an existing DIR is replaced only on success).
 *
 * Constants are rewritten in place (p's arena): a BLOBFILE constant becomes a
 * reference into the new weight file; blobs shared by several constants (same
 * source file, offset and type) are written once.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdarg.h>
#include <ftw.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"

#define BUNDLE_BLOB_PATH "@model_path/weights/weight.bin"

typedef struct BlobMap {
    const char *path;
    uint64_t off;
    const MilType *type;
    uint64_t new_off;
} BlobMap;

typedef struct Bundle {
    MilProgram *p;
    const MilBundleOptions *o;
    MilRtBlobWriter *w;
    MilRtBlobCache *cache;
    BlobMap *map;
    int n, cap;
    int nblobs;
    bool failed;
    MilDiag *d;
} Bundle;

/* coremltools' should_use_weight_file (mil-format.md §4.5), or a byte limit. */
static bool goes_to_file(const MilBundleOptions *o, MilDType dt, int64_t n) {
    if (!mil_rt_dtype_blob_code(dt)) return false;
    if (o->inline_max_bytes) return (size_t)n * mil_dtype_storage_size(dt) > o->inline_max_bytes;
    bool small_types = dt == MIL_DT_FP16 || dt == MIL_DT_FP32 || dt == MIL_DT_INT8 || dt == MIL_DT_UINT8;
    bool ios18_types = dt == MIL_DT_INT16 || dt == MIL_DT_UINT16 || dt == MIL_DT_INT32 || dt == MIL_DT_UINT32 ||
                       dt == MIL_DT_BF16;
    return n >= 10 && (small_types || ios18_types);
}

static MilConst *move_const(Bundle *b, MilConst *c, MilLoc loc) {
    if (!c || !c->type || c->type->kind != MIL_TY_TENSOR) return c;
    int64_t n = mil_type_numel(c->type);
    MilDType dt = c->type->dtype;
    MilRtErr e;
    uint64_t off;
    if (n < 0) {
        /* the weight file and model.mil would disagree about this constant */
        char ty[256];
        if (mil_type_format(c->type, MIL_SPELLING_SAME, ty, sizeof ty) < 0) snprintf(ty, sizeof ty, "tensor");
        mil_error(b->d, loc, "constant of type %s: tensor too large or of unknown size", ty);
        b->failed = true;
        return c;
    }
    if (!mil_rt_dtype_blob_code(dt)) return c;
    if (c->kind == MIL_CONST_BLOB) {
        for (int i = 0; i < b->n; i++)
            if (b->map[i].off == c->blob_offset && b->map[i].type == c->type && !strcmp(b->map[i].path, c->blob_path))
                return mil_const_blob(b->p, c->type, BUNDLE_BLOB_PATH, b->map[i].new_off);
        MilRtBlobFile *bf = mil_rt_blob_cache_get(b->cache, c->blob_path, &e);
        const void *data = NULL;
        void *owned = NULL;
        if (!bf || mil_rt_blob_read(bf, c->blob_offset, dt, n, &data, &owned, &e) ||
            mil_rt_blob_writer_append(b->w, dt, data, n, &off, &e)) {
            mil_error(b->d, loc, "%s", e.msg);
            free(owned);
            b->failed = true;
            return c;
        }
        free(owned);
        if (b->n == b->cap) {
            int cap = b->cap ? 2 * b->cap : 64;
            BlobMap *nm = realloc(b->map, sizeof *nm * (size_t)cap);
            if (!nm) {
                mil_error(b->d, loc, "out of memory");
                b->failed = true;
                return c;
            }
            b->map = nm;
            b->cap = cap;
        }
        b->map[b->n++] = (BlobMap){c->blob_path, c->blob_offset, c->type, off};
        b->nblobs++;
        return mil_const_blob(b->p, c->type, BUNDLE_BLOB_PATH, off);
    }
    if (c->kind == MIL_CONST_TENSOR && c->count == n && goes_to_file(b->o, dt, n)) {
        if (mil_rt_blob_writer_append(b->w, dt, c->data, n, &off, &e)) {
            mil_error(b->d, loc, "%s", e.msg);
            b->failed = true;
            return c;
        }
        b->nblobs++;
        return mil_const_blob(b->p, c->type, BUNDLE_BLOB_PATH, off);
    }
    return c;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

void mil_rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* snprintf into a path buffer; false (with a diagnostic) when it does not fit. */
static bool pathf(MilDiag *d, char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool pathf(MilDiag *d, char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        mil_error(d, (MilLoc){0}, "output path too long");
        return false;
    }
    return true;
}

static int write_text(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    bool ok = fwrite(text, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Fills the staging directory; 0 on success. */
static int fill_dir(MilProgram *p, const char *stage, const MilBundleOptions *o, MilDiag *d) {
    char path[4200];
    MilRtErr e;
    if (!pathf(d, path, sizeof path, "%s/weights", stage)) return -1;
    if (mkdir(path, 0777)) {
        mil_error(d, (MilLoc){0}, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    if (!pathf(d, path, sizeof path, "%s/weights/weight.bin", stage)) return -1;
    Bundle b = {.p = p, .o = o, .d = d};
    b.w = mil_rt_blob_writer_open(path, &e);
    if (!b.w) {
        mil_error(d, (MilLoc){0}, "%s", e.msg);
        return -1;
    }
    b.cache = mil_rt_blob_cache_new(o->model_dir ? o->model_dir : ".", o->weights_dir);
    for (int fi = 0; fi < p->nfuncs; fi++)
        for (MilOp *op = p->funcs[fi]->body.first; op; op = op->next) {
            for (int i = 0; i < op->nattrs; i++) op->attrs[i].val = move_const(&b, op->attrs[i].val, op->loc);
            for (int i = 0; i < op->nargs; i++)
                for (int j = 0; j < op->args[i].n; j++)
                    if (op->args[i].items[j].cst)
                        op->args[i].items[j].cst = move_const(&b, op->args[i].items[j].cst, op->args[i].loc);
        }
    if (mil_rt_blob_writer_close(b.w, &e)) {
        mil_error(d, (MilLoc){0}, "%s", e.msg);
        b.failed = true;
    }
    mil_rt_blob_cache_free(b.cache);
    free(b.map);
    if (b.failed) return -1;
    if (!b.nblobs && o->omit_empty_weights) remove(path); /* dynamic weights: nothing to store */
    if (o->weights_only) return 0;
    size_t len = 0;
    char *text = mil_print(p, o->spelling, &len);
    if (!text) {
        mil_error(d, (MilLoc){0}, "out of memory");
        return -1;
    }
    if (!pathf(d, path, sizeof path, "%s/model.mil", stage)) {
        free(text);
        return -1;
    }
    int rc = write_text(path, text, len);
    free(text);
    if (rc) mil_error(d, (MilLoc){0}, "cannot write '%s': %s", path, strerror(errno));
    return rc;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* True when every entry of directory path is accepted by ok (and path is a
 * real directory, not a symlink to one). */
static bool dir_only(const char *path, bool (*ok)(const char *parent, const char *name)) {
    struct stat st;
    if (lstat(path, &st) || !S_ISDIR(st.st_mode)) return false;
    DIR *dp = opendir(path);
    if (!dp) return false;
    bool good = true;
    struct dirent *de;
    while (good && (de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        good = ok(path, de->d_name);
    }
    closedir(dp);
    return good;
}

/* parent/name into buf; false when it does not fit. */
static bool join(char *buf, size_t size, const char *parent, const char *name) {
    int n = snprintf(buf, size, "%s/%s", parent, name);
    return n > 0 && (size_t)n < size;
}

/* True when parent/name exists (not followed if a symlink) and is of kind. */
static bool is_kind(const char *parent, const char *name, mode_t kind) {
    char path[4200];
    struct stat st;
    return join(path, sizeof path, parent, name) && !lstat(path, &st) && (st.st_mode & S_IFMT) == kind;
}

static bool weights_entry_ok(const char *parent, const char *name) {
    return has_suffix(name, ".bin") && is_kind(parent, name, S_IFREG);
}

static bool bundle_entry_ok(const char *parent, const char *name) {
    if (!strcmp(name, "model.mil") || !strcmp(name, "taps.json")) return is_kind(parent, name, S_IFREG);
    if (!strcmp(name, "weights")) {
        char path[4200];
        return join(path, sizeof path, parent, name) && dir_only(path, weights_entry_ok);
    }
    return false;
}

/* A directory this writer may replace: a previous model bundle (model.mil,
 * weights/ holding only .bin files, taps.json) and nothing else. */
static bool looks_like_bundle(const char *dir) {
    return is_kind(dir, "model.mil", S_IFREG) && dir_only(dir, bundle_entry_ok);
}

/* 0 when final may be written: absent, or an existing model bundle. */
static int check_target(const char *final, bool *had_old, MilDiag *d) {
    struct stat st;
    *had_old = false;
    if (lstat(final, &st)) {
        if (errno == ENOENT) return 0;
        mil_error(d, (MilLoc){0}, "cannot write '%s': %s", final, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': it is a symbolic link", final);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': it exists and is not a directory", final);
        return -1;
    }
    if (!looks_like_bundle(final)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': it exists and is not a model directory (remove it first)",
                  final);
        return -1;
    }
    *had_old = true;
    return 0;
}

int mil_bundle_write(MilProgram *p, const char *dir, const MilBundleOptions *opt, MilDiag *d) {
    MilBundleOptions none = {0};
    if (!opt) opt = &none;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    char stage[4200], old[4200], final[4200];
    if (!pathf(d, final, sizeof final, "%.*s", (int)n, dir) ||
        !pathf(d, stage, sizeof stage, "%s.tmp.%ld", final, (long)getpid()) ||
        !pathf(d, old, sizeof old, "%s.old.%ld", final, (long)getpid()))
        return -1;
    bool had_old;
    if (check_target(final, &had_old, d)) return -1;
    mil_rm_tree(stage);
    if (mkdir(stage, 0777)) {
        mil_error(d, (MilLoc){0}, "cannot create '%s': %s", final, strerror(errno));
        return -1;
    }
    if (fill_dir(p, stage, opt, d)) {
        mil_rm_tree(stage);
        return -1;
    }
    if (check_target(final, &had_old, d)) { /* re-check: it may have changed meanwhile */
        mil_rm_tree(stage);
        return -1;
    }
    if (had_old && rename(final, old)) {
        mil_error(d, (MilLoc){0}, "cannot replace '%s': %s", final, strerror(errno));
        mil_rm_tree(stage);
        return -1;
    }
    if (rename(stage, final)) {
        mil_error(d, (MilLoc){0}, "cannot create '%s': %s", final, strerror(errno));
        if (had_old && rename(old, final)) { /* best effort to restore */ }
        mil_rm_tree(stage);
        return -1;
    }
    if (had_old) mil_rm_tree(old);
    return 0;
}
