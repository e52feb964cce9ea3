// The sampler options of a golden file (schema version 3): the DDIM chain a backend's sampler runs, chosen
// at export the way `ddpm sample` chooses it, recorded as attributes of `/outputs`, with the outputs it adds:
//
//     sampler_steps (int64), sampler_spacing (string, TimestepSpacing.description), sampler_eta (float64),
//     sampler_epsilon (string: rederive | original), sampler_set_alpha_to_one (int64 0/1)
//       → /outputs/sampler_ddim_x_prev (N,C,H,W): one DDIM step on the full chain from x_t at /inputs/t to t − 1
//         with this η and ε rule (z = /inputs/z; as ddim_x_prev_eta0.5 with the file's fixed conventions)
//       → /trajectories/ddim_options: the whole DDIM chain of these options (spacing, N, η, ε rule,
//         set_alpha_to_one) from its own x_T and noise, as every stored trajectory (GoldenTrajectories.swift)
//
// A file without these attributes (every version-1 and -2 file, and version-3 files exported without the
// options) has neither, and checks as before.

import HDF5

/// The sampler options a golden file records (see the file's header).
public struct GoldenSamplerOptions: Sendable, Equatable {
    /// N kept timesteps; nil: the full chain (T).
    public var steps: Int?
    /// Which timesteps N keeps; nil: improved-diffusion's `ddimN`.
    public var spacing: TimestepSpacing?
    public var eta: Double
    public var rederivation: NoiseRederivation
    /// diffusers' `set_alpha_to_one` (read only with a diffusers spacing).
    public var setAlphaToOne: Bool

    public init(steps: Int? = nil, spacing: TimestepSpacing? = nil, eta: Double = 0, rederivation: NoiseRederivation = .rederive, setAlphaToOne: Bool = true) {
        self.steps = steps; self.spacing = spacing; self.eta = eta; self.rederivation = rederivation; self.setAlphaToOne = setAlphaToOne
        // improved-diffusion's ddimN is the default: one way to say it, so a file reads back as it was written.
        if let n = steps, spacing == .improvedDiffusion("ddim\(n)") { self.spacing = nil }
    }

    /// The output and the trajectory the options add.
    public static let outputName = "sampler_ddim_x_prev"
    public static let trajectoryName = "ddim_options"

    /// The DDIM chain of these options for T steps.
    public func choice(timesteps T: Int) -> SamplerChoice {
        SamplerChoice(kind: .ddim, steps: steps ?? T, spacing: spacing, eta: eta, rederivation: rederivation, setAlphaToOne: setAlphaToOne)
    }

    /// Refuses options the file's diffusion cannot run (x_{t−1}-prediction has no DDIM; N outside 1 … T).
    public func validate(for config: ModelConfiguration) throws {
        guard config.diffusion.meanType != .previousX else {
            throw DDPMError(.invalidConfiguration, "sampler options: DDIM needs x̂_0 and ε̂, which x_{t−1}-prediction does not define")
        }
        guard eta >= 0, eta.isFinite else { throw DDPMError(.invalidValue, "DDIM η: expected a finite value ≥ 0, got \(eta)") }
        _ = try choice(timesteps: config.timesteps).makeSampler(for: config.makeDiffusion())
    }

    func write(to w: HDF5Writer, timesteps T: Int) throws {
        try w.setAttribute("sampler_steps", Int64(steps ?? T), on: "/outputs")
        try w.setAttribute("sampler_spacing", (spacing ?? .improvedDiffusion("ddim\(steps ?? T)")).description, on: "/outputs")
        try w.setAttribute("sampler_eta", eta, on: "/outputs")
        try w.setAttribute("sampler_epsilon", rederivation.rawValue, on: "/outputs")
        try w.setAttribute("sampler_set_alpha_to_one", Int64(setAlphaToOne ? 1 : 0), on: "/outputs")
    }

    /// The options a file records, or nil when it records none (version 1 and 2 files, and files exported without them).
    static func read(_ file: HDF5File) throws -> GoldenSamplerOptions? {
        guard file.exists("/outputs") else { return nil }
        let names = Set(try file.attributeNames(of: "/outputs"))
        guard names.contains("sampler_steps") else { return nil }
        for k in ["sampler_spacing", "sampler_eta", "sampler_epsilon", "sampler_set_alpha_to_one"] where !names.contains(k) {
            throw DDPMError(.malformedFile, "\(file.path) /outputs: attribute 'sampler_steps' without '\(k)'")
        }
        let text = try file.stringAttribute("sampler_spacing", of: "/outputs")
        guard let spacing = TimestepSpacing(recorded: text) else {
            throw DDPMError(.invalidConfiguration, "\(file.path) /outputs attribute 'sampler_spacing': expected improved-diffusion:<counts>, diffusers:linspace, diffusers:leading+<offset> or diffusers:trailing, found '\(text)'")
        }
        let eps = try file.stringAttribute("sampler_epsilon", of: "/outputs")
        guard let red = NoiseRederivation(rawValue: eps) else {
            throw DDPMError(.invalidConfiguration, "\(file.path) /outputs attribute 'sampler_epsilon': expected rederive or original, found '\(eps)'")
        }
        return GoldenSamplerOptions(steps: Int(try file.int64Attribute("sampler_steps", of: "/outputs")), spacing: spacing,
                                    eta: try file.doubleAttribute("sampler_eta", of: "/outputs"), rederivation: red,
                                    setAlphaToOne: try file.int64Attribute("sampler_set_alpha_to_one", of: "/outputs") != 0)
    }

    /// `sampler_ddim_x_prev`: the DDIM step x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1 − ᾱ_{t−1} − σ²) ε + σ z (Song et al. eq. 12,
    /// σ from eq. 16 with this η) on the full chain, x̂_0 clipped when the configuration clips, ε by this rule.
    func output(config: ModelConfiguration, diffusion d: GaussianDiffusion, noisy xt: Tensor, t: [Int], modelOutput out: Tensor, z: Tensor) throws -> Tensor {
        try GoldenFile.ddimStep(config: config, diffusion: d, noisy: xt, t: t, modelOutput: out, z: z, eta: eta, rederivation: rederivation).previous
    }
}

extension TimestepSpacing {
    /// The spacing a golden file recorded by its ``description``.
    init?(recorded text: String) {
        if text.hasPrefix("improved-diffusion:") { self = .improvedDiffusion(String(text.dropFirst("improved-diffusion:".count))); return }
        if text == "diffusers:linspace" { self = .diffusersLinspace; return }
        if text == "diffusers:trailing" { self = .diffusersTrailing; return }
        if text.hasPrefix("diffusers:leading+"), let k = Int(text.dropFirst("diffusers:leading+".count)), k >= 0 { self = .diffusersLeading(stepsOffset: k); return }
        return nil
    }
}
