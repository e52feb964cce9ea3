// ─── Noise schedules: β_t for t = 0 … T−1 (0-based, as in the seed) ─────────────────────────────────

import Errors

import Foundation

/// A named variance schedule β_0 … β_{T−1}. Every case is one documented function in ``Schedules``.
public enum BetaSchedule: Sendable, Equatable, CustomStringConvertible {
    case linear(start: Double = 1e-4, end: Double = 0.02)
    case quadratic(start: Double = 1e-4, end: Double = 0.02)
    case warmup10(start: Double = 1e-4, end: Double = 0.02)
    case warmup50(start: Double = 1e-4, end: Double = 0.02)
    case constant(beta: Double = 0.02)
    case jsd
    case cosine(s: Double = 0.008)
    case sigmoid(start: Double = 1e-4, end: Double = 0.02)

    /// The seed's default: linear from 1e-4 to 0.02.
    public static let `default` = BetaSchedule.linear()

    public var name: String {
        switch self {
        case .linear: "linear"
        case .quadratic: "quadratic"
        case .warmup10: "warmup10"
        case .warmup50: "warmup50"
        case .constant: "constant"
        case .jsd: "jsd"
        case .cosine: "cosine"
        case .sigmoid: "sigmoid"
        }
    }
    public var description: String { name }

    /// Every name ``named(_:parameters:)`` accepts.
    public static let names = ["linear", "quadratic", "warmup10", "warmup50", "constant", "jsd", "cosine", "sigmoid"]

    /// The schedule's parameters by the names checkpoints and golden files store them under
    /// (`beta_start`, `beta_end`, `beta`, `cosine_s`); jsd has none.
    public var parameters: [(name: String, value: Double)] {
        switch self {
        case let .linear(a, b), let .quadratic(a, b), let .warmup10(a, b), let .warmup50(a, b), let .sigmoid(a, b):
            return [("beta_start", a), ("beta_end", b)]
        case let .constant(beta): return [("beta", beta)]
        case .jsd: return []
        case let .cosine(s): return [("cosine_s", s)]
        }
    }

    /// Builds a schedule from its name and its ``parameters`` (missing ones take their defaults; the
    /// constant schedule also accepts `beta_end` for β, as version-1 files store it).
    public static func named(_ name: String, parameters p: [String: Double] = [:]) throws -> BetaSchedule {
        let start = p["beta_start"] ?? 1e-4, end = p["beta_end"] ?? 0.02
        switch name {
        case "linear": return .linear(start: start, end: end)
        case "quadratic": return .quadratic(start: start, end: end)
        case "warmup10": return .warmup10(start: start, end: end)
        case "warmup50": return .warmup50(start: start, end: end)
        case "constant", "const": return .constant(beta: p["beta"] ?? end)
        case "jsd": return .jsd
        case "cosine": return .cosine(s: p["cosine_s"] ?? 0.008)
        case "sigmoid": return .sigmoid(start: start, end: end)
        default:
            throw DDPMError(.unknownName, "beta schedule '\(name)': unknown; expected one of \(names.joined(separator: ", "))")
        }
    }

    /// Builds the schedule by name with the given endpoints (constant takes `end` as its β).
    public static func named(_ name: String, start: Double = 1e-4, end: Double = 0.02) throws -> BetaSchedule {
        try named(name, parameters: ["beta_start": start, "beta_end": end])
    }

