/* runtime/npy.c -- NumPy .npy read/write (format 1.0, 2.0, 3.0).
 *
 * Layout (numpy/lib/format.py): "\x93NUMPY", major, minor, header length
 * (u16 LE for 1.x, u32 LE for 2.x/3.x), then an ASCII (3.x: UTF-8) Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ended by '\n', then the raw array data.  Only
 * C-order arrays of plain numeric/bool descrs are accepted; every malformed or
 * truncated file is reported, never trusted.
 */
#include "runtime/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Cur {
    const char *p, *end;
} Cur;

static void skip_ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool eat(Cur *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return true; }
    return false;
}

/* A quoted Python string (no escapes needed for the keys and descrs). */
static bool parse_str(Cur *c, char *out, size_t size) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= size) return false;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    out[n] = 0;
    return true;
}

static bool parse_word(Cur *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) { c->p += n; return true; }
    return false;
}

static int parse_shape(Cur *c, int *rank, int64_t *dims, MilRtErr *e, const char *what) {
    if (!eat(c, '(')) return mil_rt_errf(e, "%s: malformed header: 'shape' is not a tuple", what);
    *rank = 0;
    for (;;) {
        if (eat(c, ')')) return 0;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return mil_rt_errf(e, "%s: malformed header: bad dimension in 'shape'", what);
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return mil_rt_errf(e, "%s: dimension too large", what);
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && (*c->p == 'L')) c->p++;  /* Python 2 long */
        if (*rank >= MIL_MAX_RANK) return mil_rt_errf(e, "%s: rank above %d", what, MIL_MAX_RANK);
        dims[(*rank)++] = v;
        if (eat(c, ',')) continue;
        if (eat(c, ')')) return 0;
        return mil_rt_errf(e, "%s: malformed header: 'shape' tuple not closed", what);
    }
}

static int descr_dtype(const char *d, MilDType *dt, bool *swap) {
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=') return -1;
    *swap = order == '>';
    static const struct { const char *s; MilDType dt; } tab[] = {
        {"f2", MIL_DT_FP16}, {"f4", MIL_DT_FP32}, {"f8", MIL_DT_FP64},
        {"i1", MIL_DT_INT8}, {"i2", MIL_DT_INT16}, {"i4", MIL_DT_INT32}, {"i8", MIL_DT_INT64},
        {"u1", MIL_DT_UINT8}, {"u2", MIL_DT_UINT16}, {"u4", MIL_DT_UINT32}, {"u8", MIL_DT_UINT64},
        {"b1", MIL_DT_BOOL},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(d + 1, tab[i].s) == 0) { *dt = tab[i].dt; return 0; }
    return -1;
}

static void byteswap(void *data, int64_t n, size_t es) {
    uint8_t *p = data;
    for (int64_t i = 0; i < n; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static int read_mem(const void *buf, size_t len, MilRtTensor *out, MilRtErr *e, const char *what) {
    const uint8_t *b = buf;
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return mil_rt_errf(e, "%s: not a .npy file (bad magic)", what);
    int major = b[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return mil_rt_errf(e, "%s: truncated header", what);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        return mil_rt_errf(e, "%s: unsupported .npy format version %d.%d", what, major, b[7]);
    }
    if (hlen > len - hstart) return mil_rt_errf(e, "%s: truncated header", what);
    Cur c = {(const char *)b + hstart, (const char *)b + hstart + hlen};
    char descr[32] = "", key[32];
    int have = 0, fortran = 0, rank = 0;
    int64_t dims[MIL_MAX_RANK];
    if (!eat(&c, '{')) return mil_rt_errf(e, "%s: malformed header: expected '{'", what);
    for (;;) {
        if (eat(&c, '}')) break;
        if (!parse_str(&c, key, sizeof key)) return mil_rt_errf(e, "%s: malformed header: expected a key", what);
        if (!eat(&c, ':')) return mil_rt_errf(e, "%s: malformed header: expected ':' after '%s'", what, key);
        if (strcmp(key, "descr") == 0) {
            if (!parse_str(&c, descr, sizeof descr))
                return mil_rt_errf(e, "%s: unsupported dtype (structured or malformed 'descr')", what);
            have |= 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&c, "True")) fortran = 1;
            else if (parse_word(&c, "False")) fortran = 0;
            else return mil_rt_errf(e, "%s: malformed header: 'fortran_order' is not True/False", what);
            have |= 2;
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(&c, &rank, dims, e, what)) return -1;
            have |= 4;
        } else {
            return mil_rt_errf(e, "%s: malformed header: unexpected key '%s'", what, key);
        }
        if (eat(&c, ',')) continue;
        if (eat(&c, '}')) break;
        return mil_rt_errf(e, "%s: malformed header: expected ',' or '}'", what);
    }
    if (have != 7)
        return mil_rt_errf(e, "%s: malformed header: missing '%s'", what,
                           !(have & 1) ? "descr" : !(have & 2) ? "fortran_order" : "shape");
    if (fortran)
        return mil_rt_errf(e, "%s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", what);
    MilDType dt;
    bool swap;
    if (descr_dtype(descr, &dt, &swap))
        return mil_rt_errf(e, "%s: unsupported dtype '%s'", what, descr);
    size_t es = mil_rt_dtype_size(dt);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] != 0 && n > INT64_MAX / 64 / dims[i])
            return mil_rt_errf(e, "%s: array too large", what);
        n *= dims[i];
    }
    size_t data_at = hstart + hlen, avail = len - data_at, need = (size_t)n * es;
    if (avail < need)
        return mil_rt_errf(e, "%s: truncated data: expected %zu bytes, found %zu", what, need, avail);
    if (avail > need)
        return mil_rt_errf(e, "%s: %zu unexpected bytes after the array data", what, avail - need);
    MilRtTensor t = {.dtype = dt, .rank = rank};
    memcpy(t.dims, dims, sizeof(int64_t) * (size_t)rank);
    if (mil_rt_tensor_alloc(&t, e)) return -1;
    memcpy(t.data, b + data_at, need);
    if (swap && es > 1) byteswap(t.data, n, es);
    if (dt == MIL_DT_BOOL)
        for (int64_t i = 0; i < n; i++) ((uint8_t *)t.data)[i] = ((uint8_t *)t.data)[i] != 0;
    *out = t;
    return 0;
}

