// See include/ddpm_kernels.h. No fused multiply–adds (FP_CONTRACT OFF): every operation rounds
// once, as written, so the results are the same on every x86-64 and every optimisation level.
#include "ddpm_kernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF
// The vector helpers below are always inlined, so the calling convention of a 32- or 64-byte vector
// argument (which depends on the instruction set enabled) never applies.
#pragma clang diagnostic ignored "-Wpsabi"
#define INLINE static inline __attribute__((always_inline))

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
typedef int64_t v8i __attribute__((vector_size(64)));

// Compiled three times: for the x86-64 baseline (SSE2, two lanes per instruction) and, with the same
// source, for AVX2 (four lanes per instruction) and AVX-512 (eight, below) where the CPU has them. The
// operations and their order are the same in all (no FMA in any: FP_CONTRACT OFF), so all give
// bit-identical results; `KernelTests.vectorKernelBuildsAgree` and `GroupNormKernelTests` check that.
#define VD v4d
#define VI v4i
#define LANES 4
#define VARIANT(name) name##_baseline
#include "kernels_body.h"
#undef VARIANT

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define VARIANT(name) name##_avx2
#include "kernels_body.h"
#undef VARIANT
#pragma clang attribute pop
#undef VD
#undef VI
#undef LANES

// A third build, for AVX-512 (issue 24: group normalisation + SiLU was 9 % of the demo network's
// sampling time in AVX2): eight lanes per vector. The elementwise kernels do the same operations per
// element as the four-lane builds (no FMA: "avx512f" does not enable contraction under FP_CONTRACT
// OFF), so the same bits; the lane sums are not built here and run in AVX2.
#define VD v8d
#define VI v8i
#define LANES 8
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx2"))), apply_to = function)
#define VARIANT(name) name##_avx512
#include "kernels_body.h"
#undef VARIANT
#pragma clang attribute pop
#undef VD
#undef VI
#undef LANES

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

// AVX-512 (F and DQ) needs the CPU flags (CPUID leaf 7, EBX bits 16 and 17) and the OS saving the
// opmask and ZMM registers (XCR0 bits 5, 6 and 7, besides XMM and YMM); FMA (leaf 1, ECX bit 12) is
// asked for too, for direct_conv.c, which shares this check (every AVX-512 CPU has it).
static int cpu_has_avx512(void) {
    if (!cpu_has_avx2()) return 0;
    unsigned lo, hi, a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 12))) return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6u) != 0xE6u) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 16)) != 0 && (b & (1u << 17)) != 0;
}
#else
static int cpu_has_avx2(void) { return 0; }
static int cpu_has_avx512(void) { return 0; }
#define ddpm_exp_avx2 ddpm_exp_baseline
#define ddpm_exp_shifted_avx2 ddpm_exp_shifted_baseline
#define ddpm_silu_avx2 ddpm_silu_baseline
#define ddpm_sum_avx2 ddpm_sum_baseline
#define ddpm_squared_deviations_avx2 ddpm_squared_deviations_baseline
#define ddpm_dot_deviations_avx2 ddpm_dot_deviations_baseline
#define ddpm_sums_avx2 ddpm_sums_baseline
#define ddpm_squared_deviations_each_avx2 ddpm_squared_deviations_each_baseline
#define ddpm_group_normalize_avx2 ddpm_group_normalize_baseline
#define ddpm_group_normalize_silu_avx2 ddpm_group_normalize_silu_baseline
#define ddpm_silu_grad_from_normalized_avx2 ddpm_silu_grad_from_normalized_baseline
#define ddpm_group_norm_dx_avx2 ddpm_group_norm_dx_baseline
#define ddpm_exp_avx512 ddpm_exp_baseline
#define ddpm_exp_shifted_avx512 ddpm_exp_shifted_baseline
#define ddpm_silu_avx512 ddpm_silu_baseline
#define ddpm_group_normalize_avx512 ddpm_group_normalize_baseline
#define ddpm_group_normalize_silu_avx512 ddpm_group_normalize_silu_baseline
#define ddpm_silu_grad_from_normalized_avx512 ddpm_silu_grad_from_normalized_baseline
#define ddpm_group_norm_dx_avx512 ddpm_group_norm_dx_baseline
#endif

