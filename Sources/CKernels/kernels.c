// See include/ddpm_kernels.h. No fused multiply–adds (FP_CONTRACT OFF): every operation rounds
// once, as written, so the results are the same on every x86-64 and every optimisation level.
#include "ddpm_kernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF
// The four-lane helpers below are always inlined, so the calling convention of a 32-byte vector
// argument (which depends on whether AVX is enabled) never applies.
#pragma clang diagnostic ignored "-Wpsabi"
#define INLINE static inline __attribute__((always_inline))

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));

// Compiled twice: for the x86-64 baseline (SSE2, two lanes per instruction) and, with the same
// source, for AVX2 (four lanes per instruction) where the CPU has it. The operations and their
// order are the same in both (no FMA in either: FP_CONTRACT OFF and "avx2" does not enable FMA),
// so both give bit-identical results; `KernelTests.vectorKernelBuildsAgree` and `GroupNormKernelTests`
// check that.
#define VARIANT(name) name##_baseline
#include "kernels_body.h"
#undef VARIANT

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define VARIANT(name) name##_avx2
#include "kernels_body.h"
#undef VARIANT
#pragma clang attribute pop

// AVX2 needs the CPU flag (CPUID leaf 7, EBX bit 5) and the OS saving the YMM registers (OSXSAVE,
// then XCR0 bits 1 and 2).
#include <cpuid.h>
static int cpu_has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return 0;                                       // XMM and YMM state
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 5)) != 0;
}
#else
static int cpu_has_avx2(void) { return 0; }
#define ddpm_exp_avx2 ddpm_exp_baseline
#define ddpm_exp_shifted_avx2 ddpm_exp_shifted_baseline
#define ddpm_silu_avx2 ddpm_silu_baseline
#define ddpm_sum_avx2 ddpm_sum_baseline
#define ddpm_squared_deviations_avx2 ddpm_squared_deviations_baseline
#define ddpm_dot_deviations_avx2 ddpm_dot_deviations_baseline
#define ddpm_group_normalize_avx2 ddpm_group_normalize_baseline
#define ddpm_group_normalize_silu_avx2 ddpm_group_normalize_silu_baseline
#define ddpm_silu_grad_from_normalized_avx2 ddpm_silu_grad_from_normalized_baseline
#define ddpm_group_norm_dx_avx2 ddpm_group_norm_dx_baseline
#endif

// -1 until the first call decides. Threads may race to decide; they reach the same answer, and the
// relaxed atomic load and store keep the race well defined.
static int use_avx2 = -1;
static inline int avx2(void) {
    int v = __atomic_load_n(&use_avx2, __ATOMIC_RELAXED);
    if (v < 0) {
        v = cpu_has_avx2();
        __atomic_store_n(&use_avx2, v, __ATOMIC_RELAXED);
    }
    return v;
}

int ddpm_kernels_variant(void) { return avx2(); }

void ddpm_exp_variant(int variant, const double *x, double *y, long n) {
    if (variant && avx2()) ddpm_exp_avx2(x, y, n); else ddpm_exp_baseline(x, y, n);
}
void ddpm_silu_variant(int variant, const double *x, double *y, double *sigma, long n) {
    if (variant && avx2()) ddpm_silu_avx2(x, y, sigma, n); else ddpm_silu_baseline(x, y, sigma, n);
}

void ddpm_exp(const double *x, double *y, long n) { ddpm_exp_variant(1, x, y, n); }
void ddpm_exp_shifted(const double *x, double *y, long n, double shift) {
    if (avx2()) ddpm_exp_shifted_avx2(x, y, n, shift); else ddpm_exp_shifted_baseline(x, y, n, shift);
}
void ddpm_silu(const double *x, double *y, double *sigma, long n) { ddpm_silu_variant(1, x, y, sigma, n); }
double ddpm_sum(const double *a, long n) { return avx2() ? ddpm_sum_avx2(a, n) : ddpm_sum_baseline(a, n); }
double ddpm_squared_deviations(const double *a, long n, double c) {
    return avx2() ? ddpm_squared_deviations_avx2(a, n, c) : ddpm_squared_deviations_baseline(a, n, c);
}
double ddpm_dot_deviations(const double *a, const double *b, long n, double c) {
    return avx2() ? ddpm_dot_deviations_avx2(a, b, n, c) : ddpm_dot_deviations_baseline(a, b, n, c);
}

void ddpm_group_normalize(int variant, const double *x, double *y, long channels, long spatial,
                          const double *gamma, const double *beta, double mean, double inv) {
    if (variant && avx2()) ddpm_group_normalize_avx2(x, y, channels, spatial, gamma, beta, mean, inv);
    else ddpm_group_normalize_baseline(x, y, channels, spatial, gamma, beta, mean, inv);
}
void ddpm_group_normalize_silu(int variant, const double *x, double *y, double *sigma, long channels, long spatial,
                               const double *gamma, const double *beta, double mean, double inv) {
    if (variant && avx2()) ddpm_group_normalize_silu_avx2(x, y, sigma, channels, spatial, gamma, beta, mean, inv);
    else ddpm_group_normalize_silu_baseline(x, y, sigma, channels, spatial, gamma, beta, mean, inv);
}
void ddpm_silu_grad_from_normalized(int variant, const double *x, const double *dy, const double *sigma, double *da,
                                    long channels, long spatial, const double *gamma, const double *beta,
                                    double mean, double inv) {
    if (variant && avx2()) ddpm_silu_grad_from_normalized_avx2(x, dy, sigma, da, channels, spatial, gamma, beta, mean, inv);
    else ddpm_silu_grad_from_normalized_baseline(x, dy, sigma, da, channels, spatial, gamma, beta, mean, inv);
}
void ddpm_group_norm_dx(int variant, const double *x, const double *d, double *dx, long channels, long spatial,
                        const double *gamma, double mean, double inv, double mean_d, double mean_dx) {
    if (variant && avx2()) ddpm_group_norm_dx_avx2(x, d, dx, channels, spatial, gamma, mean, inv, mean_d, mean_dx);
    else ddpm_group_norm_dx_baseline(x, d, dx, channels, spatial, gamma, mean, inv, mean_d, mean_dx);
}
