// The kernels of kernels.c, written once and compiled three times (see there): every function name goes
// through VARIANT(name), which appends the instruction set's suffix, and VD / VI are vectors of LANES
// doubles / 64-bit integers (4 in the baseline and AVX2 builds, 8 in the AVX-512 one). Every kernel is
// elementwise except the lane sums, whose order of additions is fixed to four lanes.
INLINE VD VARIANT(loadv)(const double *p) { VD v; memcpy(&v, p, sizeof v); return v; }
INLINE void VARIANT(storev)(double *p, VD v) { memcpy(p, &v, sizeof v); }
INLINE VD VARIANT(splat)(double a) { VD v; for (int l = 0; l < LANES; l++) v[l] = a; return v; }
INLINE VI VARIANT(splati)(int64_t a) { VI v; for (int l = 0; l < LANES; l++) v[l] = a; return v; }

// e^x for LANES lanes (as fdlibm's exp): x = k·ln 2 + r with k = round(x / ln 2), |r| ≤ ln 2 / 2;
// ln 2 split into a high part with trailing zeros (k·LN2_HI is exact) and a low part;
// e^r = 1 + r + r²·P(r), the Taylor series to r¹³ (the first term left out, r¹⁴/14!, is below 5e-18
// for |r| ≤ 0.347); e^x = 2^k · e^r with 2^k built from its exponent bits. k is rounded by adding
// and subtracting 1.5·2^52, which leaves the integer in the low bits. Lanes outside [−708, 708]
// (where 2^k or the result leaves the normal range) and NaN lanes are recomputed by libm's exp.
INLINE VD VARIANT(expv)(VD x) {
    const VD shifter = VARIANT(splat)(0x1.8p52);
    const VD t = x * VARIANT(splat)(1.4426950408889634) + shifter;
    const VD k = t - shifter;
    const VD r = (x - k * VARIANT(splat)(6.93147180369123816490e-01)) - k * VARIANT(splat)(1.90821492927058770002e-10);
    VD p = VARIANT(splat)(1.0 / 6227020800.0);   // 1/13!
    p = p * r + VARIANT(splat)(1.0 / 479001600.0); // 1/12!
    p = p * r + VARIANT(splat)(1.0 / 39916800.0);  // 1/11!
    p = p * r + VARIANT(splat)(1.0 / 3628800.0);   // 1/10!
    p = p * r + VARIANT(splat)(1.0 / 362880.0);    // 1/9!
    p = p * r + VARIANT(splat)(1.0 / 40320.0);     // 1/8!
    p = p * r + VARIANT(splat)(1.0 / 5040.0);      // 1/7!
    p = p * r + VARIANT(splat)(1.0 / 720.0);       // 1/6!
    p = p * r + VARIANT(splat)(1.0 / 120.0);       // 1/5!
    p = p * r + VARIANT(splat)(1.0 / 24.0);        // 1/4!
    p = p * r + VARIANT(splat)(1.0 / 6.0);         // 1/3!
    p = p * r + VARIANT(splat)(0.5);               // 1/2!
    const VD er = VARIANT(splat)(1.0) + (r + r * r * p);
    VI kbits, sbits;
    memcpy(&kbits, &t, sizeof t);
    memcpy(&sbits, &shifter, sizeof shifter);
    const VI ebits = ((kbits - sbits) + 1023) << 52;
    VD scale;
    memcpy(&scale, &ebits, sizeof scale);
    VD y = er * scale;
    for (int l = 0; l < LANES; l++) {
        if (!(x[l] >= -708.0 && x[l] <= 708.0)) y[l] = exp(x[l]);
    }
    return y;
}

// Applies `f` to n elements LANES at a time; the last partial group goes through a zero-padded copy.
#define MAPV(x, y, n, expr)                                           \
    do {                                                              \
        long i_ = 0;                                                  \
        for (; i_ + LANES <= (n); i_ += LANES) {                              \
            VD v = VARIANT(loadv)((x) + i_);                                  \
            VARIANT(storev)((y) + i_, (expr));                                 \
        }                                                             \
        if (i_ < (n)) {                                               \
            double in_[LANES] = {0}, out_[LANES];                    \
            memcpy(in_, (x) + i_, (size_t)((n) - i_) * sizeof(double)); \
            VD v = VARIANT(loadv)(in_);                                       \
            VARIANT(storev)(out_, (expr));                                     \
            memcpy((y) + i_, out_, (size_t)((n) - i_) * sizeof(double)); \
        }                                                             \
    } while (0)

