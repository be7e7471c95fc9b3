/* ir/print.c -- canonical MIL text (placeholder until the printer lands). */
#include "ir/ir_int.h"

char *mil_print(const MilProgram *p, MilSpelling sp, size_t *len) { return NULL; }
int mil_print_file(const MilProgram *p, MilSpelling sp, FILE *out) { return -1; }
int mil_format_fp16(uint16_t bits, char *buf) { buf[0] = 0; return 0; }
int mil_format_fp32(float v, char *buf) { buf[0] = 0; return 0; }
int mil_format_fp64(double v, char *buf) { buf[0] = 0; return 0; }
