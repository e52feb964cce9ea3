// See include/ddpm_blas.h. Kept deliberately small: CPUID, dlopen/dlsym, one call-through.
#define _GNU_SOURCE
#include "ddpm_blas.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

void ddpm_cpu_read(ddpm_cpu_info *info) {
    memset(info, 0, sizeof *info);
#if defined(__x86_64__) || defined(__i386__)
    unsigned int a, b, c, d;
    info->isX86 = 1;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned int maxLeaf = a;
    memcpy(info->vendor + 0, &b, 4); memcpy(info->vendor + 4, &d, 4); memcpy(info->vendor + 8, &c, 4);
    __get_cpuid(1, &a, &b, &c, &d);
    unsigned baseFamily = (a >> 8) & 0xf, baseModel = (a >> 4) & 0xf;
    info->family = baseFamily == 0xf ? baseFamily + ((a >> 20) & 0xff) : baseFamily;
    info->model = (baseFamily == 0x6 || baseFamily == 0xf) ? baseModel + (((a >> 16) & 0xf) << 4) : baseModel;
    int osxsave = (c >> 27) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymm = (xcr0 & 0x6) == 0x6;            // SSE and AVX state saved by the OS
    int zmm = ymm && (xcr0 & 0xe0) == 0xe0;   // plus opmask, ZMM_Hi256, Hi16_ZMM
    info->sse3 = c & 1;
    info->fma = ymm && ((c >> 12) & 1);
    info->avx = ymm && ((c >> 28) & 1);
    if (maxLeaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        info->avx2 = ymm && ((b >> 5) & 1);
        info->avx512f = zmm && ((b >> 16) & 1);
        info->avx512dq = zmm && ((b >> 17) & 1);
        info->avx512cd = zmm && ((b >> 28) & 1);
        info->avx512bw = zmm && ((b >> 30) & 1);
        info->avx512vl = zmm && ((b >> 31) & 1);
        __cpuid_count(7, 1, a, b, c, d);
        info->avx512bf16 = zmm && ((a >> 5) & 1);
    }
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        unsigned int *out = (unsigned int *)info->brand;
        for (unsigned leaf = 0; leaf < 3; leaf++) {
            __get_cpuid(0x80000002 + leaf, &out[leaf * 4], &out[leaf * 4 + 1], &out[leaf * 4 + 2], &out[leaf * 4 + 3]);
        }
        info->brand[48] = 0;
    }
#endif
}

// Resolved once by ddpm_blas_load (before any call) and only read afterwards.
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double *, int,
                         const double *, int, double, double *, int);
static dgemm_fn blas_dgemm;
static char *(*blas_corename)(void);
static char *(*blas_config)(void);
static int (*blas_threads)(void);
static char blas_file[1024];

// Candidate libraries, most specific first. Debian/Ubuntu: libopenblas0 (pthread flavour) provides
// libopenblas.so.0; libblas.so.3 may be OpenBLAS or the reference BLAS through alternatives.
static const char *const candidates[] = {
    "libopenblas.so.0", "libopenblas.so", "libopenblas.dylib", "libblas.so.3", NULL
};

static void set_for_load(const char *name, const char *value, int *was_set) {
    *was_set = 0;
    const char *current = getenv(name);
    if (value != NULL && (current == NULL || *current == 0)) { setenv(name, value, 1); *was_set = 1; }
}

int ddpm_blas_load(const char *coretype, const char *thread_timeout, const char *num_threads,
                   char *error, size_t error_size) {
    int setCore, setTimeout, setThreads;
    set_for_load("OPENBLAS_CORETYPE", coretype, &setCore);
    set_for_load("OPENBLAS_THREAD_TIMEOUT", thread_timeout, &setTimeout);
    set_for_load("OPENBLAS_NUM_THREADS", num_threads, &setThreads);
    void *handle = NULL;
    char tried[512] = "";
    for (const char *const *name = candidates; *name != NULL && handle == NULL; name++) {
        handle = dlopen(*name, RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            strncat(tried, *name, sizeof tried - strlen(tried) - 1);
            strncat(tried, " ", sizeof tried - strlen(tried) - 1);
        } else if (dlsym(handle, "cblas_dgemm") == NULL) {
            dlclose(handle); handle = NULL;
            strncat(tried, *name, sizeof tried - strlen(tried) - 1);
            strncat(tried, "(no cblas_dgemm) ", sizeof tried - strlen(tried) - 1);
        }
    }
    // The variables are read in the library's constructor; the process environment goes back to
    // what the user had, so child processes see no difference.
    if (setCore) unsetenv("OPENBLAS_CORETYPE");
    if (setTimeout) unsetenv("OPENBLAS_THREAD_TIMEOUT");
    if (setThreads) unsetenv("OPENBLAS_NUM_THREADS");
    if (handle == NULL) {
        snprintf(error, error_size, "no BLAS library with cblas_dgemm could be loaded (tried: %s); "
                 "install OpenBLAS (Debian/Ubuntu: apt-get install libopenblas0)", tried);
        return -1;
    }
    blas_dgemm = (dgemm_fn)dlsym(handle, "cblas_dgemm");
    blas_corename = (char *(*)(void))dlsym(handle, "openblas_get_corename");
    blas_config = (char *(*)(void))dlsym(handle, "openblas_get_config");
    blas_threads = (int (*)(void))dlsym(handle, "openblas_get_num_threads");
    Dl_info where;
    if (dladdr((void *)blas_dgemm, &where) && where.dli_fname != NULL) {
        snprintf(blas_file, sizeof blas_file, "%s", where.dli_fname);
    }
    return 0;
}

const char *ddpm_blas_corename(void) { return blas_corename ? blas_corename() : ""; }
const char *ddpm_blas_config(void) { return blas_config ? blas_config() : ""; }
const char *ddpm_blas_path(void) { return blas_file; }
int ddpm_blas_threads(void) { return blas_threads ? blas_threads() : 1; }

// CBLAS enumerations (cblas.h): CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
void ddpm_dgemm(int transpose_a, int transpose_b, int m, int n, int k,
                double alpha, const double *a, int lda, const double *b, int ldb,
                double beta, double *c, int ldc) {
    blas_dgemm(101, transpose_a ? 112 : 111, transpose_b ? 112 : 111, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