static void VARIANT(ddpm_exp)(const double *x, double *y, long n) { MAPV(x, y, n, VARIANT(expv)(v)); }

static void VARIANT(ddpm_exp_shifted)(const double *x, double *y, long n, double shift) { MAPV(x, y, n, VARIANT(expv)(v - VARIANT(splat)(shift))); }

// σ for LANES lanes: e = e^{−|x|} ≤ 1 (no overflow), numerator 1 for x ≥ 0 and e for x < 0.
INLINE VD VARIANT(logisticv)(VD x) {
    VI bits;
    memcpy(&bits, &x, sizeof x);
    bits |= VARIANT(splati)(INT64_MIN);  // the sign bit: −|x|
    VD minus_abs;
    memcpy(&minus_abs, &bits, sizeof bits);
    const VD e = VARIANT(expv)(minus_abs);
    const VI negative = x < VARIANT(splat)(0.0);  // all ones where x < 0
    VI ebits, onebits;
    const VD one = VARIANT(splat)(1.0);
    memcpy(&ebits, &e, sizeof e);
    memcpy(&onebits, &one, sizeof one);
    const VI numbits = (ebits & negative) | (onebits & ~negative);
    VD numerator;
    memcpy(&numerator, &numbits, sizeof numbits);
    return numerator / (one + e);
}

static void VARIANT(ddpm_silu)(const double *x, double *y, double *sigma, long n) {
    long i = 0;
    for (; i + LANES <= n; i += LANES) {
        const VD v = VARIANT(loadv)(x + i), s = VARIANT(logisticv)(v);
        VARIANT(storev)(y + i, v * s);
        if (sigma) VARIANT(storev)(sigma + i, s);
    }
    if (i < n) {
        double in[LANES] = {0}, out[LANES], sig[LANES];
        memcpy(in, x + i, (size_t)(n - i) * sizeof(double));
        const VD v = VARIANT(loadv)(in), s = VARIANT(logisticv)(v);
        VARIANT(storev)(out, v * s);
        VARIANT(storev)(sig, s);
        memcpy(y + i, out, (size_t)(n - i) * sizeof(double));
        if (sigma) memcpy(sigma + i, sig, (size_t)(n - i) * sizeof(double));
    }
}

// The lane sums fix their order of additions to four lanes, (l0 + l1) + (l2 + l3): they are built
// only in the four-lane builds (the AVX-512 build's callers use the AVX2 sums).
#if LANES == 4
#define LANE_SUM(n, term_vec, term_scalar)                    \
    do {                                                      \
        VD lanes = VARIANT(splat)(0.0);                               \
        long i = 0;                                           \
        for (; i + 4 <= (n); i += 4) lanes += (term_vec);     \
        double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]); \
        for (; i < (n); i++) total += (term_scalar);          \
        return total;                                         \
    } while (0)

static double VARIANT(ddpm_sum)(const double *a, long n) { LANE_SUM(n, VARIANT(loadv)(a + i), a[i]); }

static double VARIANT(ddpm_squared_deviations)(const double *a, long n, double c) {
    LANE_SUM(n, (VARIANT(loadv)(a + i) - VARIANT(splat)(c)) * (VARIANT(loadv)(a + i) - VARIANT(splat)(c)), (a[i] - c) * (a[i] - c));
}

static double VARIANT(ddpm_dot_deviations)(const double *a, const double *b, long n, double c) {
    LANE_SUM(n, VARIANT(loadv)(a + i) * (VARIANT(loadv)(b + i) - VARIANT(splat)(c)), a[i] * (b[i] - c));
}
#undef LANE_SUM
#endif

