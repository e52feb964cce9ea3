// Sampling a DDPM with any reverse sampler (ancestral on the full or a respaced chain, DDIM): a choice of
// chain and step, wired from the pieces in Sources/Diffusion. No mathematics lives here.

extension DDPM {
    /// `batchSize` images from x_T ~ 𝒩(0, I) through `sampler` (`Diffuser/sampleLoop(model:shape:generator:sampler:onStep:)`),
    /// with the model in evaluation mode. Randomness from ``generator``: x_T, then each step's z.
    public func sample(batchSize: Int, sampler: ReverseSampler, onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        try sample(batchSize: batchSize, sampler: sampler, generator: &generator, onStep: onStep)
    }

    /// The same from another random source (`TorchGenerator` for PyTorch's x_T and z): one
    /// `randn` of N×C×H×W for x_T, then one per step that draws noise. `predictor` replaces the DDPM's
    /// model for this chain (a wrapper of it: ``ClassConditionedPredictor``, ``ClassifierFreeGuidedPredictor``).
    public func sample(batchSize: Int, sampler: ReverseSampler, generator: inout some RandomSource, predictor: NoisePredictor? = nil,
                       onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        guard batchSize > 0 else { throw DDPMError(.invalidValue, "batch size: expected a positive number, got \(batchSize)") }
        return try diffuser.sampleLoop(model: predictor ?? model, shape: [batchSize, channels, imageSize, imageSize],
                                       generator: &generator, sampler: sampler, onStep: onStep)
    }
}

extension DDPM {
    /// `batchSize` images through the sampler `choice` describes, by value:
    ///
    ///     ddpm.sample(batchSize: 4, sampler: .ddim(steps: 50))          // DDIM, η = 0, 50 steps
    ///     ddpm.sample(batchSize: 4, sampler: .ancestral(steps: 100))    // Ho et al.'s chain on 100 kept steps
    ///     ddpm.sample(batchSize: 4, sampler: .ancestral())              // the full chain: sample(batchSize:)
    ///
    /// `onStep` is called after every step (a progress hook: `step.index` counts down from N − 1 to 0 on a
    /// chain of N steps). Randomness from ``generator``: x_T, then each step's z.
    public func sample(batchSize: Int, sampler choice: SamplerChoice, onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        try sample(batchSize: batchSize, sampler: makeSampler(choice), onStep: onStep)
    }

    /// The sampler `choice` describes over this DDPM's diffuser. The full ancestral chain
    /// (``SamplerChoice/ancestral(steps:spacing:thresholding:)`` with no arguments) runs on any diffuser and is the
    /// chain of ``sample(batchSize:onStep:)``; every other choice needs the diffuser's Gaussian tables
    /// (`Diffuser.gaussianDiffusion`), and throws `.invalidConfiguration` for a diffuser without them.
    public func makeSampler(_ choice: SamplerChoice) throws -> ReverseSampler {
        if choice == .ancestral() { return AncestralSampler(diffuser) }
        guard let gaussian = diffuser.gaussianDiffusion else {
            throw DDPMError(.invalidConfiguration, "sampler '\(choice)': needs a Gaussian diffusion's tables, and this DDPM's diffuser (\(type(of: diffuser))) has none; only the full ancestral chain runs on any diffuser")
        }
        return try choice.makeSampler(for: gaussian)
    }
}