int mil_rt_npy_read_mem(const void *buf, size_t len, MilRtTensor *out, MilRtErr *e) {
    return read_mem(buf, len, out, e, "<memory>");
}

int mil_rt_npy_read(const char *path, MilRtTensor *out, MilRtErr *e) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return mil_rt_errf(e, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, r;
    uint8_t *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf) return mil_rt_errf(e, "%s: out of memory", path);
    if (err) { free(buf); return mil_rt_errf(e, "%s: read error", path); }
    int rc = read_mem(buf, n, out, e, path);
    free(buf);
    return rc;
}

static const char *npy_descr(MilDType dt) {
    switch (dt) {
    case MIL_DT_FP16: return "<f2";
    case MIL_DT_FP32: case MIL_DT_BF16: return "<f4";
    case MIL_DT_FP64: return "<f8";
    case MIL_DT_INT8: return "|i1";
    case MIL_DT_INT16: return "<i2";
    case MIL_DT_INT32: return "<i4";
    case MIL_DT_INT64: return "<i8";
    case MIL_DT_UINT8: return "|u1";
    case MIL_DT_UINT16: return "<u2";
    case MIL_DT_UINT32: return "<u4";
    case MIL_DT_UINT64: return "<u8";
    case MIL_DT_BOOL: return "|b1";
    default: return NULL;
    }
}

int mil_rt_npy_write_mem(const MilRtTensor *t, void **bufp, size_t *lenp, MilRtErr *e) {
    *bufp = NULL;
    *lenp = 0;
    const char *descr = npy_descr(t->dtype);
    if (!descr) return mil_rt_errf(e, "dtype %s has no .npy equivalent", mil_rt_dtype_name(t->dtype));
    char dict[64 + MIL_MAX_RANK * 24];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->rank == 1 ? "," : "");
    size_t pre = 10, hl = (size_t)n + 1;  /* + '\n' */
    int major = 1;
    if (((pre + hl + 63) & ~(size_t)63) - pre > 65535) { major = 2; pre = 12; }
    size_t total_hdr = (pre + hl + 63) & ~(size_t)63;
    hl = total_hdr - pre;
    int64_t cnt = mil_rt_numel(t);
    size_t es = t->dtype == MIL_DT_BF16 ? 4 : mil_rt_dtype_size(t->dtype);
    size_t len = total_hdr + (size_t)cnt * es;
    uint8_t *b = malloc(len ? len : 1);
    if (!b) return mil_rt_errf(e, "out of memory");
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    if (major == 1) {
        b[8] = (uint8_t)hl;
        b[9] = (uint8_t)(hl >> 8);
    } else {
        for (int i = 0; i < 4; i++) b[8 + i] = (uint8_t)(hl >> (8 * i));
    }
    memset(b + pre, ' ', hl);
    memcpy(b + pre, dict, (size_t)n);
    b[total_hdr - 1] = '\n';
    if (t->dtype == MIL_DT_BF16) {
        float *d = (float *)(b + total_hdr);
        for (int64_t i = 0; i < cnt; i++) {
            float v = (float)mil_rt_get_f64(t, i);
            memcpy((uint8_t *)d + 4 * i, &v, 4);
        }
    } else if (cnt) {
        memcpy(b + total_hdr, t->data, (size_t)cnt * es);
    }
    *bufp = b;
    *lenp = len;
    return 0;
}

int mil_rt_npy_write(const char *path, const MilRtTensor *t, MilRtErr *e) {
    void *buf;
    size_t len;
    if (mil_rt_npy_write_mem(t, &buf, &len, e)) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return mil_rt_errf(e, "%s: %s", path, strerror(errno));
    }
    bool ok = fwrite(buf, 1, len, f) == len;
    if (fclose(f) != 0) ok = false;
    free(buf);
    if (!ok) return mil_rt_errf(e, "%s: write error", path);
    return 0;
}
