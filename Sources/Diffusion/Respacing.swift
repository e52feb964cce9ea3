// ─── Respacing: which timesteps a short sampler keeps, and the diffusion over the kept steps ──────────
//
// Two families of conventions, each named after its source:
//
// - improved-diffusion (Nichol & Dhariwal 2021, `respace.space_timesteps`): section counts "c1,c2,…" or
//   "ddimN". The respaced chain goes from each kept step to the next kept step; its last step goes to
//   ᾱ = 1 (x̂_0 itself).
// - diffusers (`timestep_spacing` of DDIMScheduler / DDPMScheduler): `linspace`, `leading`
//   (i·⌊T/N⌋ + steps_offset), `trailing`.
//
// Which rules keep the first step (0) and the last (T−1), for 1 ≤ N ≤ T (`RespacingRuleTests` checks each
// statement against the kept set over every (T, N) with T ≤ 64, and T ∈ {100, 250, 999, 1000}):
//
//     "c1,…,cm"   keeps 0 always; keeps T−1 iff c_m ≥ 2 or the last section has one step
//     "ddimN"     keeps 0 always; keeps T−1 iff its stride k divides T−1 (T = 1000, ddim334: k = 3 keeps 999)
//     linspace    keeps 0 always; keeps T−1 iff N ≥ 2 (or T = 1)
//     leading     keeps 0 iff steps_offset = 0; keeps T−1 iff (N−1)·⌊T/N⌋ + steps_offset = T−1 (N = T, offset 0)
//     trailing    keeps T−1 always; keeps 0 iff round(T/N) = 1, i.e. 2T < 3N (T = 1000, N = 700 keeps 0)
//   diffusers' DDIM steps from t to t − ⌊T/N⌋ even when that is not a kept step, and its final ᾱ is 1 or
//   ᾱ_0 (`set_alpha_to_one`); its DDPM scheduler goes to the next kept step with final ᾱ = 1.
//
// All timesteps are 0-based original indices into the T-step schedule.

import Foundation
import Tensors

/// A rule for the kept timesteps of a short sampler, named after its source.
public enum TimestepSpacing: Sendable, Equatable, CustomStringConvertible {
    /// improved-diffusion's `space_timesteps(T, section_counts)`: "c1,c2,…" or "ddimN".
    case improvedDiffusion(String)
    /// diffusers' `timestep_spacing="linspace"`.
    case diffusersLinspace
    /// diffusers' `timestep_spacing="leading"` with `steps_offset`.
    case diffusersLeading(stepsOffset: Int)
    /// diffusers' `timestep_spacing="trailing"`.
    case diffusersTrailing

    /// The name recorded in golden files: `improved-diffusion:<counts>`, `diffusers:linspace`,
    /// `diffusers:leading+<offset>`, `diffusers:trailing`.
    public var description: String {
        switch self {
        case let .improvedDiffusion(counts): "improved-diffusion:\(counts)"
        case .diffusersLinspace: "diffusers:linspace"
        case let .diffusersLeading(offset): "diffusers:leading+\(offset)"
        case .diffusersTrailing: "diffusers:trailing"
        }
    }

    /// The kept timesteps, **ascending** (N values in 0 ..< T). For improved-diffusion the count N follows
    /// from the rule itself; for diffusers it is `steps`.
    public func keptTimesteps(timesteps T: Int, steps N: Int) throws -> [Int] {
        switch self {
        case let .improvedDiffusion(counts): return try Respacing.improvedDiffusionTimesteps(timesteps: T, sectionCounts: counts)
        case .diffusersLinspace: return try Respacing.diffusersTimesteps(timesteps: T, steps: N, spacing: "linspace").reversed()
        case let .diffusersLeading(offset):
            return try Respacing.diffusersTimesteps(timesteps: T, steps: N, spacing: "leading", stepsOffset: offset).reversed()
        case .diffusersTrailing: return try Respacing.diffusersTimesteps(timesteps: T, steps: N, spacing: "trailing").reversed()
        }
    }
}

