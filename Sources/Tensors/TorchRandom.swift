// PyTorch's CPU random numbers, bit for bit: `torch.manual_seed(s)` then `torch.randn`, `torch.rand` and
// `torch.randint` on float64 (int64) CPU tensors. Written from ATen's source (MT19937RNGEngine.h,
// CPUGeneratorImpl.cpp, DistributionsHelper.h, TransformationHelper.h, native/cpu/DistributionTemplates.h)
// and pinned by values PyTorch itself produced (Fixtures/make_torch_rng_fixtures.py → torch-rng.h5).

import Foundation

/// PyTorch's CPU generator (`CPUGeneratorImpl`): a 32-bit Mersenne Twister (MT19937, Matsumoto &
/// Nishimura 1998) and the ways ATen turns its words into float64 values.
///
/// - Seeding (`torch.manual_seed(s)`): the engine is MT19937's `init_genrand` with the **low 32 bits**
///   of `s`: `x₀ = s mod 2³²`, `xⱼ = 1812433253·(xⱼ₋₁ ⊕ xⱼ₋₁≫30) + j mod 2³²`; the cached normal
///   is cleared.
/// - 64-bit draws (`random64`): two 32-bit outputs, the first as the high word: `hi≪32 | lo`.
/// - `torch.rand` (float64): `(random64 & (2⁵³−1)) · 2⁻⁵³` per element, in order.
/// - `torch.randint(0, n)` for n < 2³²: `random32 mod n` (ATen's modulo, with its bias).
/// - `torch.randn` (float64), two paths chosen by the element count n:
///   - n ≥ 16 (contiguous): first n uniforms u as above; then each block of 16 values u[0..<16] becomes
///     `r = √(−2 ln(1 − u[j]))`, `θ = 2π·u[j+8]`, out[j] = r cos θ, out[j+8] = r sin θ for j < 8;
///     when 16 ∤ n the last 16 outputs are recomputed from 16 **fresh** uniforms (overwriting the
///     overlap with the last whole block). The cached normal is neither used nor set.
///   - n < 16: one value at a time by `normal_distribution<double>`: the cached value if there is one;
///     otherwise u₁, u₂ (in that order), `r = √(−2 log1p(−u₂))`, `θ = 2π·u₁`, return r cos θ and cache
///     r sin θ (which the next small draw returns, even after other calls in between).
/// - float32 tensors draw differently (one 32-bit word per uniform, 24 bits, and for n ≥ 16 an AVX2
///   vector log/sin/cos): not this stream and not reproduced here; `torch.randn` of fewer than 16 float32
///   values is the float64 draws rounded to float32.
///
/// The same interface as ``RandomGenerator`` (``RandomSource``). One ``fillNormal(_:)`` is one
/// `torch.randn` of that many elements, so draw x_T and each z with one call each, as PyTorch code does.
public struct TorchGenerator: RandomSource, Sendable, Equatable {
    static let n = 624, m = 397
    /// The seed given to ``init(seed:)`` (all 64 bits, as `torch.initial_seed()` reports it).
    public let seed: UInt64
    private var words: [UInt32]
    private var position: Int
    /// `next_double_normal_sample`: the r sin θ left over by the last small `randn`.
    private var cachedNormal: Double?

    /// `torch.manual_seed(seed)` on a fresh CPU generator.
    public init(seed: UInt64) {
        self.seed = seed
        var w = [UInt32](repeating: 0, count: Self.n)
        w[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<Self.n { w[j] = 1_812_433_253 &* (w[j - 1] ^ (w[j - 1] >> 30)) &+ UInt32(j) }
        words = w
        position = Self.n
        cachedNormal = nil
    }

    /// Regenerates the 624 words (MT19937's twist).
    private mutating func twist() {
        for i in 0..<Self.n {
            let y = (words[i] & 0x8000_0000) | (words[(i + 1) % Self.n] & 0x7FFF_FFFF)
            var v = words[(i + Self.m) % Self.n] ^ (y >> 1)
            if y & 1 != 0 { v ^= 0x9908_B0DF }
            words[i] = v
        }
        position = 0
    }

    /// The next 32-bit output (`random()`): the next word, tempered.
    public mutating func next32() -> UInt32 {
        if position >= Self.n { twist() }
        var y = words[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// `random64()`: two 32-bit outputs, the first one high.
    public mutating func next64() -> UInt64 {
        let hi = UInt64(next32()), lo = UInt64(next32())
        return hi << 32 | lo
    }

    /// One element of `torch.rand(…, dtype=torch.float64)`: the low 53 bits of ``next64()`` times 2⁻⁵³.
    public mutating func nextUniform() -> Double {
        Double(next64() & ((1 << 53) - 1)) * 0x1p-53
    }

    /// One element of `torch.rand(…, dtype=torch.float32)`: the low 24 bits of ``next32()`` times 2⁻²⁴.
    public mutating func nextUniformFloat() -> Float {
        Float(next32() & ((1 << 24) - 1)) * 0x1p-24
    }

    /// One element of `torch.randint(0, bound, …)`: `random32 mod bound` (`random64 mod bound` from 2³² on).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt: bound \(bound) must be positive")
        if UInt64(bound) >= 1 << 32 { return Int(next64() % UInt64(bound)) }
        return Int(next32() % UInt32(bound))
    }

    /// One value of ATen's scalar `normal_distribution<double>` (the path of `randn` with fewer than 16
    /// elements): the cached r sin θ, or a new pair from u₁ (angle) and u₂ (radius, through log1p).
    mutating func scalarNormal() -> Double {
        if let c = cachedNormal { cachedNormal = nil; return c }
        let u1 = nextUniform(), u2 = nextUniform()
        let r = (-2 * Foundation.log1p(-u2)).squareRoot(), theta = 2 * Double.pi * u1
        cachedNormal = r * Foundation.sin(theta)
        return r * Foundation.cos(theta)
    }

    /// ATen's `normal_fill_16` on 16 uniforms in place (mean 0, standard deviation 1).
    static func boxMuller16(_ d: inout [Double], at base: Int) {
        for j in 0..<8 {
            let u1 = 1 - d[base + j], u2 = d[base + j + 8]
            let radius = (-2 * Foundation.log(u1)).squareRoot(), theta = 2 * Double.pi * u2
            d[base + j] = radius * Foundation.cos(theta)
            d[base + j + 8] = radius * Foundation.sin(theta)
        }
    }

    /// `torch.randn(values.count, dtype=torch.float64)`: the vectorised path from 16 elements on, the
    /// scalar one below (see the type's documentation for both).
    public mutating func fillNormal(_ values: inout [Double]) {
        let count = values.count
        guard count >= 16 else {
            for i in 0..<count { values[i] = scalarNormal() }
            return
        }
        for i in 0..<count { values[i] = nextUniform() }
        var i = 0
        while i + 16 <= count { Self.boxMuller16(&values, at: i); i += 16 }
        if count % 16 != 0 {
            for k in (count - 16)..<count { values[k] = nextUniform() }
            Self.boxMuller16(&values, at: count - 16)
        }
    }

    /// `count` values of one `torch.randn(count, dtype=torch.float64)`.
    public mutating func normals(_ count: Int) -> [Double] {
        var v = [Double](repeating: 0, count: count); fillNormal(&v); return v
    }
}
