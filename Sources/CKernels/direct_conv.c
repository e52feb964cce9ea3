// A 3×3 "same" convolution (stride 1, padding 1) of N samples as matrix products that read their operands
// straight from the image instead of from an im2col copy (issue 24): the forward pass on planes 8 or 16
// pixels wide (and, with the weights flipped, the input gradient) and the weight gradient (any width).
// Unlike kernels.c this file uses fused multiply–adds, as OpenBLAS's DGEMM kernels do: one rounding per
// term, the terms of each sum in the order stated at each function.
#include "ddpm_kernels.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

// The CPU check is kernels.c's: its AVX-512 build runs exactly where AVX-512 F and DQ, FMA and the
// ZMM state are there.
int ddpm_conv3x3_available(void) { return ddpm_kernels_variant() == 2; }
#endif

long ddpm_conv3x3_packed_size(long C, long O) { return O * C * 9; }
long ddpm_conv3x3_strip_scratch(long C) { return C * 9 * 16; }
long ddpm_conv3x3_weight_gradient_scratch(long C, long O, long H, long W) { return C * 9 * O + H * W * O + C * (H + 2) * (W + 2); }

#if defined(__x86_64__)

#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)

// The right-hand operand of the 16 output pixels p0 ..< p0 + 16 (one row of a 16-wide plane, two rows
// of an 8-wide one): bp[k·16 + q] = x[c, oy + i − 1, ox + j − 1] (0 outside the image) for the pixel
// p0 + q = (oy, ox), k = (c·3 + i)·3 + j: the rows of the im2col matrix restricted to these 16 columns.
static void pack_strip(const double *x, double *bp, long C, long H, long W, long p0) {
    const long blocks = W / 8;  // 8-lane vectors a row: masked loads shift the row by one column each way,
    for (long c = 0; c < C; c++) {  // reading nothing outside it (a masked-off lane neither loads nor faults)
        for (long i = 0; i < 3; i++) {
            double *b = bp + (c * 3 + i) * 48;
            for (long r = 0; r < 16 / W; r++) {
                const long y = p0 / W + r + i - 1;
                double *b0 = b + r * W, *b1 = b0 + 16, *b2 = b0 + 32;
                if (y < 0 || y >= H) {
                    for (long v = 0; v < blocks; v++) {
                        _mm512_storeu_pd(b0 + v * 8, _mm512_setzero_pd()); _mm512_storeu_pd(b1 + v * 8, _mm512_setzero_pd());
                        _mm512_storeu_pd(b2 + v * 8, _mm512_setzero_pd());
                    }
                    continue;
                }
                const double *s = x + (c * H + y) * W;
                for (long v = 0; v < blocks; v++) {
                    _mm512_storeu_pd(b0 + v * 8, _mm512_maskz_loadu_pd(v == 0 ? 0xFE : 0xFF, s + v * 8 - 1));           // j = 0: column ox − 1
                    _mm512_storeu_pd(b1 + v * 8, _mm512_loadu_pd(s + v * 8));                                          // j = 1: column ox
                    _mm512_storeu_pd(b2 + v * 8, _mm512_maskz_loadu_pd(v == blocks - 1 ? 0x7F : 0xFF, s + v * 8 + 1)); // j = 2: column ox + 1
                }
            }
        }
    }
}

