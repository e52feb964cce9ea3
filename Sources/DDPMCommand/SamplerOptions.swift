import ArgumentParser
import DDPM

/// The sampler options shared by `sample`, `interpolate` and the benchmark: which chain, which step.
struct SamplerOptions: ParsableArguments {
    @Option(help: "Reverse sampler: ancestral (Ho et al. Algorithm 2, on the full or a respaced chain) or ddim (Song et al. eq. 12).")
    var sampler: String = "ancestral"
    @Option(help: "Sampling steps N (default: T, the full chain).")
    var steps: Int?
    @Option(help: """
        Which timesteps N steps keep: ddim (improved-diffusion 'ddimN', stride ⌊…⌋ from 0), sections:<c1,c2,…> \
        (improved-diffusion section counts), linspace, leading[:offset], trailing (diffusers' timestep_spacing).
        """)
    var spacing: String = "ddim"
    @Option(help: "DDIM η: 0 is deterministic, 1 on the full chain is the ancestral sampler with fixed-small variance.")
    var eta: Double = 0
    @Option(help: "x̂_0 processing: none, clip (to the data range), dynamic[:p[:smax]] (Imagen: p 0.995, no upper limit). Default: the checkpoint's clipping.")
    var threshold: String?
    @Option(help: "DDIM ε after x̂_0 is clipped: rederive (improved-diffusion, default) or original (diffusers' default).")
    var epsilon: String = "rederive"
    @Flag(inversion: .prefixedNo, help: "diffusers spacings with DDIM: final ᾱ = 1 (set_alpha_to_one) or ᾱ_0.")
    var setAlphaToOne = true

    /// The choice these options describe; errors name the option.
    func choice() throws -> SamplerChoice {
        guard let kind = SamplerChoice.Kind(rawValue: sampler) else {
            throw DDPMError(.unknownName, "--sampler '\(sampler)': expected ancestral or ddim")
        }
        if let steps, steps < 1 { throw DDPMError(.invalidValue, "--steps: expected a positive number, got \(steps)") }
        guard eta >= 0, eta.isFinite else { throw DDPMError(.invalidValue, "--eta: expected a finite value ≥ 0, got \(eta)") }
        guard let red = NoiseRederivation(rawValue: epsilon) else {
            throw DDPMError(.unknownName, "--epsilon '\(epsilon)': expected rederive or original")
        }
        var c = SamplerChoice(kind: kind, steps: steps, eta: eta, rederivation: red, setAlphaToOne: setAlphaToOne)
        if steps != nil { c.spacing = try Self.spacing(spacing, steps: steps!) }
        if let threshold { c.thresholding = try Self.thresholding(threshold) }
        return c
    }

    static func spacing(_ text: String, steps: Int) throws -> TimestepSpacing {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first ?? "" {
        case "ddim": return .improvedDiffusion("ddim\(steps)")
        case "sections":
            guard parts.count == 2 else { throw DDPMError(.invalidValue, "--spacing '\(text)': expected sections:<c1,c2,…>") }
            return .improvedDiffusion(parts[1])
        case "linspace": return .diffusersLinspace
        case "leading":
            let offset = parts.count == 2 ? Int(parts[1]) : 0
            guard let offset, offset >= 0 else { throw DDPMError(.invalidValue, "--spacing '\(text)': expected leading or leading:<offset ≥ 0>") }
            return .diffusersLeading(stepsOffset: offset)
        case "trailing": return .diffusersTrailing
        default: throw DDPMError(.unknownName, "--spacing '\(text)': expected ddim, sections:<c1,c2,…>, linspace, leading[:offset] or trailing")
        }
    }

    static func thresholding(_ text: String) throws -> Thresholding {
        let parts = text.split(separator: ":").map(String.init)
        switch parts.first ?? "" {
        case "none" where parts.count == 1: return .unchanged
        case "clip" where parts.count == 1: return .clip
        case "dynamic" where parts.count <= 3:
            let p = parts.count > 1 ? Double(parts[1]) : 0.995
            let s = parts.count > 2 ? (parts[2] == "inf" ? .infinity : Double(parts[2])) : .infinity
            guard let p, let s, p > 0, p <= 1, s >= 1 else {
                throw DDPMError(.invalidValue, "--threshold '\(text)': expected dynamic[:p[:smax]] with p in (0, 1] and smax ≥ 1 or inf")
            }
            return .dynamic(percentile: p, maxScale: s)
        default: throw DDPMError(.unknownName, "--threshold '\(text)': expected none, clip or dynamic[:p[:smax]]")
        }
    }
}
