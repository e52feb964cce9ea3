// Elementwise float64 kernels in C: e^x, SiLU, lane sums and group normalisation's per-group loops,
// four lanes at a time (eight in the AVX-512 build of the elementwise ones).
//
// They are in C rather than Swift so that they stay fast in debug builds: Swift's SIMD types are
// generic and, unoptimised, cost a function call per lane (the debug test suite ran twice as long),
// while C's vector extensions are plain vector instructions at any optimisation level. The Swift
// wrappers are in Sources/Kernels (Exponential.swift, Sums.swift, GroupNormKernels.swift), their tests in
// Tests/TensorsTests/KernelTests.swift and GroupNormKernelTests.swift.
#ifndef DDPM_KERNELS_H
#define DDPM_KERNELS_H

/// y[i] = e^{x[i]} for i < n (x and y may be the same array). Within 1 ULP of glibc's exp; the
/// method is described above expv in kernels_body.h.
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

/// out[j] = ddpm_sum(a + j·stride, n) for j < count, the same bits, four sums interleaved at a time.
void ddpm_sums(const double *a, long stride, long count, long n, double *out);

/// out[j] = ddpm_squared_deviations(a + j·stride, n, centres[j]) for j < count, the same bits, four at a time.
void ddpm_squared_deviations_each(const double *a, long stride, long count, long n, const double *centres, double *out);

/// The build of these kernels this CPU runs: 2 AVX-512 (F and DQ, with FMA; its lane sums run in AVX2), 1 AVX2,
/// 0 the baseline (SSE2).
int ddpm_kernels_variant(void);

/// For tests: exp and SiLU through a chosen build (2: AVX-512, 1: AVX2, 0: baseline; a build the CPU
/// lacks falls back to the widest it has below it).
void ddpm_exp_variant(int variant, const double *x, double *y, long n);
void ddpm_silu_variant(int variant, const double *x, double *y, double *sigma, long n);

/// Group normalisation of one group of `channels` channels of `spatial` elements each (channel ch
/// at offset ch·spatial of x and y; gamma and beta point at the group's first channel):
/// y[ch·spatial + i] = γ[ch]·((x[ch·spatial + i] − mean)·inv) + β[ch], each product and sum rounded
/// once, in that order. variant: the build, as for ddpm_exp_variant.
void ddpm_group_normalize(int variant, const double *x, double *y, long channels, long spatial,
                          const double *gamma, const double *beta, double mean, double inv);

/// ddpm_group_normalize, then y = a·σ(a) and, when sigma is not NULL, sigma = σ(a) for each
/// normalised value a, with σ as in ddpm_silu: the same bits as ddpm_group_normalize followed by
/// ddpm_silu(y, y, sigma, channels·spatial).
void ddpm_group_normalize_silu(int variant, const double *x, double *y, double *sigma, long channels, long spatial,
                               const double *gamma, const double *beta, double mean, double inv);

/// SiLU's backward on normalised values: da[k] = dy[k]·(σ[k]·(1 + a·(1 − σ[k]))), with
/// a = γ[ch]·((x[k] − mean)·inv) + β[ch] recomputed as in ddpm_group_normalize (k = ch·spatial + i;
/// all four arrays indexed from the group's first element).
void ddpm_silu_grad_from_normalized(int variant, const double *x, const double *dy, const double *sigma, double *da,
                                    long channels, long spatial, const double *gamma, const double *beta,
                                    double mean, double inv);

/// Group normalisation's input gradient: dx[k] = inv·((d[k]·γ[ch] − mean_d) − ((x[k] − mean)·inv)·mean_dx),
/// k = ch·spatial + i, operations in that order.
void ddpm_group_norm_dx(int variant, const double *x, const double *d, double *dx, long channels, long spatial,
                        const double *gamma, double mean, double inv, double mean_d, double mean_dx);

/// 1 when ddpm_conv3x3_pack, ddpm_conv3x3_packed and ddpm_conv3x3_weight_gradient can run on this CPU: where ddpm_kernels_variant() is 2.
int ddpm_conv3x3_available(void);

/// N samples of a 3×3 "same" convolution (stride 1, padding 1) on planes 8 or 16 pixels wide:
/// y[n, o, oy, ox] = s + Σ_{c,i,j} w'[o, c, i, j]·x[n, c, oy + i − 1, ox + j − 1] (x 0 outside the image), x N × C × H × W,
/// y N × O × H × W, in two steps: ddpm_conv3x3_pack puts the weights w' of output channels o_begin ..< o_end into
/// ap (ddpm_conv3x3_packed_size(C, O) = O·C·9 doubles for all O; calls for disjoint ranges write disjoint entries),
/// once for any number of calls of ddpm_conv3x3_packed, which reads only ap (so several threads may share it).
/// flipped 0: w' = w, O × C × 3 × 3. flipped 1: w holds the weights (C × O × 3 × 3) of the forward convolution
/// whose input gradient this is, w'[o, c, i, j] = w[c, o, 2 − i, 2 − j].
/// accumulate 1: s is y's entry value (the result is added to y; bias unused). accumulate 0: s is bias[o]
/// (O values), or 0 when bias is NULL, and y's entry contents are not read. O a multiple of 8, H·W a multiple
/// of 16 (whole 16-pixel strips: an 8-wide plane of odd height would write past each plane). Each sum runs in
/// increasing (c, i, j) with a fused multiply–add per term (direct_conv.c), so a sample's output does not depend
/// on N or on the other samples. bp: ddpm_conv3x3_strip_scratch(C) = C·9·16 doubles of the caller's own.
long ddpm_conv3x3_packed_size(long C, long O);
long ddpm_conv3x3_strip_scratch(long C);
void ddpm_conv3x3_pack(const double *w, int flipped, long C, long O, long o_begin, long o_end, double *ap);
void ddpm_conv3x3_packed(const double *x, const double *ap, const double *bias, int accumulate, double *y,
                         long N, long C, long O, long H, long W, double *bp);

/// The weight gradient of N samples of that convolution: dw[o, c, i, j] = Σ_n Σ_p dy[n, o, p]·x[n, c, p + (i − 1, j − 1)],
/// x N × C × H × W (any width), dy N × O × H × W, dw O × C × 3 × 3, O a multiple of 16. For each sample, each
/// tap's sum starts from 0 and runs over the pixels p in increasing order with a fused multiply–add per term;
/// the samples' sums are added in order to a total that starts from 0, and the total is written to dw (its
/// entry contents are not read; the caller adds the lanes' totals into the gradient in lane order).
/// scratch: ddpm_conv3x3_weight_gradient_scratch(C, O, H, W) = C·9·O + H·W·O + C·(H + 2)·(W + 2) doubles.
long ddpm_conv3x3_weight_gradient_scratch(long C, long O, long H, long W);
void ddpm_conv3x3_weight_gradient(const double *x, const double *dy, double *dw, long N, long C, long O, long H, long W, double *scratch);

#endif