    /// β_0 … β_{T−1}. Throws if T < 1 or any β falls outside (0, 1].
    public func betas(timesteps T: Int) throws -> [Double] {
        guard T >= 1 else { throw DDPMError(.invalidValue, "beta schedule '\(name)': timesteps must be at least 1, got \(T)") }
        let betas: [Double]
        switch self {
        case let .linear(start, end): betas = Schedules.linear(T, start: start, end: end)
        case let .quadratic(start, end): betas = Schedules.quadratic(T, start: start, end: end)
        case let .warmup10(start, end): betas = Schedules.warmup(T, fraction: 0.1, start: start, end: end)
        case let .warmup50(start, end): betas = Schedules.warmup(T, fraction: 0.5, start: start, end: end)
        case let .constant(beta): betas = Schedules.constant(T, beta: beta)
        case .jsd: betas = Schedules.jsd(T)
        case let .cosine(s): betas = Schedules.cosine(T, s: s)
        case let .sigmoid(start, end): betas = Schedules.sigmoid(T, start: start, end: end)
        }
        if let (t, b) = betas.enumerated().first(where: { !($0.element > 0 && $0.element <= 1) }) {
            throw DDPMError(.invalidValue, "beta schedule '\(name)': β at t = \(t) is \(b), expected a value in (0, 1]")
        }
        return betas
    }
}

/// The schedule functions themselves.
public enum Schedules {
    /// numpy's `linspace(start, stop, n)`: `start + i·(stop − start)/(n − 1)`, the last value exactly `stop`.
    public static func linspace(_ start: Double, _ stop: Double, _ n: Int) -> [Double] {
        if n <= 0 { return [] }
        if n == 1 { return [start] }
        let step = (stop - start) / Double(n - 1)
        var v = (0..<n).map { Double($0) * step + start }
        v[n - 1] = stop
        return v
    }

    /// Linear (Ho et al. 2020, §4): `β_t = linspace(β_start, β_end, T)`, both ends included.
    public static func linear(_ T: Int, start: Double, end: Double) -> [Double] { linspace(start, end, T) }

    /// Quadratic: `β_t = linspace(√β_start, √β_end, T)²`.
    public static func quadratic(_ T: Int, start: Double, end: Double) -> [Double] {
        linspace(start.squareRoot(), end.squareRoot(), T).map { $0 * $0 }
    }

    /// Warm-up (Ho et al.'s code, `warmup10`/`warmup50`): `β_t = β_end`, except the first
    /// `⌊T·fraction⌋` steps, which are `linspace(β_start, β_end, ⌊T·fraction⌋)`.
    public static func warmup(_ T: Int, fraction: Double, start: Double, end: Double) -> [Double] {
        var b = [Double](repeating: end, count: T)
        let w = Int(Double(T) * fraction)
        for (i, v) in linspace(start, end, w).enumerated() { b[i] = v }
        return b
    }

    /// Constant: `β_t = β` for every t.
    public static func constant(_ T: Int, beta: Double) -> [Double] { [Double](repeating: beta, count: T) }

    /// Jensen–Shannon (Sohl-Dickstein et al. 2015, as in Ho et al.'s code): `β_t = 1/(T − t)`, i.e.
    /// `1/T, 1/(T−1), …, 1`. The last step destroys all signal (ᾱ_{T−1} = 0).
    public static func jsd(_ T: Int) -> [Double] { linspace(Double(T), 1, T).map { 1 / $0 } }

    /// Cosine (Nichol & Dhariwal 2021, eq. 17): `ᾱ(t) = f(t)/f(0)`, `f(t) = cos²(((t/T) + s)/(1 + s) · π/2)`,
    /// `β_t = min(1 − ᾱ(t+1)/ᾱ(t), 0.999)` with s = 0.008. (f(0) cancels in the ratio.)
    public static func cosine(_ T: Int, s: Double) -> [Double] {
        func f(_ u: Double) -> Double { let c = Foundation.cos((u + s) / (1 + s) * Double.pi / 2); return c * c }
        return (0..<T).map { i in min(1 - f(Double(i + 1) / Double(T)) / f(Double(i) / Double(T)), 0.999) }
    }

    /// Sigmoid, the GeoDiff variant (Xu et al. 2022): `β_t = σ(linspace(−6, 6, T)) · (β_end − β_start) + β_start`.
    public static func sigmoid(_ T: Int, start: Double, end: Double) -> [Double] {
        linspace(-6, 6, T).map { 1 / (1 + Foundation.exp(-$0)) * (end - start) + start }
    }
}