// Group normalisation: one group of `channels` channels, channel ch at x + ch·spatial, γ and β
// pointing at the group's first channel. Within a channel LANES at a time, the rest one
// element at a time; every element goes through the same operations in the same order either way.

// The normalised value a = γ·((x − μ)·inv) + β, LANES lanes and one element: the one expression the
// forward pass computes and SiLU's backward recomputes.
INLINE VD VARIANT(normalizedv)(const double *x, VD mean, VD inv, VD g, VD b) {
    return g * ((VARIANT(loadv)(x) - mean) * inv) + b;
}
INLINE double VARIANT(normalized1)(double x, double mean, double inv, double g, double b) { return g * ((x - mean) * inv) + b; }

static void VARIANT(ddpm_group_normalize)(const double *x, double *y, long channels, long spatial,
                                          const double *gamma, const double *beta, double mean, double inv) {
    const VD vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const double g = gamma[ch], b = beta[ch];
        const VD vg = VARIANT(splat)(g), vb = VARIANT(splat)(b);
        long i = o;
        for (; i + LANES <= o + spatial; i += LANES) VARIANT(storev)(y + i, VARIANT(normalizedv)(x + i, vmean, vinv, vg, vb));
        for (; i < o + spatial; i++) y[i] = VARIANT(normalized1)(x[i], mean, inv, g, b);
    }
}

// The normalisation followed by SiLU. When the planes are a whole number of LANES-lane groups, each
// group of LANES is normalised and passed through σ while in registers; otherwise the group is
// normalised and then passed through ddpm_silu as one array. σ is elementwise (a lane's result does
// not depend on the other lanes, padded or not), so both give the bits of ddpm_group_normalize
// followed by ddpm_silu over the group.
static void VARIANT(ddpm_group_normalize_silu)(const double *x, double *y, double *sigma, long channels, long spatial,
                                               const double *gamma, const double *beta, double mean, double inv) {
    if (spatial % LANES != 0) {
        VARIANT(ddpm_group_normalize)(x, y, channels, spatial, gamma, beta, mean, inv);
        VARIANT(ddpm_silu)(y, y, sigma, channels * spatial);
        return;
    }
    const VD vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const VD vg = VARIANT(splat)(gamma[ch]), vb = VARIANT(splat)(beta[ch]);
        for (long i = o; i < o + spatial; i += LANES) {
            const VD a = VARIANT(normalizedv)(x + i, vmean, vinv, vg, vb), s = VARIANT(logisticv)(a);
            VARIANT(storev)(y + i, a * s);
            if (sigma) VARIANT(storev)(sigma + i, s);
        }
    }
}

// da = dy · (σ · (1 + a · (1 − σ))) with a = γ·((x − μ)·inv) + β recomputed as the forward pass did.
static void VARIANT(ddpm_silu_grad_from_normalized)(const double *x, const double *dy, const double *sigma, double *da,
                                                    long channels, long spatial, const double *gamma, const double *beta,
                                                    double mean, double inv) {
    const VD vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv), one = VARIANT(splat)(1.0);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const double g = gamma[ch], b = beta[ch];
        const VD vg = VARIANT(splat)(g), vb = VARIANT(splat)(b);
        long i = o;
        for (; i + LANES <= o + spatial; i += LANES) {
            const VD a = VARIANT(normalizedv)(x + i, vmean, vinv, vg, vb), s = VARIANT(loadv)(sigma + i);
            VARIANT(storev)(da + i, VARIANT(loadv)(dy + i) * (s * (one + a * (one - s))));
        }
        for (; i < o + spatial; i++) {
            const double a = VARIANT(normalized1)(x[i], mean, inv, g, b), s = sigma[i];
            da[i] = dy[i] * (s * (1.0 + a * (1.0 - s)));
        }
    }
}

