/* coreml/wire.c -- why a protobuf does not parse.  protobuf-c only says
 * "no"; this walks the wire format along the generated message descriptors
 * and names the first field that is truncated or has a wrong wire type, with
 * its path from the top message (Model.mlProgram(502).functions(2)...: field
 * names with their numbers) and its byte offset. */
#include <stdio.h>
#include <string.h>

#include "coreml/coreml_int.h"

typedef struct Walk {
    const uint8_t *b;
    size_t len;
    char *msg;
    size_t size;
} Walk;

static bool varint(const Walk *w, size_t *i, size_t end, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 70; s += 7) {
        if (*i >= end) return false;
        uint8_t c = w->b[(*i)++];
        if (s < 64) *v |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) return true;
    }
    return false;
}

static int wire_of(const ProtobufCFieldDescriptor *f) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_DOUBLE: return 1;
    case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FLOAT: return 5;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_BYTES: case PROTOBUF_C_TYPE_MESSAGE: return 2;
    default: return 0;
    }
}

static const char *wire_name(int wt) {
    static const char *n[] = {"varint", "64-bit", "length-delimited", "group start", "group end", "32-bit", "6", "7"};
    return n[wt & 7];
}

/* true when [start, end) is a valid encoding of desc; else msg is set. */
static bool walk(Walk *w, const ProtobufCMessageDescriptor *desc, size_t start, size_t end, const char *path,
                 int depth) {
    size_t i = start;
    while (i < end) {
        size_t at = i;
        uint64_t tag, n;
        if (!varint(w, &i, end, &tag)) {
            snprintf(w->msg, w->size, "%s: truncated field tag at byte %zu", path, at);
            return false;
        }
        unsigned num = (unsigned)(tag >> 3);
        int wt = (int)(tag & 7);
        const ProtobufCFieldDescriptor *f = num ? protobuf_c_message_descriptor_get_field(desc, num) : NULL;
        char sub[1024];
        if (f) snprintf(sub, sizeof sub, "%s.%s(%u)", path, f->name, num);
        else snprintf(sub, sizeof sub, "%s.<field %u>", path, num);
        if (num == 0) {
            snprintf(w->msg, w->size, "%s: field number 0 at byte %zu", sub, at);
            return false;
        }
        if (f) {
            int want = wire_of(f);
            bool packed = f->label == PROTOBUF_C_LABEL_REPEATED && want != 2 && wt == 2;
            if (wt != want && !packed) {
                snprintf(w->msg, w->size, "%s: wire type %d (%s) at byte %zu, expected %d (%s)", sub, wt,
                         wire_name(wt), at, want, wire_name(want));
                return false;
            }
        }
        switch (wt) {
        case 0:
            if (!varint(w, &i, end, &n)) {
                snprintf(w->msg, w->size, "%s: truncated varint at byte %zu", sub, at);
                return false;
            }
            break;
        case 1: case 5: {
            size_t k = wt == 1 ? 8 : 4;
            if (end - i < k) {
                snprintf(w->msg, w->size, "%s: truncated %s value at byte %zu", sub, wire_name(wt), at);
                return false;
            }
            i += k;
            break;
        }
        case 2:
            if (!varint(w, &i, end, &n) || n > end - i) {
                snprintf(w->msg, w->size, "%s: truncated length-delimited field at byte %zu (%s)", sub, at,
                         i >= end ? "no length" : "length beyond the end");
                return false;
            }
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 100 &&
                !walk(w, f->descriptor, i, i + (size_t)n, sub, depth + 1))
                return false;
            i += (size_t)n;
            break;
        default:
            snprintf(w->msg, w->size, "%s: unsupported wire type %d at byte %zu", sub, wt, at);
            return false;
        }
    }
    return true;
}

void cml_wire_explain(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, char *msg,
                      size_t size) {
    Walk w = {buf, len, msg, size};
    if (walk(&w, desc, 0, len, desc->short_name, 0))
        snprintf(msg, size, "%s: the encoding is well-formed but protobuf-c refused it (invalid value or out of memory)",
                 desc->short_name);
}
