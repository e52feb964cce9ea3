// What every seeded random source offers: uniforms, integers below a bound, standard normals.

/// A seeded random source: the project's own ``RandomGenerator`` (xoshiro256**, the default) or
/// ``TorchGenerator`` (PyTorch's CPU generator, bit for bit). Code that draws x_T or a step's z takes
/// `inout some RandomSource`, so either can drive it.
public protocol RandomSource {
    /// A uniform double in [0, 1).
    mutating func nextUniform() -> Double
    /// A uniform integer in `0 ..< bound`.
    mutating func nextInt(below bound: Int) -> Int
    /// Fills `values` with standard normal draws, as one call of the source's tensor-filling routine
    /// (for ``TorchGenerator`` the count decides the path, as in `torch.randn`).
    mutating func fillNormal(_ values: inout [Double])
    /// `count` standard normal draws (one ``fillNormal(_:)``).
    mutating func normals(_ count: Int) -> [Double]
}

extension RandomGenerator: RandomSource {}

/// Which random source a seed starts: the project's own (`ddpm`) or PyTorch's CPU generator (`torch`).
public enum RandomSourceKind: String, Sendable, CaseIterable {
    case ddpm, torch

    /// A new source of this kind started at `seed` (`RandomGenerator(seed:)` or `torch.manual_seed(seed)`).
    public func make(seed: UInt64) -> any RandomSource {
        switch self {
        case .ddpm: return RandomGenerator(seed: seed)
        case .torch: return TorchGenerator(seed: seed)
        }
    }
}