// dx = inv · ((d·γ − mean_d) − ((x − μ)·inv)·mean_dx).
static void VARIANT(ddpm_group_norm_dx)(const double *x, const double *d, double *dx, long channels, long spatial,
                                        const double *gamma, double mean, double inv, double mean_d, double mean_dx) {
    const VD vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv);
    const VD vmd = VARIANT(splat)(mean_d), vmdx = VARIANT(splat)(mean_dx);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const double g = gamma[ch];
        const VD vg = VARIANT(splat)(g);
        long i = o;
        for (; i + LANES <= o + spatial; i += LANES) {
            const VD xv = VARIANT(loadv)(x + i), dv = VARIANT(loadv)(d + i);
            VARIANT(storev)(dx + i, vinv * ((dv * vg - vmd) - ((xv - vmean) * vinv) * vmdx));
        }
        for (; i < o + spatial; i++) dx[i] = inv * ((d[i] * g - mean_d) - ((x[i] - mean) * inv) * mean_dx);
    }
}
#if LANES == 4
// Several sums at once, each exactly as ddpm_sum / ddpm_squared_deviations computes it: out[j] over
// a + j·stride, n elements, for j < count. A lane sum is one chain of dependent additions (four cycles
// each, four elements an addition); four of them interleaved keep the adder busy, the order of the
// additions within each sum unchanged.
#define SUMS4(term_vec, term_scalar)                                                                      \
    do {                                                                                                  \
        long j = 0;                                                                                       \
        for (; j + 4 <= count; j += 4) {                                                                  \
            const double *a0 = a + j * stride, *a1 = a0 + stride, *a2 = a1 + stride, *a3 = a2 + stride;  \
            const double c0 = C(j), c1 = C(j + 1), c2 = C(j + 2), c3 = C(j + 3);                          \
            const VD v0 = VARIANT(splat)(c0), v1 = VARIANT(splat)(c1), v2 = VARIANT(splat)(c2), v3 = VARIANT(splat)(c3); \
            VD l0 = VARIANT(splat)(0.0), l1 = l0, l2 = l0, l3 = l0;                                       \
            long i = 0;                                                                                   \
            for (; i + 4 <= n; i += 4) {                                                                  \
                l0 += term_vec(a0, v0); l1 += term_vec(a1, v1); l2 += term_vec(a2, v2); l3 += term_vec(a3, v3); \
            }                                                                                             \
            double t0 = (l0[0] + l0[1]) + (l0[2] + l0[3]), t1 = (l1[0] + l1[1]) + (l1[2] + l1[3]);        \
            double t2 = (l2[0] + l2[1]) + (l2[2] + l2[3]), t3 = (l3[0] + l3[1]) + (l3[2] + l3[3]);        \
            for (; i < n; i++) {                                                                          \
                t0 += term_scalar(a0, c0); t1 += term_scalar(a1, c1); t2 += term_scalar(a2, c2); t3 += term_scalar(a3, c3); \
            }                                                                                             \
            out[j] = t0; out[j + 1] = t1; out[j + 2] = t2; out[j + 3] = t3;                               \
        }                                                                                                 \
        for (; j < count; j++) out[j] = SINGLE(a + j * stride, n, C(j));                                  \
    } while (0)

#define SUM_VEC(p, v) VARIANT(loadv)((p) + i)
#define SUM_SCALAR(p, c) (p)[i]
#define C(j) 0.0
#define SINGLE(p, n, c) VARIANT(ddpm_sum)(p, n)
static void VARIANT(ddpm_sums)(const double *a, long stride, long count, long n, double *out) { SUMS4(SUM_VEC, SUM_SCALAR); }
#undef C
#undef SINGLE
#define DEV_VEC(p, v) ((VARIANT(loadv)((p) + i) - (v)) * (VARIANT(loadv)((p) + i) - (v)))
#define DEV_SCALAR(p, c) (((p)[i] - (c)) * ((p)[i] - (c)))
#define C(j) centres[j]
#define SINGLE(p, n, c) VARIANT(ddpm_squared_deviations)(p, n, c)
static void VARIANT(ddpm_squared_deviations_each)(const double *a, long stride, long count, long n, const double *centres, double *out) {
    SUMS4(DEV_VEC, DEV_SCALAR);
}
#undef C
#undef SINGLE
#undef SUM_VEC
#undef SUM_SCALAR
#undef DEV_VEC
#undef DEV_SCALAR
#undef SUMS4
#endif
