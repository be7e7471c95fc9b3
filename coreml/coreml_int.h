/* coreml/coreml_int.h -- private to coreml/: the protobuf-c types generated
 * from coreml.proto, and helpers shared by the reader and the writer. */
#ifndef MILC_COREML_INT_H
#define MILC_COREML_INT_H

#include "coreml/coreml.h"
#include "coreml.pb-c.h"

/* Manifest.json (manifest.c) */
int cml_read_all(const char *path, char **buf, size_t *len, const char *shown, MilDiag *d);
/* PKG/Data/<root model path> into model_path; 0 or -1 (reported). */
int cml_manifest_root(const char *pkg, char *model_path, size_t size, MilDiag *d);
/* The manifest coremltools writes, with ids derived from h1/h2 (malloc'd). */
char *cml_manifest_text(uint64_t h1, uint64_t h2);

/* wire.c: after protobuf-c refused buf, finds the first problem by walking
 * the wire format along the message descriptors, and describes it with the
 * field path ("Model.mlProgram(502) > Program.functions(2): truncated
 * length-delimited field at byte 123") into msg. */
void cml_wire_explain(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, char *msg,
                      size_t size);

/* Opset names: "CoreML7" <-> "ios17".  NULL when unknown. */
const char *cml_opset_to_tag(const char *opset);
const char *cml_tag_to_opset(const char *tag);

#endif /* MILC_COREML_INT_H */
