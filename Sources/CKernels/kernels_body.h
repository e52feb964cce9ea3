// The kernels of kernels.c, written once and compiled twice (see there): every function name goes
// through VARIANT(name), which appends the instruction set's suffix.
INLINE v4d VARIANT(load4)(const double *p) { v4d v; memcpy(&v, p, sizeof v); return v; }
INLINE void VARIANT(store4)(double *p, v4d v) { memcpy(p, &v, sizeof v); }
INLINE v4d VARIANT(splat)(double a) { return (v4d){a, a, a, a}; }

// e^x for four lanes (as fdlibm's exp): x = k·ln 2 + r with k = round(x / ln 2), |r| ≤ ln 2 / 2;
// ln 2 split into a high part with trailing zeros (k·LN2_HI is exact) and a low part;
// e^r = 1 + r + r²·P(r), the Taylor series to r¹³ (the first term left out, r¹⁴/14!, is below 5e-18
// for |r| ≤ 0.347); e^x = 2^k · e^r with 2^k built from its exponent bits. k is rounded by adding
// and subtracting 1.5·2^52, which leaves the integer in the low bits. Lanes outside [−708, 708]
// (where 2^k or the result leaves the normal range) and NaN lanes are recomputed by libm's exp.
INLINE v4d VARIANT(exp4)(v4d x) {
    const v4d shifter = VARIANT(splat)(0x1.8p52);
    const v4d t = x * VARIANT(splat)(1.4426950408889634) + shifter;
    const v4d k = t - shifter;
    const v4d r = (x - k * VARIANT(splat)(6.93147180369123816490e-01)) - k * VARIANT(splat)(1.90821492927058770002e-10);
    v4d p = VARIANT(splat)(1.0 / 6227020800.0);   // 1/13!
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
    const v4d er = VARIANT(splat)(1.0) + (r + r * r * p);
    v4i kbits, sbits;
    memcpy(&kbits, &t, sizeof t);
    memcpy(&sbits, &shifter, sizeof shifter);
    const v4i ebits = ((kbits - sbits) + 1023) << 52;
    v4d scale;
    memcpy(&scale, &ebits, sizeof scale);
    v4d y = er * scale;
    for (int l = 0; l < 4; l++) {
        if (!(x[l] >= -708.0 && x[l] <= 708.0)) y[l] = exp(x[l]);
    }
    return y;
}

// Applies `f` to n elements four at a time; the last partial group goes through a zero-padded copy.
#define MAP4(x, y, n, expr)                                           \
    do {                                                              \
        long i_ = 0;                                                  \
        for (; i_ + 4 <= (n); i_ += 4) {                              \
            v4d v = VARIANT(load4)((x) + i_);                                  \
            VARIANT(store4)((y) + i_, (expr));                                 \
        }                                                             \
        if (i_ < (n)) {                                               \
            double in_[4] = {0, 0, 0, 0}, out_[4];                    \
            memcpy(in_, (x) + i_, (size_t)((n) - i_) * sizeof(double)); \
            v4d v = VARIANT(load4)(in_);                                       \
            VARIANT(store4)(out_, (expr));                                     \
            memcpy((y) + i_, out_, (size_t)((n) - i_) * sizeof(double)); \
        }                                                             \
    } while (0)

static void VARIANT(ddpm_exp)(const double *x, double *y, long n) { MAP4(x, y, n, VARIANT(exp4)(v)); }

static void VARIANT(ddpm_exp_shifted)(const double *x, double *y, long n, double shift) { MAP4(x, y, n, VARIANT(exp4)(v - VARIANT(splat)(shift))); }

// σ for four lanes: e = e^{−|x|} ≤ 1 (no overflow), numerator 1 for x ≥ 0 and e for x < 0.
INLINE v4d VARIANT(logistic4)(v4d x) {
    v4i bits;
    memcpy(&bits, &x, sizeof x);
    bits |= (v4i){INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN};  // the sign bit: −|x|
    v4d minus_abs;
    memcpy(&minus_abs, &bits, sizeof bits);
    const v4d e = VARIANT(exp4)(minus_abs);
    const v4i negative = x < VARIANT(splat)(0.0);  // all ones where x < 0
    v4i ebits, onebits;
    const v4d one = VARIANT(splat)(1.0);
    memcpy(&ebits, &e, sizeof e);
    memcpy(&onebits, &one, sizeof one);
    const v4i numbits = (ebits & negative) | (onebits & ~negative);
    v4d numerator;
    memcpy(&numerator, &numbits, sizeof numbits);
    return numerator / (one + e);
}

static void VARIANT(ddpm_silu)(const double *x, double *y, double *sigma, long n) {
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        const v4d v = VARIANT(load4)(x + i), s = VARIANT(logistic4)(v);
        VARIANT(store4)(y + i, v * s);
        if (sigma) VARIANT(store4)(sigma + i, s);
    }
    if (i < n) {
        double in[4] = {0, 0, 0, 0}, out[4], sig[4];
        memcpy(in, x + i, (size_t)(n - i) * sizeof(double));
        const v4d v = VARIANT(load4)(in), s = VARIANT(logistic4)(v);
        VARIANT(store4)(out, v * s);
        VARIANT(store4)(sig, s);
        memcpy(y + i, out, (size_t)(n - i) * sizeof(double));
        if (sigma) memcpy(sigma + i, sig, (size_t)(n - i) * sizeof(double));
    }
}