/// The respacing rules and the respaced β, one function each.
public enum Respacing {
    /// improved-diffusion's `space_timesteps(T, section_counts)` (Nichol & Dhariwal 2021 §4; `respace.py`).
    ///
    ///     "ddimN":       the smallest stride k in 1 ..< T with ⌈T/k⌉ = N; keeps 0, k, 2k, … (T−1 iff k divides T−1)
    ///     "c1,…,cm":     T cut into m sections (the first T mod m one step longer); section j of size n_j
    ///                    starting at a_j keeps a_j + round(idx) for idx = 0, d, 2d, … (c_j values, idx
    ///                    accumulated by repeated float64 addition), d = (n_j − 1)/(c_j − 1) (1 when c_j ≤ 1),
    ///                    round = ties to even (Python's `round`)
    ///
    /// Returns the kept timesteps ascending (N values; duplicates removed, as the source's set does).
    /// Throws for a malformed rule, a stride that does not exist, or a section asked for more steps than it has.
    public static func improvedDiffusionTimesteps(timesteps T: Int, sectionCounts: String) throws -> [Int] {
        guard T >= 1 else { throw DDPMError(.invalidValue, "respacing: timesteps must be at least 1, got \(T)") }
        if sectionCounts.hasPrefix("ddim") {
            guard let n = Int(sectionCounts.dropFirst(4)), n >= 1 else {
                throw DDPMError(.invalidValue, "respacing rule '\(sectionCounts)': expected ddimN with N a positive integer")
            }
            if n == T { return Array(0..<T) }
            for k in 1..<max(T, 2) where (T + k - 1) / k == n { return Array(stride(from: 0, to: T, by: k)) }
            throw DDPMError(.invalidValue, "respacing rule '\(sectionCounts)': no integer stride gives exactly \(n) steps out of \(T)")
        }
        let parts = sectionCounts.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 1 }) else {
            throw DDPMError(.invalidValue, "respacing rule '\(sectionCounts)': expected positive section counts separated by commas, or ddimN")
        }
        let counts = parts.map { $0! }
        guard counts.count <= T else {
            throw DDPMError(.invalidValue, "respacing rule '\(sectionCounts)': \(counts.count) sections for \(T) timesteps")
        }
        let sizePer = T / counts.count, extra = T % counts.count
        var start = 0
        var kept = Set<Int>()
        for (j, c) in counts.enumerated() {
            let size = sizePer + (j < extra ? 1 : 0)
            guard size >= c else {
                throw DDPMError(.invalidValue, "respacing rule '\(sectionCounts)': section \(j) has \(size) timesteps, asked for \(c)")
            }
            let stride = c <= 1 ? 1.0 : Double(size - 1) / Double(c - 1)
            var idx = 0.0
            for _ in 0..<c {
                kept.insert(start + Int(idx.rounded(.toNearestOrEven)))
                idx += stride
            }
            start += size
        }
        return kept.sorted()
    }

    /// diffusers' `set_timesteps` (DDIMScheduler / DDPMScheduler `timestep_spacing`), in **sampling order
    /// (descending)** as `scheduler.timesteps`:
    ///
    ///     linspace:  round(i · ((T−1)/(N−1))) for i < N−1, and T−1; ties to even   keeps 0; T−1 iff N ≥ 2
    ///     leading:   i · ⌊T/N⌋ + steps_offset                               0 iff offset 0; T−1 iff (N−1)⌊T/N⌋ + offset = T−1
    ///     trailing:  round(T − i · (T/N)) − 1, ties to even                 T−1 always; 0 iff round(T/N) = 1
    public static func diffusersTimesteps(timesteps T: Int, steps N: Int, spacing: String, stepsOffset: Int = 0) throws -> [Int] {
        guard N >= 1, N <= T else { throw DDPMError(.invalidValue, "respacing: expected between 1 and \(T) steps, got \(N)") }
        var ts: [Int]
        switch spacing {
        case "linspace":
            let d = N > 1 ? Double(T - 1) / Double(N - 1) : 0
            ts = (0..<N).map { i in i == N - 1 && N > 1 ? T - 1 : Int((Double(i) * d).rounded(.toNearestOrEven)) }
        case "leading":
            guard stepsOffset >= 0 else { throw DDPMError(.invalidValue, "respacing: steps offset must be 0 or positive, got \(stepsOffset)") }
            ts = (0..<N).map { $0 * (T / N) + stepsOffset }
        case "trailing":
            let ratio = Double(T) / Double(N)
            ts = (0..<N).map { i in Int((Double(T) - Double(i) * ratio).rounded(.toNearestOrEven)) - 1 }.reversed()
        default:
            throw DDPMError(.unknownName, "timestep spacing '\(spacing)': expected linspace, leading or trailing")
        }
        ts.sort(by: >)
        guard ts.first! <= T - 1, ts.last! >= 0, zip(ts, ts.dropFirst()).allSatisfy({ $0 > $1 }) else {
            throw DDPMError(.invalidValue, "respacing '\(spacing)' with \(N) steps and offset \(stepsOffset): timesteps \(ts) are not distinct values in [0, \(T))")
        }
        return ts
    }

    /// The respaced β (Nichol & Dhariwal 2021 §4, improved-diffusion `SpacedDiffusion`): over the kept steps
    /// s_0 < s_1 < … < s_{N−1},
    ///
    ///     β'_i = 1 − ᾱ_{s_i} / ᾱ_{s_{i−1}},   ᾱ_{s_{−1}} = 1          (N values)
    ///
    /// so that ᾱ' = cumprod(1 − β') equals ᾱ at the kept steps up to rounding.
    public static func respacedBetas(alphasCumprod ac: [Double], kept: [Int]) -> [Double] {
        var last = 1.0
        return kept.map { s in
            defer { last = ac[s] }
            return 1 - ac[s] / last
        }
    }
}

