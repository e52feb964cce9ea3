// Elementwise float64 kernels in C: e^x, SiLU and lane sums, four lanes at a time.
//
// They are in C rather than Swift so that they stay fast in debug builds: Swift's SIMD types are
// generic and, unoptimised, cost a function call per lane (the debug test suite ran twice as long),
// while C's vector extensions are plain vector instructions at any optimisation level. The Swift
// wrappers are in Sources/Kernels (Exponential.swift, Sums.swift), their tests in
// Tests/TensorsTests/KernelTests.swift.
#ifndef DDPM_KERNELS_H
#define DDPM_KERNELS_H

/// y[i] = e^{x[i]} for i < n (x and y may be the same array). Within 1 ULP of glibc's exp; the
/// method is described above exp4 in kernels_body.h.
void ddpm_exp(const double *x, double *y, long n);

/// y[i] = e^{x[i] − shift} (the softmax's shifted exponentials).
void ddpm_exp_shifted(const double *x, double *y, long n, double shift);

/// y[i] = x[i] · σ(x[i]) and, when sigma is not NULL, sigma[i] = σ(x[i]), with
/// σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) for x < 0, e = e^{−|x|}.
void ddpm_silu(const double *x, double *y, double *sigma, long n);

/// Σ a[i], in four lanes (lane l sums a[l], a[l+4], …) added as (l0 + l1) + (l2 + l3), then the tail.
double ddpm_sum(const double *a, long n);

/// Σ (a[i] − c)², in the same lanes.
double ddpm_squared_deviations(const double *a, long n, double c);

/// Σ a[i]·(b[i] − c), in the same lanes.
double ddpm_dot_deviations(const double *a, const double *b, long n, double c);

/// 1 when the AVX2 build of these kernels runs on this CPU, 0 when the baseline (SSE2) one does.
int ddpm_kernels_variant(void);

/// For tests: exp and SiLU through a chosen build (1: AVX2 when the CPU has it, 0: baseline).
void ddpm_exp_variant(int variant, const double *x, double *y, long n);
void ddpm_silu_variant(int variant, const double *x, double *y, double *sigma, long n);

#endif
