// The C edge of the BLAS wrapper: CPUID, and OpenBLAS loaded at run time.
//
// Nothing links OpenBLAS at load time. `ddpm_blas_load` sets OPENBLAS_CORETYPE (unless it is
// already set), dlopen()s the library and resolves every function through dlsym. OpenBLAS reads
// OPENBLAS_CORETYPE once, in a constructor that runs inside dlopen, so this order is what lets the
// caller choose the kernel set. The choice itself is made in Swift (Kernels/BLASLibrary.swift).
#ifndef DDPM_BLAS_H
#define DDPM_BLAS_H

#include <stddef.h>

/// What CPUID (and XGETBV, for the OS-enabled register state) says about this CPU. All zero on
/// CPUs that are not x86-64. A vector feature is reported only when the OS saves its registers.
typedef struct {
    int isX86;
    char vendor[13];       ///< "GenuineIntel", "AuthenticAMD", …
    char brand[49];        ///< the processor brand string (leaves 0x80000002–4)
    unsigned family;       ///< display family (base + extended)
    unsigned model;        ///< display model (base + extended << 4 for families 6 and 15)
    int sse3, avx, fma, avx2;
    int avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512bf16;
} ddpm_cpu_info;

/// Fills `info` from CPUID. Never fails; on other architectures everything is zero.
void ddpm_cpu_read(ddpm_cpu_info *info);

/// Loads OpenBLAS once per process. When `coretype` is non-NULL and OPENBLAS_CORETYPE is unset,
/// sets it to `coretype` for the duration of dlopen (and unsets it afterwards). The same for
/// OPENBLAS_THREAD_TIMEOUT and `thread_timeout`, OPENBLAS_NUM_THREADS and `num_threads` (NULL: leave it). Returns 0 on success; otherwise
/// writes a message into `error` and returns -1. Not thread-safe: call it from one place, once
/// (Swift does so from a lazily initialised `static let`, which runs exactly once).
int ddpm_blas_load(const char *coretype, const char *thread_timeout, const char *num_threads,
                   char *error, size_t error_size);

/// After a successful load: OpenBLAS's core name ("SkylakeX"), its configuration string
/// ("OpenBLAS 0.3.21 DYNAMIC_ARCH …") and the file it was loaded from. "" when unknown.
const char *ddpm_blas_corename(void);
const char *ddpm_blas_config(void);
const char *ddpm_blas_path(void);
/// OpenBLAS's thread count (1 when the library does not say).
int ddpm_blas_threads(void);

/// Row-major `C ← alpha · op(A) · op(B) + beta · C` (cblas_dgemm with CblasRowMajor);
/// `transpose_a`/`transpose_b` are 0 or 1. Requires a successful `ddpm_blas_load`.
void ddpm_dgemm(int transpose_a, int transpose_b, int m, int n, int k,
                double alpha, const double *a, int lda, const double *b, int ldb,
                double beta, double *c, int ldc);

#endif