/// A sampler choice as plain values (what the command line, the demo and golden files describe), made
/// with ``ancestral(steps:spacing:thresholding:)`` or ``ddim(steps:eta:spacing:thresholding:rederivation:)``
/// and run with `DDPM.sample(batchSize:sampler:onStep:)`.
///
/// Adding a solver (Euler, DPM-Solver++, …) whose sampler lives in `Sources/Diffusion`: a case in ``Kind``
/// (its raw value is the command line's `--sampler` name), a static constructor beside ``ddim(steps:eta:spacing:thresholding:rederivation:)``
/// taking the solver's own settings, and a branch in ``makeSampler(for:)``; nothing else changes
/// (`DDPM.sample` and the command line go through ``makeSampler(for:)``).
public struct SamplerChoice: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable { case ancestral, ddim }
    public var kind: Kind = .ancestral
    /// N, the number of steps; nil is the full chain (T).
    public var steps: Int? = nil
    /// Which timesteps are kept when N < T.
    public var spacing: TimestepSpacing? = nil
    public var eta: Double = 0
    /// nil: the configuration's clipping (static clipping when `clipDenoised`).
    public var thresholding: Thresholding? = nil
    public var rederivation: NoiseRederivation = .rederive
    /// diffusers' DDIM `set_alpha_to_one` (used only with a diffusers spacing).
    public var setAlphaToOne: Bool = true
    /// A σ-view solver (Euler, Heun, DPM-Solver++, UniPC, PLMS …; `Sources/Diffusion/Solvers`): when set it
    /// replaces `kind`, with `steps` (default 20) and `thresholding`.
    public var solver: SolverChoice? = nil

    public init(kind: Kind = .ancestral, steps: Int? = nil, spacing: TimestepSpacing? = nil, eta: Double = 0,
                thresholding: Thresholding? = nil, rederivation: NoiseRederivation = .rederive, setAlphaToOne: Bool = true) {
        self.kind = kind; self.steps = steps; self.spacing = spacing; self.eta = eta
        self.thresholding = thresholding; self.rederivation = rederivation; self.setAlphaToOne = setAlphaToOne
    }

    /// Ho et al.'s Algorithm 2: the full chain when `steps` is nil (the seed's `sample`), else on `steps`
    /// kept timesteps (improved-diffusion's `ddimN` spacing unless `spacing` is given).
    public static func ancestral(steps: Int? = nil, spacing: TimestepSpacing? = nil, thresholding: Thresholding? = nil) -> SamplerChoice {
        SamplerChoice(kind: .ancestral, steps: steps, spacing: spacing, thresholding: thresholding)
    }

    /// DDIM (Song et al. 2021, eq. 12) on `steps` kept timesteps with noise scale `eta` (0: deterministic).
    public static func ddim(steps: Int, eta: Double = 0, spacing: TimestepSpacing? = nil, thresholding: Thresholding? = nil,
                            rederivation: NoiseRederivation = .rederive) -> SamplerChoice {
        SamplerChoice(kind: .ddim, steps: steps, spacing: spacing, eta: eta, thresholding: thresholding, rederivation: rederivation)
    }

    public var description: String {
        if let solver { return "\(solver), \(steps ?? 20) steps" + (thresholding.map { ", x̂_0 \($0)" } ?? "") }
        var s = kind.rawValue + (steps.map { ", \($0) steps" } ?? ", full chain")
        if let spacing { s += ", spacing \(spacing)" }
        if kind == .ddim { s += ", η = \(eta), ε \(rederivation.rawValue)" }
        if let thresholding { s += ", x̂_0 \(thresholding)" }
        return s
    }

    /// The sampler over `diffusion`. Ancestral: the respaced chain of the kept steps (improved-diffusion's
    /// SpacedDiffusion; diffusers' DDPMScheduler also steps to the next kept step with final ᾱ = 1).
    /// DDIM: improved-diffusion's chain for its spacings; diffusers' DDIMScheduler chain (target t − ⌊T/N⌋,
    /// `set_alpha_to_one`) for the diffusers spacings.
    public func makeSampler(for diffusion: GaussianDiffusion) throws -> ReverseSampler {
        if let solver {
            try thresholding?.validate()
            return try solver.makeSampler(for: diffusion, steps: steps ?? 20, thresholding: thresholding)
        }
        let T = diffusion.timesteps
        let n = steps ?? T
        guard n >= 1, n <= T else { throw DDPMError(.invalidValue, "sampling steps: expected between 1 and \(T), got \(n)") }
        try thresholding?.validate()
        let rule = spacing ?? (n == T ? .improvedDiffusion("ddim\(T)") : .improvedDiffusion("ddim\(n)"))
        let spaced = n == T && spacing == nil
            ? try SpacedDiffusion(base: diffusion, kept: Array(0..<T), thresholding: thresholding, spacingName: "full chain")
            : try SpacedDiffusion(base: diffusion, spacing: rule, steps: n, thresholding: thresholding)
        switch kind {
        case .ancestral: return AncestralSampler(spaced)
        case .ddim:
            if case .improvedDiffusion = rule { return try DDIMSampler(spaced, eta: eta, rederivation: rederivation) }
            if n == T && spacing == nil { return try DDIMSampler(spaced, eta: eta, rederivation: rederivation) }
            let chain = try DDIMChain(diffusers: diffusion, timesteps: spaced.timestepMap.reversed(), setAlphaToOne: setAlphaToOne)
            return try DDIMSampler(chain: chain, eta: eta, meanType: diffusion.meanType, thresholding: spaced.thresholding,
                                   dataRange: diffusion.dataRange, rederivation: rederivation)
        }
    }
}