extension GaussianDiffusion {
    /// A diffusion with `configuration` (its schedule is a description only) over explicit β — for respaced
    /// and rescaled schedules. `configuration.timesteps` must equal β's count.
    public init(_ configuration: DiffusionConfiguration, betas: [Double]) throws {
        guard configuration.timesteps == betas.count else {
            throw DDPMError(.invalidConfiguration, "diffusion over explicit β: configuration has \(configuration.timesteps) timesteps, β has \(betas.count)")
        }
        try DiffusionConfiguration.validate(dataRange: configuration.dataRange)
        self.configuration = configuration
        tables = try DiffusionTables(betas: betas)
    }
}

/// A diffusion over a subset of the timesteps (improved-diffusion's `SpacedDiffusion`): the tables of the
/// respaced β' (``Respacing/respacedBetas(alphasCumprod:kept:)``), with the network still called with the
/// original timestep `timestepMap[i]`. Chain index i runs 0 ..< N. Every reverse step clips or thresholds
/// x̂_0 by ``thresholding``.
public struct SpacedDiffusion: Diffuser, Sendable {
    /// The original T-step diffusion.
    public let base: GaussianDiffusion
    /// The diffusion over the kept steps: N-step tables from β' (the base itself when every step is kept).
    public let spaced: GaussianDiffusion
    /// timestepMap[i] = the original timestep of chain index i (ascending).
    public let timestepMap: [Int]
    /// How x̂_0 is processed in reverse steps.
    public let thresholding: Thresholding
    /// ᾱ'_{i+1}, with 0 after the last index (improved-diffusion's `alphas_cumprod_next`), for inversion.
    public let alphasCumprodNext: [Double]
    /// Which rule chose the kept steps (recorded in golden files).
    public let spacingName: String

    /// Keeps the ascending, distinct timesteps `kept` of `base`. `thresholding` nil means the base
    /// configuration's clipping (static clipping when `clipDenoised`, none otherwise).
    public init(base: GaussianDiffusion, kept: [Int], thresholding: Thresholding? = nil, spacingName: String = "explicit") throws {
        guard !kept.isEmpty else { throw DDPMError(.invalidValue, "respacing: no timesteps kept") }
        guard kept.allSatisfy({ $0 >= 0 && $0 < base.timesteps }), zip(kept, kept.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw DDPMError(.invalidValue, "respacing: kept timesteps must be distinct, ascending and in [0, \(base.timesteps)), got \(kept)")
        }
        self.base = base
        timestepMap = kept
        if kept.count == base.timesteps {
            spaced = base
        } else {
            var c = base.configuration
            c.timesteps = kept.count
            spaced = try GaussianDiffusion(c, betas: Respacing.respacedBetas(alphasCumprod: base.tables.alphasCumprod, kept: kept))
        }
        self.thresholding = thresholding ?? (base.configuration.clipDenoised ? .clip : .unchanged)
        alphasCumprodNext = Array(spaced.tables.alphasCumprod.dropFirst()) + [0]
        self.spacingName = spacingName
    }

    /// Keeps the steps `spacing` chooses (`steps` is used by the diffusers rules).
    public init(base: GaussianDiffusion, spacing: TimestepSpacing, steps: Int, thresholding: Thresholding? = nil) throws {
        try self.init(base: base, kept: spacing.keptTimesteps(timesteps: base.timesteps, steps: steps),
                      thresholding: thresholding, spacingName: spacing.description)
    }

    /// N, the number of kept steps.
    public var timesteps: Int { timestepMap.count }
    public func modelTimestep(_ index: Int) -> Int { timestepMap[index] }

    public func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int] {
        spaced.sampleTimesteps(batchSize: batchSize, generator: &generator)
    }
    /// x_t at chain indices t (the respaced tables; equal to the original at the kept steps up to rounding).
    public func addNoise(_ xStart: Tensor, at t: [Int], noise: Tensor) throws -> Tensor {
        try spaced.qSample(start: xStart, t: t, noise: noise)
    }
    public func trainingLosses(modelOutput: Tensor, start: Tensor, noisy: Tensor, t: [Int], noise: Tensor) throws -> TrainingTerms {
        try spaced.trainingLosses(modelOutput: modelOutput, start: start, noisy: noisy, t: t, noise: noise)
    }

    /// One ancestral step on the respaced chain at indices t: the network at the original timesteps
    /// timestepMap[t], then ``GaussianDiffusion/pSample(modelOutput:noisy:t:noise:thresholding:)`` on the
    /// respaced tables.
    public func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor) throws -> (sample: Tensor, predictedStart: Tensor) {
        try denoise(model: model, x, at: t, noise: z, condition: nil)
    }

    /// The same with the mean shifted by `condition` (called with x_t and the original timesteps timestepMap[t]).
    public func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor, condition: AncestralMeanCondition?) throws
        -> (sample: Tensor, predictedStart: Tensor) {
        try spaced.validate(t, batch: x.shape[0])
        let original = t.map { timestepMap[$0] }
        let out = model.predictNoise(x, at: original)
        return try spaced.pSample(modelOutput: out, noisy: x, t: t, noise: z, thresholding: thresholding,
                                  conditionMean: condition.map { c in { c.conditionMean(noisy: x, modelTimesteps: original, $0) } })
    }
}
