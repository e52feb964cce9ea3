// Seeded random numbers that are bit-identical on every run and every machine with IEEE doubles.

import Foundation

/// xoshiro256** (Blackman & Vigna 2018), seeded through SplitMix64.
///
/// - Seeding: the four state words are four successive outputs of SplitMix64 started at `seed`
///   (`z += 0x9E3779B97F4A7C15; z = (z ^ z>>30)·0xBF58476D1CE4E5B9; z = (z ^ z>>27)·0x94D049BB133111EB; z ^ z>>31`).
/// - Output: `rotl(s1 · 5, 7) · 9`, then the xoshiro256 state transition.
/// - Uniform doubles: `(next >> 11) · 2⁻⁵³`, in [0, 1).
/// - Gaussians: Box–Muller on two uniforms, `u1 = 1 − uniform ∈ (0, 1]`, `u2 = uniform`;
///   `z0 = √(−2 ln u1) cos(2π u2)`, `z1 = √(−2 ln u1) sin(2π u2)`. ``fillNormal(_:)`` uses both;
///   an odd count drops the last `z1`. No value is cached between calls, so the four state words are
///   the whole state (what a checkpoint stores).
public struct RandomGenerator: Sendable, Equatable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitMix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var r = z
            r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
            r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
            return r ^ (r >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// Restores a generator from its four state words (as saved in a checkpoint).
    public init(state words: [UInt64]) {
        precondition(words.count == 4 && words.contains { $0 != 0 }, "RandomGenerator: state needs four words, not all zero")
        state = (words[0], words[1], words[2], words[3])
    }
    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public static func == (a: RandomGenerator, b: RandomGenerator) -> Bool { a.stateWords == b.stateWords }

    @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = Self.rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0; state.3 ^= state.1; state.1 ^= state.2; state.0 ^= state.3
        state.2 ^= t; state.3 = Self.rotl(state.3, 45)
        return result
    }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A uniform integer in `0 ..< bound` by rejection (no modulo bias).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt: bound \(bound) must be positive")
        let b = UInt64(bound), limit = UInt64.max - UInt64.max % b
        while true { let r = next(); if r < limit { return Int(r % b) } }
    }

    /// Fills `values` with standard normal draws by Box–Muller (see the type's documentation).
    public mutating func fillNormal(_ values: inout [Double]) {
        var i = 0
        while i < values.count {
            let u1 = 1 - nextUniform(), u2 = nextUniform()
            let r = (-2 * Foundation.log(u1)).squareRoot(), theta = 2 * Double.pi * u2
            values[i] = r * Foundation.cos(theta)
            if i + 1 < values.count { values[i + 1] = r * Foundation.sin(theta) }
            i += 2
        }
    }

    /// `count` standard normal draws.
    public mutating func normals(_ count: Int) -> [Double] {
        var v = [Double](repeating: 0, count: count); fillNormal(&v); return v
    }
}

extension Tensor {
    /// A tensor of standard normal draws (one ``RandomSource/fillNormal(_:)`` of its element count).
    public static func randomNormal(_ shape: [Int], generator: inout some RandomSource) -> Tensor {
        Tensor(shape: shape, data: generator.normals(shape.reduce(1, *)))
    }
    /// A tensor of uniform draws in [lower, upper).
    public static func randomUniform(_ shape: [Int], in range: ClosedRange<Double> = 0...1, generator: inout some RandomSource) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).map { _ in range.lowerBound + (range.upperBound - range.lowerBound) * generator.nextUniform() })
    }
}
