// A 3×3 "same" convolution (stride 1, padding 1) of one sample whose planes are 16 pixels wide, as a
// matrix product that packs its right-hand operand straight from the image instead of from an im2col
// copy (issue 24). Unlike kernels.c this file uses fused multiply–adds, as OpenBLAS's DGEMM kernels do:
// each output is bias + Σ_k w_k·x_k accumulated in increasing k = (c, i, j), one rounding per term.
#include "ddpm_kernels.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

// The CPU check is kernels.c's: its AVX-512 build runs exactly where AVX-512 F and DQ, FMA and the
// ZMM state are there.
int ddpm_conv3x3_w16_available(void) { return ddpm_kernels_variant() == 2; }

#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)

// The right-hand operand of output row oy: bp[k·16 + ox] = x[c, oy + i − 1, ox + j − 1] (0 outside),
// k = (c·3 + i)·3 + j: the rows of the im2col matrix restricted to these 16 columns.
static void pack_row(const double *x, double *bp, long C, long H, long oy) {
    for (long c = 0; c < C; c++) {
        for (long i = 0; i < 3; i++) {
            const long y = oy + i - 1;
            double *b = bp + (c * 3 + i) * 48;
            if (y < 0 || y >= H) { memset(b, 0, 48 * sizeof(double)); continue; }
            const double *s = x + (c * H + y) * 16;
            b[0] = 0; memcpy(b + 1, s, 15 * sizeof(double));          // j = 0 reads column ox − 1
            memcpy(b + 16, s, 16 * sizeof(double));                   // j = 1 reads column ox
            memcpy(b + 32, s + 1, 15 * sizeof(double)); b[47] = 0;    // j = 2 reads column ox + 1
        }
    }
}

// c[r·ldc + q] += Σ_k ap[k·8 + r]·bp[k·16 + q] for r < 8, q < 16: sixteen 8-lane accumulators, k in order.
#define LOAD(r) __m512d c##r##0 = _mm512_loadu_pd(cp + r * ldc), c##r##1 = _mm512_loadu_pd(cp + r * ldc + 8);
#define STEP(r) { const __m512d a = _mm512_set1_pd(ap[k * 8 + r]); \
                  c##r##0 = _mm512_fmadd_pd(a, b0, c##r##0); c##r##1 = _mm512_fmadd_pd(a, b1, c##r##1); }
#define STORE(r) _mm512_storeu_pd(cp + r * ldc, c##r##0); _mm512_storeu_pd(cp + r * ldc + 8, c##r##1);
static void tile8x16(long K, const double *ap, const double *bp, double *cp, long ldc) {
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

void ddpm_conv3x3_w16(const double *x, const double *w, double *y, long C, long O, long H, double *scratch) {
    const long K = C * 9;
    double *ap = scratch, *bp = scratch + O * K;
    // The weights (O × K, OIHW rows) in panels of 8 output channels: ap[(o/8)·K·8 + k·8 + o%8].
    for (long o = 0; o < O; o++) for (long k = 0; k < K; k++) ap[(o / 8) * K * 8 + k * 8 + o % 8] = w[o * K + k];
    for (long oy = 0; oy < H; oy++) {
        pack_row(x, bp, C, H, oy);
        for (long panel = 0; panel < O / 8; panel++) tile8x16(K, ap + panel * K * 8, bp, y + panel * 8 * H * 16 + oy * 16, H * 16);
    }
}

#pragma clang attribute pop
#else
int ddpm_conv3x3_w16_available(void) { return 0; }
void ddpm_conv3x3_w16(const double *x, const double *w, double *y, long C, long O, long H, double *scratch) {
    (void)x; (void)w; (void)y; (void)C; (void)O; (void)H; (void)scratch;
}
#endif
