/* bench/blas_compare.c -- OpenBLAS vs BLIS vs oneDNN sgemm on the seed
 * layer's GEMM shapes, in one run (the libraries are dlopen'ed, so one binary
 * measures all three; any that is not installed is skipped).  How the CPU
 * device's BLAS was chosen (README "CPU device"):
 *   cc -O2 bench/blas_compare.c -o blas_compare -ldl -lpthread && ./blas_compare [REPEATS]
 * Modes per library: "1t" one thread; "lib2" the library's own 2 threads;
 * "split2" two of our threads each calling the single-threaded library on one
 * half of the columns (what the CPU device's pool does).  Best of REPEATS. */
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
    int tb, M, N, K;
    const float *A, *B;
    float *C;
    int n0, n1;
} Job;

/* C[:, n0:n1] = A[M,K] * op(B) with op(B) = B^T ([N,K]) or B ([K,N]) */
static void gemm(const Job *j) {
    int n = j->n1 - j->n0, ldb = j->tb ? j->K : j->N;
    const float *B = j->tb ? j->B + (size_t)j->n0 * j->K : j->B + j->n0;
    if (j->lib->cb)
        j->lib->cb(ROW, NT, j->tb ? T : NT, j->M, n, j->K, 1.0f, j->A, j->K, B, ldb, 0.0f, j->C + j->n0, j->N);
    else
        j->lib->dn('N', j->tb ? 'T' : 'N', j->M, n, j->K, 1.0f, j->A, j->K, B, ldb, 0.0f, j->C + j->n0, j->N);
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
    /* linear: [S, K] x [N, K]^T; 1x1 conv: [Cout, Cin] x [Cin, S] */
    static const int shapes[][4] = {{1, 512, 768, 768}, {1, 512, 2048, 768}, {1, 512, 768, 2048},
                                    {0, 768, 512, 768}, {0, 2048, 512, 768}, {0, 768, 512, 2048}};
    size_t big = 2048 * 768;
    float *A = malloc(big * 4), *B = malloc(big * 4), *C = malloc(big * 4);
    for (size_t i = 0; i < big; i++) { A[i] = (float)(i % 17) / 17 - 0.5f; B[i] = (float)(i % 13) / 13 - 0.5f; }
    printf("%-16s %-22s %9s %9s %9s   (GFLOP/s, best of %d)\n", "library", "shape", "1t", "lib2", "split2", reps);
    for (int l = 0; l < 3; l++) {
        Lib *L = &libs[l];
        if (!L->cb && !L->dn) { printf("%-16s not installed\n", L->name); continue; }
        double tot[3] = {0, 0, 0}, flop_tot = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int tb = shapes[s][0], M = shapes[s][1], N = shapes[s][2], K = shapes[s][3];
            double fl = 2.0 * M * N * K, best[3];
            flop_tot += fl;
            for (int mode = 0; mode < 3; mode++) {
                if (L->setn) L->setn(mode == 1 ? 2 : 1);
                best[mode] = 1e9;
                for (int r = 0; r < reps + 1; r++) {
                    Job j[2] = {{L, tb, M, N, K, A, B, C, 0, N}, {L, tb, M, N, K, A, B, C, N / 2, N}};
                    double t0 = now();
                    if (mode < 2) gemm(&j[0]);
                    else {
                        pthread_t th;
                        j[0].n1 = N / 2;
                        pthread_create(&th, NULL, worker, &j[1]);
                        gemm(&j[0]);
                        pthread_join(th, NULL);
                    }
                    double dt = now() - t0;
                    if (r > 0 && dt < best[mode]) best[mode] = dt;
                }
                tot[mode] += best[mode];
            }
            char sh[64];
            snprintf(sh, sizeof sh, "%s %dx%dx%d", tb ? "AB^T" : "AB", M, N, K);
            printf("%-16s %-22s %9.1f %9.1f %9.1f\n", L->name, sh, fl / best[0] * 1e-9, fl / best[1] * 1e-9,
                   fl / best[2] * 1e-9);
        }
        printf("%-16s %-22s %9.1f %9.1f %9.1f   (all six: ms %.2f / %.2f / %.2f)\n", L->name, "total", flop_tot / tot[0] * 1e-9,
               flop_tot / tot[1] * 1e-9, flop_tot / tot[2] * 1e-9, tot[0] * 1e3, tot[1] * 1e3, tot[2] * 1e3);
    }
    return 0;
}