// c[r·ldc + q] = s + Σ_k ap[k·8 + r]·bp[k·16 + q] for r < 8, q < 16, where s is init[r] or, when init is NULL,
// c[r·ldc + q] itself: sixteen 8-lane accumulators, k in order.
#define LOAD(r) __m512d c##r##0, c##r##1; \
                if (init) { c##r##0 = c##r##1 = _mm512_set1_pd(init[r]); } \
                else { c##r##0 = _mm512_loadu_pd(cp + r * ldc); c##r##1 = _mm512_loadu_pd(cp + r * ldc + 8); }
#define STEP(r) { const __m512d a = _mm512_set1_pd(ap[k * 8 + r]); \
                  c##r##0 = _mm512_fmadd_pd(a, b0, c##r##0); c##r##1 = _mm512_fmadd_pd(a, b1, c##r##1); }
#define STORE(r) _mm512_storeu_pd(cp + r * ldc, c##r##0); _mm512_storeu_pd(cp + r * ldc + 8, c##r##1);
static void tile8x16(long K, const double *ap, const double *bp, double *cp, long ldc, const double *init) {
    LOAD(0) LOAD(1) LOAD(2) LOAD(3) LOAD(4) LOAD(5) LOAD(6) LOAD(7)
    for (long k = 0; k < K; k++) {
        const __m512d b0 = _mm512_loadu_pd(bp + k * 16), b1 = _mm512_loadu_pd(bp + k * 16 + 8);
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7)
}
#undef LOAD
#undef STEP
#undef STORE

void ddpm_conv3x3_pack(const double *w, int flipped, long C, long O, long o_begin, long o_end, double *ap) {
    const long K = C * 9;
    // The weights w'[o, k] (O × K) in panels of 8 output channels: ap[(o/8)·K·8 + k·8 + o%8]. Flipped, the
    // forward weights w (C × O × 3 × 3) read as w'[o, c, i, j] = w[c, o, 2 − i, 2 − j].
    for (long o = o_begin; o < o_end; o++) {
        double *panel = ap + (o / 8) * K * 8 + o % 8;
        if (!flipped) { for (long k = 0; k < K; k++) panel[k * 8] = w[o * K + k]; continue; }
        for (long c = 0; c < C; c++) for (long t = 0; t < 9; t++) panel[(c * 9 + t) * 8] = w[(c * O + o) * 9 + 8 - t];
    }
}

void ddpm_conv3x3_packed(const double *x, const double *ap, const double *bias, int accumulate, double *y,
                         long N, long C, long O, long H, long W, double *bp) {
    const long K = C * 9, P = H * W, KC = 192;
    static const double zeros[8] = {0};
    // Each strip's K rows go in chunks of KC (a 24 KiB slice of the strip, kept in L1 across the panels);
    // a tile is stored after one chunk and reloaded for the next, so every sum still runs k = 0 ..< K in order.
    // The first chunk starts from y (accumulate) or from the bias (0 without one), so y is then not read.
    for (long n = 0; n < N; n++) {
        const double *xn = x + n * C * P;
        double *yn = y + n * O * P;
        for (long p0 = 0; p0 < P; p0 += 16) {
            pack_strip(xn, bp, C, H, W, p0);
            for (long k0 = 0; k0 < K; k0 += KC) {
                const long kc = K - k0 < KC ? K - k0 : KC;
                for (long panel = 0; panel < O / 8; panel++) {
                    const double *init = accumulate || k0 > 0 ? NULL : bias ? bias + panel * 8 : zeros;
                    tile8x16(kc, ap + panel * K * 8 + k0 * 8, bp + k0 * 16, yn + panel * 8 * P + p0, P, init);
                }
            }
        }
    }
}

// dwt[(c·9 + t)·O + o] += Σ_p dy[o, p]·x[c, p + (i − 1, j − 1)] for 16 output channels o0 ..< o0 + 16 and
// the nine taps t = (i, j) of channel c: eighteen 8-lane accumulators (nine taps × two halves of the 16
// channels), starting from 0 and summing the pixels p in increasing order, then added into dwt (the
// weight gradient transposed, K × O, so that the additions are whole vectors).
// dyt is dy transposed (P × O), xp the channel's plane padded with zeros ((H + 2) × (W + 2)).
#define TAP(t, i, j) { const __m512d s = _mm512_set1_pd(row[(i) * (W + 2) + (j)]); \
                       a##t##0 = _mm512_fmadd_pd(d0, s, a##t##0); a##t##1 = _mm512_fmadd_pd(d1, s, a##t##1); }
#define ZERO(t) __m512d a##t##0 = _mm512_setzero_pd(), a##t##1 = _mm512_setzero_pd();
#define ADD(t) { double *s = dwt + (c * 9 + t) * O + o0; \
                 _mm512_storeu_pd(s, _mm512_add_pd(_mm512_loadu_pd(s), a##t##0)); \
                 _mm512_storeu_pd(s + 8, _mm512_add_pd(_mm512_loadu_pd(s + 8), a##t##1)); }
static void weight_taps(const double *dyt, const double *xp, double *dwt, long c, long o0, long O, long H, long W) {
    ZERO(0) ZERO(1) ZERO(2) ZERO(3) ZERO(4) ZERO(5) ZERO(6) ZERO(7) ZERO(8)
    for (long oy = 0; oy < H; oy++) {
        for (long ox = 0; ox < W; ox++) {
            const double *d = dyt + (oy * W + ox) * O + o0, *row = xp + oy * (W + 2) + ox;
            const __m512d d0 = _mm512_loadu_pd(d), d1 = _mm512_loadu_pd(d + 8);
            TAP(0, 0, 0) TAP(1, 0, 1) TAP(2, 0, 2) TAP(3, 1, 0) TAP(4, 1, 1) TAP(5, 1, 2) TAP(6, 2, 0) TAP(7, 2, 1) TAP(8, 2, 2)
        }
    }
    ADD(0) ADD(1) ADD(2) ADD(3) ADD(4) ADD(5) ADD(6) ADD(7) ADD(8)
}
#undef TAP
#undef ZERO
#undef ADD

// dst[i] = src[i] for i < n, by 8-lane vectors and one masked one (a row of 8 or 16 doubles was a memcpy call
// of 64 or 128 bytes per row, 1.6 % of a demo training step's samples in libc's memmove).
static void copy_row(double *dst, const double *src, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(dst + i, _mm512_loadu_pd(src + i));
    if (i < n) {
        const __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
        _mm512_mask_storeu_pd(dst + i, m, _mm512_maskz_loadu_pd(m, src + i));
    }
}

void ddpm_conv3x3_weight_gradient(const double *x, const double *dy, double *dw, long N, long C, long O, long H, long W, double *scratch) {
    const long K = C * 9, P = H * W, padded = (H + 2) * (W + 2);
    double *dwt = scratch, *dyt = scratch + K * O, *xp = dyt + P * O;
    memset(dwt, 0, K * O * sizeof(double));
    memset(xp, 0, C * padded * sizeof(double));  // the borders stay 0; the insides are rewritten per sample
    for (long n = 0; n < N; n++) {
        const double *xn = x + n * C * P, *dyn = dy + n * O * P;
        for (long o = 0; o < O; o++) for (long p = 0; p < P; p++) dyt[p * O + o] = dyn[o * P + p];
        for (long c = 0; c < C; c++) for (long y = 0; y < H; y++) copy_row(xp + c * padded + (y + 1) * (W + 2) + 1, xn + (c * H + y) * W, W);
        for (long c = 0; c < C; c++) for (long o0 = 0; o0 < O; o0 += 16) weight_taps(dyt, xp + c * padded, dwt, c, o0, O, H, W);
    }
    for (long o = 0; o < O; o++) for (long k = 0; k < K; k++) dw[o * K + k] = dwt[k * O + o];
}

#pragma clang attribute pop
#else
int ddpm_conv3x3_available(void) { return 0; }
void ddpm_conv3x3_pack(const double *w, int flipped, long C, long O, long o_begin, long o_end, double *ap) {
    (void)w; (void)flipped; (void)C; (void)O; (void)o_begin; (void)o_end; (void)ap;
}
void ddpm_conv3x3_packed(const double *x, const double *ap, const double *bias, int accumulate, double *y,
                         long N, long C, long O, long H, long W, double *bp) {
    (void)x; (void)ap; (void)bias; (void)accumulate; (void)y; (void)N; (void)C; (void)O; (void)H; (void)W; (void)bp;
}
void ddpm_conv3x3_weight_gradient(const double *x, const double *dy, double *dw, long N, long C, long O, long H, long W, double *scratch) {
    (void)x; (void)dy; (void)dw; (void)N; (void)C; (void)O; (void)H; (void)W; (void)scratch;
}
#endif
