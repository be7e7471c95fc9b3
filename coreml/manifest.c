/* coreml/manifest.c -- Manifest.json of a package: finding the root model.
 *
 * The manifest is a small JSON object:
 *   { "fileFormatVersion": "1.0.0",
 *     "itemInfoEntries": { "<id>": { "author": ..., "description": ...,
 *                                    "name": ..., "path": "com.apple.CoreML/model.mlmodel" }, ... },
 *     "rootModelIdentifier": "<id>" }
 * Only three keys matter, so a strict little JSON parser (a tree of nodes,
 * errors at line:col) is clearer than a library dependency.  Paths are
 * relative to PKG/Data and must not leave it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coreml/coreml_int.h"

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct JNode JNode;
struct JNode {
    int kind;
    char *str;                 /* J_STR (decoded) */
    int n;                     /* J_ARR / J_OBJ members */
    char **keys;               /* J_OBJ */
    JNode **kids;
};

typedef struct JParser {
    const char *s;
    size_t len, i;
    int line;
    size_t line_start;
    const char *file;
    MilDiag *d;
    bool failed;
} JParser;

static void jfree(JNode *n) {
    if (!n) return;
    for (int i = 0; i < n->n; i++) {
        if (n->keys) free(n->keys[i]);
        jfree(n->kids[i]);
    }
    free(n->keys);
    free(n->kids);
    free(n->str);
    free(n);
}

static void jerr(JParser *p, const char *msg) {
    if (p->failed) return;
    p->failed = true;
    mil_error(p->d, ((MilLoc){p->file, p->line, (int)(p->i - p->line_start) + 1}), "malformed JSON: %s", msg);
}

static void skip_ws(JParser *p) {
    while (p->i < p->len) {
        char c = p->s[p->i];
        if (c == '\n') {
            p->line++;
            p->line_start = p->i + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            break;
        }
        p->i++;
    }
}

static char *jstring(JParser *p) {
    /* at '"'; the decoded text is never longer than the source */
    size_t start = ++p->i, k = 0;
    char *out = malloc(p->len - start + 1);
    if (!out) {
        jerr(p, "out of memory");
        return NULL;
    }
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            out[k] = 0;
            return out;
        }
        if (c < 0x20) break;
        if (c == '\\') {
            if (++p->i >= p->len) break;
            char e = p->s[p->i];
            const char *map = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *m = strchr(map, e);
            if (e && m) {
                out[k++] = to[m - map];
            } else if (e == 'u' && p->i + 4 < p->len) {
                unsigned v = 0;
                for (int j = 1; j <= 4; j++) {
                    char h = p->s[p->i + j];
                    int x = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (x < 0) {
                        jerr(p, "bad \\u escape");
                        free(out);
                        return NULL;
                    }
                    v = v * 16 + (unsigned)x;
                }
                p->i += 4;
                if (v < 0x80) out[k++] = (char)v;  /* non-ASCII names are kept as '?' */
                else out[k++] = '?';
            } else {
                jerr(p, "bad escape in string");
                free(out);
                return NULL;
            }
            p->i++;
            continue;
        }
        out[k++] = (char)c;
        p->i++;
    }
    jerr(p, "unterminated string");
    free(out);
    return NULL;
}

static JNode *jvalue(JParser *p, int depth);

static bool jpush(JParser *p, JNode *n, char *key, JNode *kid) {
    char **nk = n->kind == J_OBJ ? realloc(n->keys, sizeof *nk * (size_t)(n->n + 1)) : NULL;
    if (n->kind == J_OBJ && nk) n->keys = nk;
    JNode **kk = realloc(n->kids, sizeof *kk * (size_t)(n->n + 1));
    if (kk) n->kids = kk;
    if (!kk || (n->kind == J_OBJ && !nk)) {
        jerr(p, "out of memory");
        free(key);
        jfree(kid);
        return false;
    }
    if (n->kind == J_OBJ) n->keys[n->n] = key;
    n->kids[n->n++] = kid;
    return true;
}

