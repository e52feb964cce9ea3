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
        (improved-diffusion section counts), linspace, leading[:offset], trailing (diffusers' timestep_spacing). \
        Needs --steps. (default: ddim)
        """)
    var spacing: String?
    @Option(help: "DDIM η: 0 is deterministic, 1 on the full chain is the ancestral sampler with fixed-small variance. (default: 0)")
    var eta: Double?
    @Option(help: "x̂_0 processing: none, clip (to the data range), dynamic[:p[:smax]] (Imagen: p 0.995, no upper limit). Default: the checkpoint's clipping.")
    var threshold: String?
    @Option(help: "DDIM ε after x̂_0 is clipped: rederive (improved-diffusion, default) or original (diffusers' default).")
    var epsilon: String?
    @Flag(inversion: .prefixedNo, help: "diffusers spacings with DDIM: final ᾱ = 1 (set_alpha_to_one, the default) or ᾱ_0.")
    var setAlphaToOne: Bool?

    /// Options that only some samplers or spacings read: given elsewhere they are refused with the reason.
    /// A new sampler adds its own options here.
    func inapplicable(_ c: SamplerChoice) -> [(option: String, reason: String)] {
        let diffusersSpacing: Bool
        switch c.spacing {
        case .diffusersLinspace?, .diffusersLeading?, .diffusersTrailing?: diffusersSpacing = true
        default: diffusersSpacing = false
        }
        let rules: [(String, Bool, Bool, String)] = [
            ("--spacing", spacing != nil, steps != nil, "needs --steps N: the full chain keeps every timestep"),
            ("--eta", eta != nil, c.kind == .ddim, "applies to --sampler ddim; the ancestral sampler's noise is fixed by the checkpoint's variance"),
            ("--epsilon", epsilon != nil, c.kind == .ddim, "applies to --sampler ddim; the ancestral sampler does not rederive ε"),
            ("--set-alpha-to-one/--no-set-alpha-to-one", setAlphaToOne != nil, c.kind == .ddim && diffusersSpacing,
             "applies to --sampler ddim with a diffusers spacing (linspace, leading, trailing)"),
        ]
        return rules.filter { $0.1 && !$0.2 }.map { ($0.0, $0.3) }
    }

    /// The choice these options describe; errors name the option.
    func choice() throws -> SamplerChoice {
        guard let kind = SamplerChoice.Kind(rawValue: sampler) else {
            throw DDPMError(.unknownName, "--sampler '\(sampler)': expected one of \(SamplerChoice.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let steps { try requireRange("--steps", steps, 1...Int.max) }
        let eta = self.eta ?? 0
        guard eta >= 0, eta.isFinite else { throw DDPMError(.invalidValue, "--eta: expected a finite value ≥ 0, got \(eta)") }
        let red = try epsilon.map { try ObjectiveOptions.choice($0, "--epsilon") as NoiseRederivation } ?? .rederive
        var c = SamplerChoice(kind: kind, steps: steps, eta: eta, rederivation: red, setAlphaToOne: setAlphaToOne ?? true)
        let spacing = try Self.spacing(self.spacing ?? "ddim", steps: steps ?? 1)
        if steps != nil { c.spacing = spacing }
        if let threshold { c.thresholding = try Self.thresholding(threshold) }
        if let (option, reason) = inapplicable(c).first { throw DDPMError(.invalidConfiguration, "\(option) \(reason)") }
        return c
    }

    static func spacing(_ text: String, steps: Int) throws -> TimestepSpacing {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        switch parts.first ?? "" {
        case "ddim" where parts.count == 1: return .improvedDiffusion("ddim\(steps)")
        case "sections":
            guard parts.count == 2, !parts[1].isEmpty else { throw DDPMError(.invalidValue, "--spacing '\(text)': expected sections:<c1,c2,…> with at least one count") }
            return .improvedDiffusion(parts[1])
        case "linspace" where parts.count == 1: return .diffusersLinspace
        case "leading":
            let offset = parts.count == 2 ? Int(parts[1]) : 0
            guard let offset, offset >= 0 else { throw DDPMError(.invalidValue, "--spacing '\(text)': expected leading or leading:<offset ≥ 0>") }
            return .diffusersLeading(stepsOffset: offset)
        case "trailing" where parts.count == 1: return .diffusersTrailing
        default: throw DDPMError(.unknownName, "--spacing '\(text)': expected ddim, sections:<c1,c2,…>, linspace, leading[:offset] or trailing")
        }
    }

    static func thresholding(_ text: String) throws -> Thresholding {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
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