#define LANE_SUM(n, term_vec, term_scalar)                    \
    do {                                                      \
        v4d lanes = VARIANT(splat)(0.0);                               \
        long i = 0;                                           \
        for (; i + 4 <= (n); i += 4) lanes += (term_vec);     \
        double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]); \
        for (; i < (n); i++) total += (term_scalar);          \
        return total;                                         \
    } while (0)

static double VARIANT(ddpm_sum)(const double *a, long n) { LANE_SUM(n, VARIANT(load4)(a + i), a[i]); }

static double VARIANT(ddpm_squared_deviations)(const double *a, long n, double c) {
    LANE_SUM(n, (VARIANT(load4)(a + i) - VARIANT(splat)(c)) * (VARIANT(load4)(a + i) - VARIANT(splat)(c)), (a[i] - c) * (a[i] - c));
}

static double VARIANT(ddpm_dot_deviations)(const double *a, const double *b, long n, double c) {
    LANE_SUM(n, VARIANT(load4)(a + i) * (VARIANT(load4)(b + i) - VARIANT(splat)(c)), a[i] * (b[i] - c));
}

// Group normalisation: one group of `channels` channels, channel ch at x + ch·spatial, γ and β
// pointing at the group's first channel. Within a channel four lanes at a time, the rest one
// element at a time; every element goes through the same operations in the same order either way.

// The normalised value a = γ·((x − μ)·inv) + β, four lanes and one element: the one expression the
// forward pass computes and SiLU's backward recomputes.
INLINE v4d VARIANT(normalized4)(const double *x, v4d mean, v4d inv, v4d g, v4d b) {
    return g * ((VARIANT(load4)(x) - mean) * inv) + b;
}
INLINE double VARIANT(normalized1)(double x, double mean, double inv, double g, double b) { return g * ((x - mean) * inv) + b; }

static void VARIANT(ddpm_group_normalize)(const double *x, double *y, long channels, long spatial,
                                          const double *gamma, const double *beta, double mean, double inv) {
    const v4d vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const double g = gamma[ch], b = beta[ch];
        const v4d vg = VARIANT(splat)(g), vb = VARIANT(splat)(b);
        long i = o;
        for (; i + 4 <= o + spatial; i += 4) VARIANT(store4)(y + i, VARIANT(normalized4)(x + i, vmean, vinv, vg, vb));
        for (; i < o + spatial; i++) y[i] = VARIANT(normalized1)(x[i], mean, inv, g, b);
    }
}

// The normalisation followed by SiLU. When the planes are a whole number of four-lane groups, each
// group of four is normalised and passed through σ while in registers; otherwise the group is
// normalised and then passed through ddpm_silu as one array. σ is elementwise (a lane's result does
// not depend on the other lanes, padded or not), so both give the bits of ddpm_group_normalize
// followed by ddpm_silu over the group.
static void VARIANT(ddpm_group_normalize_silu)(const double *x, double *y, double *sigma, long channels, long spatial,
                                               const double *gamma, const double *beta, double mean, double inv) {
    if (spatial % 4 != 0) {
        VARIANT(ddpm_group_normalize)(x, y, channels, spatial, gamma, beta, mean, inv);
        VARIANT(ddpm_silu)(y, y, sigma, channels * spatial);
        return;
    }
    const v4d vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const v4d vg = VARIANT(splat)(gamma[ch]), vb = VARIANT(splat)(beta[ch]);
        for (long i = o; i < o + spatial; i += 4) {
            const v4d a = VARIANT(normalized4)(x + i, vmean, vinv, vg, vb), s = VARIANT(logistic4)(a);
            VARIANT(store4)(y + i, a * s);
            if (sigma) VARIANT(store4)(sigma + i, s);
        }
    }
}

// da = dy · (σ · (1 + a · (1 − σ))) with a = γ·((x − μ)·inv) + β recomputed as the forward pass did.
static void VARIANT(ddpm_silu_grad_from_normalized)(const double *x, const double *dy, const double *sigma, double *da,
                                                    long channels, long spatial, const double *gamma, const double *beta,
                                                    double mean, double inv) {
    const v4d vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv), one = VARIANT(splat)(1.0);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const double g = gamma[ch], b = beta[ch];
        const v4d vg = VARIANT(splat)(g), vb = VARIANT(splat)(b);
        long i = o;
        for (; i + 4 <= o + spatial; i += 4) {
            const v4d a = VARIANT(normalized4)(x + i, vmean, vinv, vg, vb), s = VARIANT(load4)(sigma + i);
            VARIANT(store4)(da + i, VARIANT(load4)(dy + i) * (s * (one + a * (one - s))));
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
    const v4d vmean = VARIANT(splat)(mean), vinv = VARIANT(splat)(inv);
    const v4d vmd = VARIANT(splat)(mean_d), vmdx = VARIANT(splat)(mean_dx);
    for (long ch = 0; ch < channels; ch++) {
        const long o = ch * spatial;
        const double g = gamma[ch];
        const v4d vg = VARIANT(splat)(g);
        long i = o;
        for (; i + 4 <= o + spatial; i += 4) {
            const v4d xv = VARIANT(load4)(x + i), dv = VARIANT(load4)(d + i);
            VARIANT(store4)(dx + i, vinv * ((dv * vg - vmd) - ((xv - vmean) * vinv) * vmdx));
        }
        for (; i < o + spatial; i++) dx[i] = inv * ((d[i] * g - mean_d) - ((x[i] - mean) * inv) * mean_dx);
    }
}
