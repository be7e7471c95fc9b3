/* bench/blas_compare.c -- OpenBLAS vs BLIS vs oneDNN sgemm on the seed
 * layer's GEMM shapes (forward and the backward's transposed ones), in one
 * run (the libraries are dlopen'ed, so one binary measures all three; any
 * that is not installed is skipped).  How the CPU device's BLAS was chosen
 * (README "CPU device"); part of `make bench`, or alone:
 *   build/bench/blas_compare [REPEATS]
 * Modes per library: "1t" one thread; "lib2" the library's own 2 threads;
 * "split2" two of our threads each calling the single-threaded library on one
 * half of the rows of C (at a multiple of 32, what the CPU device's pool
 * does).  Best of REPEATS; the libraries take turns per shape so that a
 * noisy neighbour hurts all of them alike. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                               float *, int);
typedef int (*dnnl_sgemm_fn)(char, char, long, long, long, float, const float *, long, const float *, long, float,
                             float *, long);
typedef void (*setn_fn)(int);

enum { ROW = 101, NT = 111, T = 112 };
typedef struct Lib {
    const char *name;
    cblas_sgemm_fn cb;
    dnnl_sgemm_fn dn;
    setn_fn setn;
} Lib;

typedef struct Job {
    const Lib *lib;
    int ta, tb, M, N, K;
    const float *A, *B;
    float *C;
    int m0, m1;
} Job;

/* C[m0:m1, :] = op(A) * op(B), op(A) = A ([M,K]) or A^T (A is [K,M]),
 * op(B) = B ([K,N]) or B^T (B is [N,K]); row-major throughout */
static void gemm(const Job *j) {
    int m = j->m1 - j->m0, lda = j->ta ? j->M : j->K, ldb = j->tb ? j->K : j->N;
    const float *A = j->ta ? j->A + j->m0 : j->A + (size_t)j->m0 * j->K;
    float *C = j->C + (size_t)j->m0 * j->N;
    if (j->lib->cb)
        j->lib->cb(ROW, j->ta ? T : NT, j->tb ? T : NT, m, j->N, j->K, 1.0f, A, lda, j->B, ldb, 0.0f, C, j->N);
    else
        j->lib->dn(j->ta ? 'T' : 'N', j->tb ? 'T' : 'N', m, j->N, j->K, 1.0f, A, lda, j->B, ldb, 0.0f, C, j->N);
}

static void *worker(void *arg) {
    Job *j = arg;
    gemm(j);
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    Lib libs[3] = {{"OpenBLAS 0.3.21", 0, 0, 0}, {"BLIS 0.9", 0, 0, 0}, {"oneDNN 2.6", 0, 0, 0}};
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (h) { libs[0].cb = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm"); libs[0].setn = (setn_fn)dlsym(h, "openblas_set_num_threads"); }
    h = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h) { libs[1].cb = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm"); libs[1].setn = (setn_fn)dlsym(h, "bli_thread_set_num_threads"); }
    h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    void *g = dlopen("libgomp.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h && g) { libs[2].dn = (dnnl_sgemm_fn)dlsym(h, "dnnl_sgemm"); libs[2].setn = (setn_fn)dlsym(g, "omp_set_num_threads"); }
    /* {ta, tb, M, N, K}.  Forward: linear [S,K] x [N,K]^T; 1x1 conv [Cout,Cin] x [Cin,S].
     * Backward of the conv layout: dX = W^T dY (A^T B), dW = dY X^T (A B^T, K = S). */
    static const int shapes[][5] = {{0, 1, 512, 768, 768},  {0, 1, 512, 2048, 768}, {0, 1, 512, 768, 2048},
                                    {0, 0, 768, 512, 768},  {0, 0, 2048, 512, 768}, {0, 0, 768, 512, 2048},
                                    {1, 0, 768, 512, 768},  {1, 0, 768, 512, 2048}, {1, 0, 2048, 512, 768},
                                    {0, 1, 768, 768, 512},  {0, 1, 2048, 768, 512}, {0, 1, 768, 2048, 512}};
    enum { NS = sizeof shapes / sizeof shapes[0] };
    size_t big = 2048 * 768;
    float *A = malloc(big * 4), *B = malloc(big * 4), *C = malloc(big * 4);
    if (!A || !B || !C) return 1;
    for (size_t i = 0; i < big; i++) { A[i] = (float)(i % 17) / 17 - 0.5f; B[i] = (float)(i % 13) / 13 - 0.5f; }
    static double best[3][NS][3];
    for (size_t s = 0; s < NS; s++) {
        int ta = shapes[s][0], tb = shapes[s][1], M = shapes[s][2], N = shapes[s][3], K = shapes[s][4];
        for (int l = 0; l < 3; l++) {
            Lib *L = &libs[l];
            if (!L->cb && !L->dn) continue;
            for (int mode = 0; mode < 3; mode++) {
                if (L->setn) L->setn(mode == 1 ? 2 : 1);
                best[l][s][mode] = 1e9;
                for (int r = 0; r < reps + 1; r++) {
                    int half = M / 2 / 32 * 32;
                    Job j[2] = {{L, ta, tb, M, N, K, A, B, C, 0, M}, {L, ta, tb, M, N, K, A, B, C, half, M}};
                    double t0 = now();
                    if (mode < 2) gemm(&j[0]);
                    else {
                        pthread_t th;
                        j[0].m1 = half;
                        if (pthread_create(&th, NULL, worker, &j[1])) return 1;
                        gemm(&j[0]);
                        pthread_join(th, NULL);
                    }
                    double dt = now() - t0;
                    if (r > 0 && dt < best[l][s][mode]) best[l][s][mode] = dt;
                }
            }
        }
    }
    printf("%-16s %-24s %8s %8s %8s   (GFLOP/s, best of %d)\n", "library", "shape (op(A) op(B) MxNxK)", "1t", "lib2",
           "split2", reps);
    for (int l = 0; l < 3; l++) {
        Lib *L = &libs[l];
        if (!L->cb && !L->dn) { printf("%-16s not installed\n", L->name); continue; }
        double tot[3] = {0, 0, 0}, flop_tot = 0;
        for (size_t s = 0; s < NS; s++) {
            int ta = shapes[s][0], tb = shapes[s][1], M = shapes[s][2], N = shapes[s][3], K = shapes[s][4];
            double fl = 2.0 * M * N * K;
            flop_tot += fl;
            for (int mode = 0; mode < 3; mode++) tot[mode] += best[l][s][mode];
            char sh[64];
            snprintf(sh, sizeof sh, "%s%s %dx%dx%d", ta ? "A^T" : "A", tb ? "B^T" : "B", M, N, K);
            printf("%-16s %-24s %8.1f %8.1f %8.1f\n", L->name, sh, fl / best[l][s][0] * 1e-9,
                   fl / best[l][s][1] * 1e-9, fl / best[l][s][2] * 1e-9);
        }
        printf("%-16s %-24s %8.1f %8.1f %8.1f   (all %d: ms %.2f / %.2f / %.2f)\n", L->name, "total",
               flop_tot / tot[0] * 1e-9, flop_tot / tot[1] * 1e-9, flop_tot / tot[2] * 1e-9, (int)NS, tot[0] * 1e3,
               tot[1] * 1e3, tot[2] * 1e3);
    }
    free(A);
    free(B);
    free(C);
    return 0;
}