// The build this CPU runs: 2 AVX-512, 1 AVX2, 0 baseline; -1 until the first call decides. Threads
// may race to decide; they reach the same answer, and the relaxed atomic load and store keep the race
// well defined.
static int best = -1;
static inline int best_build(void) {
    int v = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (v < 0) {
        v = cpu_has_avx512() ? 2 : (cpu_has_avx2() ? 1 : 0);
        __atomic_store_n(&best, v, __ATOMIC_RELAXED);
    }
    return v;
}
// The build a request runs: the requested one (0 baseline, 1 AVX2, 2 AVX-512) or, when this CPU
// lacks it, the best it has below it.
static inline int build(int requested) { const int b = best_build(); return requested < b ? requested : b; }
static inline int avx2(void) { return best_build() >= 1; }

int ddpm_kernels_variant(void) { return best_build(); }

// Dispatch of an elementwise kernel to the build `b` (call with the arguments in parentheses).
#define DISPATCH(b, name, args) \
    do { switch (build(b)) { case 2: name##_avx512 args; break; case 1: name##_avx2 args; break; default: name##_baseline args; } } while (0)

void ddpm_exp_variant(int variant, const double *x, double *y, long n) { DISPATCH(variant, ddpm_exp, (x, y, n)); }
void ddpm_silu_variant(int variant, const double *x, double *y, double *sigma, long n) { DISPATCH(variant, ddpm_silu, (x, y, sigma, n)); }

void ddpm_exp(const double *x, double *y, long n) { ddpm_exp_variant(2, x, y, n); }
void ddpm_exp_shifted(const double *x, double *y, long n, double shift) { DISPATCH(2, ddpm_exp_shifted, (x, y, n, shift)); }
void ddpm_silu(const double *x, double *y, double *sigma, long n) { ddpm_silu_variant(2, x, y, sigma, n); }
double ddpm_sum(const double *a, long n) { return avx2() ? ddpm_sum_avx2(a, n) : ddpm_sum_baseline(a, n); }
double ddpm_squared_deviations(const double *a, long n, double c) {
    return avx2() ? ddpm_squared_deviations_avx2(a, n, c) : ddpm_squared_deviations_baseline(a, n, c);
}
double ddpm_dot_deviations(const double *a, const double *b, long n, double c) {
    return avx2() ? ddpm_dot_deviations_avx2(a, b, n, c) : ddpm_dot_deviations_baseline(a, b, n, c);
}
void ddpm_sums(const double *a, long stride, long count, long n, double *out) {
    if (avx2()) ddpm_sums_avx2(a, stride, count, n, out); else ddpm_sums_baseline(a, stride, count, n, out);
}
void ddpm_squared_deviations_each(const double *a, long stride, long count, long n, const double *centres, double *out) {
    if (avx2()) ddpm_squared_deviations_each_avx2(a, stride, count, n, centres, out);
    else ddpm_squared_deviations_each_baseline(a, stride, count, n, centres, out);
}

void ddpm_group_normalize(int variant, const double *x, double *y, long channels, long spatial,
                          const double *gamma, const double *beta, double mean, double inv) {
    DISPATCH(variant, ddpm_group_normalize, (x, y, channels, spatial, gamma, beta, mean, inv));
}
void ddpm_group_normalize_silu(int variant, const double *x, double *y, double *sigma, long channels, long spatial,
                               const double *gamma, const double *beta, double mean, double inv) {
    DISPATCH(variant, ddpm_group_normalize_silu, (x, y, sigma, channels, spatial, gamma, beta, mean, inv));
}
void ddpm_silu_grad_from_normalized(int variant, const double *x, const double *dy, const double *sigma, double *da,
                                    long channels, long spatial, const double *gamma, const double *beta,
                                    double mean, double inv) {
    DISPATCH(variant, ddpm_silu_grad_from_normalized, (x, dy, sigma, da, channels, spatial, gamma, beta, mean, inv));
}
void ddpm_group_norm_dx(int variant, const double *x, const double *d, double *dx, long channels, long spatial,
                        const double *gamma, double mean, double inv, double mean_d, double mean_dx) {
    DISPATCH(variant, ddpm_group_norm_dx, (x, d, dx, channels, spatial, gamma, mean, inv, mean_d, mean_dx));
}