static JNode *jcontainer(JParser *p, int depth, bool obj) {
    JNode *n = calloc(1, sizeof *n);
    if (!n) {
        jerr(p, "out of memory");
        return NULL;
    }
    n->kind = obj ? J_OBJ : J_ARR;
    p->i++;
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == (obj ? '}' : ']')) {
        p->i++;
        return n;
    }
    for (;;) {
        char *key = NULL;
        if (obj) {
            skip_ws(p);
            if (p->i >= p->len || p->s[p->i] != '"') {
                jerr(p, "expected a string key");
                break;
            }
            if (!(key = jstring(p))) break;
            for (int i = 0; i < n->n; i++)
                if (!strcmp(n->keys[i], key)) {
                    jerr(p, "duplicate key");
                    break;
                }
            skip_ws(p);
            if (p->failed || p->i >= p->len || p->s[p->i] != ':') {
                jerr(p, "expected ':'");
                free(key);
                break;
            }
            p->i++;
        }
        JNode *kid = jvalue(p, depth + 1);
        if (!kid) {
            free(key);
            break;
        }
        if (!jpush(p, n, key, kid)) break;
        skip_ws(p);
        if (p->i < p->len && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->len && p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
            return n;
        }
        jerr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        break;
    }
    jfree(n);
    return NULL;
}

static JNode *jvalue(JParser *p, int depth) {
    skip_ws(p);
    if (depth > 32) {
        jerr(p, "nested too deeply");
        return NULL;
    }
    if (p->i >= p->len) {
        jerr(p, "unexpected end of file");
        return NULL;
    }
    char c = p->s[p->i];
    if (c == '{' || c == '[') return jcontainer(p, depth, c == '{');
    JNode *n = calloc(1, sizeof *n);
    if (!n) {
        jerr(p, "out of memory");
        return NULL;
    }
    if (c == '"') {
        n->kind = J_STR;
        if (!(n->str = jstring(p))) {
            free(n);
            return NULL;
        }
        return n;
    }
    static const struct { const char *w; int kind; } words[] = {{"true", J_BOOL}, {"false", J_BOOL}, {"null", J_NULL}};
    for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
        size_t k = strlen(words[w].w);
        if (p->len - p->i >= k && !memcmp(p->s + p->i, words[w].w, k)) {
            p->i += k;
            n->kind = words[w].kind;
            return n;
        }
    }
    size_t st = p->i;
    if (p->i < p->len && p->s[p->i] == '-') p->i++;
    while (p->i < p->len && strchr("0123456789.eE+-", p->s[p->i])) p->i++;
    if (p->i > st && p->s[p->i - 1] >= '0' && p->s[p->i - 1] <= '9') {
        n->kind = J_NUM;
        return n;
    }
    p->i = st;
    free(n);
    jerr(p, "expected a value");
    return NULL;
}

