/* bench/bench_parse.c -- parse + verify + print throughput on the largest
 * corpus file (issue #2 figure; goal >= 30 MB/s) and peak memory.
 *
 * Peer in the same run: a plain byte scan that counts tokens the way a trivial
 * tokenizer would (characters classes only, no numbers converted), so the
 * ratio says how close to "just reading the bytes" the full front end is.
 * Usage: bench_parse [FILE] (default: the largest .mil in $MILC_CORPUS_DIR).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "frontend/frontend.h"
#include "ir/ir.h"

/* CPU time of this process: on a shared, loaded machine it is far steadier
 * than wall time (the work is single-threaded). */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; *len = (size_t)n; }
    return b;
}

static int largest(const char *dir, char *out, size_t size) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    off_t best = -1;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".mil")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && st.st_size > best) { best = st.st_size; snprintf(out, size, "%s", p); }
    }
    closedir(d);
    return best < 0 ? -1 : 0;
}

static volatile size_t sink;

static size_t scan_tokens(const char *s, size_t n) {
    size_t toks = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int w = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
        if (w && !in) toks++;
        if (!w && c > ' ') toks++;
        in = w;
    }
    return toks;
}

int main(int argc, char **argv) {
    char path[4096];
    if (argc > 1) snprintf(path, sizeof path, "%s", argv[1]);
    else {
        const char *dir = getenv("MILC_CORPUS_DIR");
        if (!dir || largest(dir, path, sizeof path) != 0) {
            fprintf(stderr, "bench_parse: no corpus directory (set MILC_CORPUS_DIR) and no FILE given\n");
            return 1;
        }
    }
    size_t len;
    char *text = slurp(path, &len);
    if (!text) { fprintf(stderr, "bench_parse: cannot read %s\n", path); return 1; }

    int iters = 0;
    double t0 = now(), t;
    size_t out_bytes = 0;
    do {
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = mil_parse(path, text, len, NULL, &d);
        if (!p || mil_verify(p, &d) != 0) {
            mil_diag_print(&d, stderr);
            return 1;
        }
        size_t olen;
        char *o = mil_print(p, MIL_SPELLING_SAME, &olen);
        out_bytes = olen;
        free(o);
        mil_program_free(p);
        mil_diag_free(&d);
        iters++;
        t = now() - t0;
    } while (t < 2.0 || iters < 3);
    double mbs = (double)len * iters / t / 1e6;

    int scans = 0;
    double s0 = now(), ts;
    do {
        sink += scan_tokens(text, len);
        scans++;
        ts = now() - s0;
    } while (ts < 0.5);
    double scan_mbs = (double)len * scans / ts / 1e6;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("file: %s (%zu bytes, printed %zu bytes)\n", path, len, out_bytes);
    printf("parse+verify+print: %.1f MB/s of CPU time (%d iterations, %.2f ms each)\n", mbs, iters, t / iters * 1e3);
    printf("peer byte-scan tokenizer: %.1f MB/s; front end / peer = %.3f\n", scan_mbs, mbs / scan_mbs);
    printf("peak RSS: %.1f MB (%.1f x the input size)\n", ru.ru_maxrss / 1024.0, ru.ru_maxrss * 1024.0 / (double)len);
    free(text);
    return 0;
}