static const JNode *jget(const JNode *obj, const char *key) {
    if (!obj || obj->kind != J_OBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return obj->kids[i];
    return NULL;
}

int cml_read_all(const char *path, char **buf, size_t *len, const char *shown, MilDiag *d) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mil_error(d, ((MilLoc){mil_diag_add_source(d, shown, NULL, 0), 0, 0}), "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    bool bad = !b || ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        mil_error(d, ((MilLoc){mil_diag_add_source(d, shown, NULL, 0), 0, 0}), "cannot read: %s",
                  b ? strerror(EIO) : "out of memory");
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* A path inside the package: relative, no "..", no empty components. */
static bool safe_rel_path(const char *s) {
    if (!*s || *s == '/') return false;
    for (const char *c = s; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return false;
        c += n + (e ? 1 : 0);
        if (e && !*c) return false;
    }
    return true;
}

int cml_manifest_root(const char *pkg, char *model_path, size_t size, MilDiag *d) {
    char mpath[4200];
    int k = snprintf(mpath, sizeof mpath, "%s/Manifest.json", pkg);
    if (k < 0 || (size_t)k >= sizeof mpath) {
        mil_error(d, (MilLoc){0}, "%s: path too long", pkg);
        return -1;
    }
    char *text;
    size_t len;
    if (cml_read_all(mpath, &text, &len, mpath, d)) return -1;
    const char *file = mil_diag_add_source(d, mpath, text, len);
    JParser p = {.s = text, .len = len, .line = 1, .file = file, .d = d};
    JNode *root = jvalue(&p, 0);
    skip_ws(&p);
    if (root && p.i < p.len) jerr(&p, "unexpected text after the top-level value");
    int rc = -1;
    MilLoc at = {file, 0, 0};
    if (p.failed) goto done;
    const JNode *id = jget(root, "rootModelIdentifier"), *items = jget(root, "itemInfoEntries");
    if (!root || root->kind != J_OBJ) {
        mil_error(d, at, "the manifest is not a JSON object");
    } else if (!id || id->kind != J_STR) {
        mil_error(d, at, "no \"rootModelIdentifier\" string");
    } else if (!items || items->kind != J_OBJ) {
        mil_error(d, at, "no \"itemInfoEntries\" object");
    } else {
        const JNode *item = jget(items, id->str), *path = jget(item, "path");
        if (!item) {
            mil_error(d, at, "rootModelIdentifier \"%s\" is not in itemInfoEntries", id->str);
        } else if (!path || path->kind != J_STR) {
            mil_error(d, at, "item \"%s\" has no \"path\" string", id->str);
        } else if (!safe_rel_path(path->str)) {
            mil_error(d, at, "item \"%s\": path \"%s\" is not a relative path inside Data/", id->str, path->str);
        } else {
            k = snprintf(model_path, size, "%s/Data/%s", pkg, path->str);
            if (k < 0 || (size_t)k >= size) mil_error(d, at, "path too long");
            else rc = 0;
        }
    }
done:
    jfree(root);
    free(text);
    return rc;
}

bool mil_coreml_is_package(const char *path) {
    if (!path) return false;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    if (n >= 10 && !strncmp(path + n - 10, ".mlpackage", 10)) return true;
    char m[4200];
    struct stat st;
    int k = snprintf(m, sizeof m, "%s/Manifest.json", path);
    return k > 0 && (size_t)k < sizeof m && stat(m, &st) == 0 && S_ISREG(st.st_mode);
}

int mil_coreml_model_dir(const char *pkg, char *dir, size_t size, MilDiag *d) {
    char mp[4200];
    if (cml_manifest_root(pkg, mp, sizeof mp, d)) return -1;
    char *slash = strrchr(mp, '/');
    *slash = 0; /* cml_manifest_root always writes PKG/Data/... */
    int k = snprintf(dir, size, "%s", mp);
    if (k < 0 || (size_t)k >= size) {
        mil_error(d, (MilLoc){0}, "%s: path too long", pkg);
        return -1;
    }
    return 0;
}

/* Deterministic item ids: UUID-shaped text from a 128-bit hash. */
static void uuid_text(uint64_t a, uint64_t b, char out[37]) {
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
             (unsigned)a & 0xfff, (unsigned)(0x8000 | ((b >> 48) & 0x3fff)), (unsigned long long)(b & 0xffffffffffffull));
}

char *cml_manifest_text(uint64_t h1, uint64_t h2) {
    char model_id[37], weights_id[37];
    uuid_text(h1, h2, model_id);
    uuid_text(h2 ^ 0x9e3779b97f4a7c15ull, h1 * 0xff51afd7ed558ccdull, weights_id);
    const char *fmt =
        "{\n"
        "    \"fileFormatVersion\": \"1.0.0\",\n"
        "    \"itemInfoEntries\": {\n"
        "        \"%s\": {\n"
        "            \"author\": \"com.apple.CoreML\",\n"
        "            \"description\": \"CoreML Model Specification\",\n"
        "            \"name\": \"model.mlmodel\",\n"
        "            \"path\": \"com.apple.CoreML/model.mlmodel\"\n"
        "        },\n"
        "        \"%s\": {\n"
        "            \"author\": \"com.apple.CoreML\",\n"
        "            \"description\": \"CoreML Model Weights\",\n"
        "            \"name\": \"weights\",\n"
        "            \"path\": \"com.apple.CoreML/weights\"\n"
        "        }\n"
        "    },\n"
        "    \"rootModelIdentifier\": \"%s\"\n"
        "}\n";
    size_t n = strlen(fmt) + 3 * 37;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, model_id, weights_id, model_id);
    return s;
}
