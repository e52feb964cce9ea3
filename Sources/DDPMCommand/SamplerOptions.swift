import ArgumentParser
import DDPM

/// The sampler options shared by `sample`, `interpolate` and the benchmark: which chain, which step.
struct SamplerOptions: ParsableArguments {
    @Option(help: """
        Reverse sampler: ancestral (Ho et al. Algorithm 2, on the full or a respaced chain), ddim (Song et al. eq. 12), \
        or a σ-view solver (--sigmas; default 20 steps): \(SolverOptions.names).
        """)
    var sampler: String = "ancestral"
    @Option(name: .customLong("sample-steps"), help: "Sampling steps N (default: T, the full chain; the σ-view solvers 20).")
    var steps: Int?
    @Option(help: """
        Which timesteps N steps keep: ddim (improved-diffusion 'ddimN', stride ⌊…⌋ from 0), sections:<c1,c2,…> \
        (improved-diffusion section counts), linspace, leading[:offset], trailing (diffusers' timestep_spacing). \
        Needs --sample-steps. (default: ddim)
        """)
    var spacing: String?
    @Option(help: "DDIM η: 0 (default) is deterministic, 1 on the full chain is the ancestral sampler with fixed-small variance. For euler-ancestral, dpm++2s and dpm++2m-sde: k-diffusion's η (default 1).")
    var eta: Double?
    @Option(help: "x̂_0 processing: none, clip (to the data range), dynamic[:p[:smax]] (Imagen: p 0.995, no upper limit). Default: the checkpoint's clipping.")
    var threshold: String?
    @Option(help: "DDIM ε after x̂_0 is clipped: rederive (improved-diffusion, default) or original (diffusers' default).")
    var epsilon: String?
    @Flag(inversion: .prefixedNo, help: "diffusers spacings with DDIM: final ᾱ = 1 (set_alpha_to_one, the default) or ᾱ_0.")
    var setAlphaToOne: Bool?
    @OptionGroup var solverOptions: SolverOptions

    /// The σ-view solvers that read --eta (k-diffusion's η of their ancestral steps).
    static let solversWithEta: Set<String> = ["euler-ancestral", "dpm++2s", "dpm++2m-sde"]

    /// Options that only some samplers or spacings read: given elsewhere they are refused with the reason.
    /// A new sampler adds its own options here (the σ-view solvers' own options are checked by `SolverOptions`).
    func inapplicable(_ c: SamplerChoice) -> [(option: String, reason: String)] {
        let diffusersSpacing: Bool
        switch c.spacing {
        case .diffusersLinspace?, .diffusersLeading?, .diffusersTrailing?: diffusersSpacing = true
        default: diffusersSpacing = false
        }
        var trainedSigmas = false
        if case .trained(_)? = c.solver?.sigmas { trainedSigmas = true }
        let isSolver = c.solver != nil, ddim = !isSolver && c.kind == .ddim
        let rules: [(String, Bool, Bool, String)] = [
            ("--spacing", spacing != nil, steps != nil && (!isSolver || trainedSigmas),
             isSolver ? "applies to the σ-view solvers only with --sigmas trained and --sample-steps N" : "needs --sample-steps N: the full chain keeps every timestep"),
            ("--eta", eta != nil, ddim || (isSolver && Self.solversWithEta.contains(sampler)),
             "applies to --sampler ddim, euler-ancestral, dpm++2s and dpm++2m-sde; --sampler \(sampler) has no η"),
            ("--epsilon", epsilon != nil, ddim, "applies to --sampler ddim; --sampler \(sampler) does not rederive ε"),
            ("--set-alpha-to-one/--no-set-alpha-to-one", setAlphaToOne != nil, ddim && diffusersSpacing,
             "applies to --sampler ddim with a diffusers spacing (linspace, leading, trailing)"),
        ]
        return rules.filter { $0.1 && !$0.2 }.map { ($0.0, $0.3) }
    }

    /// The choice these options describe; errors name the option.
    func choice() throws -> SamplerChoice {
        if let steps { try requireRange("--sample-steps", steps, 1...Int.max) }
        if let eta { guard eta >= 0, eta.isFinite else { throw DDPMError(.invalidValue, "--eta: expected a finite value ≥ 0, got \(eta)") } }
        let spacing = try Self.spacing(self.spacing ?? "ddim", steps: steps ?? 1)   // parsed even when unused: a bad value is refused
        if let solver = try solverOptions.choice(sampler: sampler, eta: eta) {
            var c = SamplerChoice(steps: steps ?? 20)
            c.solver = solver
            if case .trained = solver.sigmas, steps != nil { c.solver!.sigmas = .trained(spacing) }
            if let threshold { c.thresholding = try Self.thresholding(threshold) }
            if let (option, reason) = inapplicable(c).first { throw DDPMError(.invalidConfiguration, "\(option) \(reason)") }
            return c
        }
        guard let kind = SamplerChoice.Kind(rawValue: sampler) else {
            throw DDPMError(.unknownName, "--sampler '\(sampler)': expected ancestral, ddim, \(SolverOptions.names)")
        }
        try solverOptions.refuseWithout(sampler: sampler)
        let red = try epsilon.map { try ObjectiveOptions.choice($0, "--epsilon") as NoiseRederivation } ?? .rederive
        var c = SamplerChoice(kind: kind, steps: steps, eta: eta ?? 0, rederivation: red, setAlphaToOne: setAlphaToOne ?? true)
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

/// The options of the σ-view solvers (Sources/Diffusion/Solvers), parsed into a ``SolverChoice``.
struct SolverOptions: ParsableArguments {
    @Option(help: "σ table of the solvers: karras (Karras et al. 2022 eq. 5, default), exponential (uniform in log σ), trained (the trained σ at the --spacing timesteps), euler-linspace|euler-leading[:k]|euler-trailing (diffusers' EulerDiscreteScheduler timestep_spacing: fractional t, σ linear in σ), dpmsolver-linspace|dpmsolver-leading[:k]|dpmsolver-trailing (diffusers' DPMSolverMultistepScheduler's); σ_min, σ_max the trained σ_0, σ_{T−1}; a final σ = 0.")
    var sigmas: String?
    @Option(help: "Karras ρ (default 7).")
    var rho: Double?
    @Option(name: .customLong("sigma-to-t"), help: "σ → network timestep: log-linear (k-diffusion sigma_to_t, rounded; default), nearest (nearest trained σ), linear (linear in σ, rounded).")
    var sigmaToT: String?
    @Flag(help: "diffusers' lower_order_final for dpm++2m, dpm++2m-sde and unipc (the last steps at lower order).")
    var lowerOrderFinal = false
    @Option(help: "UniPC order p (1–3, default 2, diffusers' solver_order).")
    var solverOrder: Int?
    @Option(help: "UniPC B(h): bh1 or bh2 (default, diffusers' solver_type).")
    var unipcVariant: String?
    @Option(help: "Heun's S_churn (Karras et al. 2022 Algorithm 2; default 0, deterministic).")
    var sChurn: Double?

    /// The solver names as users know them from the peers, each with its source (for --help and errors).
    static let names = """
        euler (Karras et al. 2022 Alg. 1), euler-ancestral (k-diffusion), heun (Karras Alg. 1/2), dpm++2m (Lu et al. 2022b), \
        dpm++2s (Lu et al. 2022b, k-diffusion's ancestral η), dpm++2m-sde (Lu et al. 2022b, k-diffusion), dpm-solver-1|2|3 \
        (Lu et al. 2022a; 1 is DDIM), unipc (Zhao et al. 2023, with its corrector), unip (UniPC without the corrector), \
        plms (Liu et al. 2022 with diffusers' plain warm-up), pndm (Liu et al. 2022 with its pseudo Runge-Kutta warm-up)
        """

    /// `euler-linspace`, `dpmsolver-leading:1`, …: diffusers' σ-scheduler timesteps (nil for another name).
    static func diffusersSpacing(_ name: String) -> DiffusersSigmaSpacing? {
        let family: (DiffusersSigmaSpacing.Rule) -> DiffusersSigmaSpacing
        let rule: Substring
        if name.hasPrefix("euler-") { family = DiffusersSigmaSpacing.euler; rule = name.dropFirst(6) }
        else if name.hasPrefix("dpmsolver-") { family = DiffusersSigmaSpacing.dpmSolver; rule = name.dropFirst(10) }
        else { return nil }
        switch rule {
        case "linspace": return family(.linspace)
        case "trailing": return family(.trailing)
        case "leading": return family(.leading(stepsOffset: 0))
        default:
            guard rule.hasPrefix("leading:"), let k = Int(rule.dropFirst(8)), k >= 0 else { return nil }
            return family(.leading(stepsOffset: k))
        }
    }

    /// Throws when a solver option is given to ancestral or DDIM.
    func refuseWithout(sampler: String) throws {
        let given = [("--sigmas", sigmas != nil), ("--rho", rho != nil), ("--sigma-to-t", sigmaToT != nil), ("--lower-order-final", lowerOrderFinal),
                     ("--solver-order", solverOrder != nil), ("--unipc-variant", unipcVariant != nil), ("--s-churn", sChurn != nil)]
        if let (name, _) = given.first(where: { $0.1 }) {
            throw DDPMError(.invalidConfiguration, "\(name): an option of the σ-view solvers, not of --sampler \(sampler)")
        }
    }

    /// The solver `sampler` names with these options, or nil when it names no solver. Every bad combination
    /// is an error naming the option.
    func choice(sampler: String, eta: Double?) throws -> SolverChoice? {
        let solver: SigmaSolver
        let ancestral = eta ?? 1
        switch sampler {
        case "euler": solver = .euler
        case "euler-ancestral": solver = .eulerAncestral(eta: ancestral, noiseScale: 1)
        case "heun": solver = .heun(churn: sChurn ?? 0, tMin: 0, tMax: .infinity, noiseScale: 1)
        case "dpm++2m": solver = .dpmpp2M
        case "dpm++2s": solver = .dpmpp2S(eta: ancestral, noiseScale: 1)
        case "dpm++2m-sde": solver = .dpmpp2MSDE(eta: ancestral, noiseScale: 1, correction: .midpoint)
        case "dpm-solver-1", "dpm-solver-2", "dpm-solver-3": solver = .dpmSolver(order: Int(sampler.suffix(1))!)
        case "unipc", "unip":
            guard let v = SolverUpdate.UniPCVariant(rawValue: unipcVariant ?? "bh2") else {
                throw DDPMError(.unknownName, "--unipc-variant '\(unipcVariant!)': expected bh1 or bh2")
            }
            let p = solverOrder ?? 2
            guard (1...3).contains(p) else { throw DDPMError(.invalidValue, "--solver-order: expected 1, 2 or 3, got \(p)") }
            solver = .uniPC(order: p, variant: v, corrector: sampler == "unipc")
        case "plms": solver = .plms(warmUp: .plms)
        case "pndm": solver = .plms(warmUp: .pseudoRungeKutta)
        default: return nil
        }
        let stochastic = ["euler-ancestral", "dpm++2s", "dpm++2m-sde"].contains(sampler)
        if eta != nil && !stochastic { throw DDPMError(.invalidConfiguration, "--eta: --sampler \(sampler) is deterministic; η is for ddim, euler-ancestral, dpm++2s and dpm++2m-sde") }
        if (solverOrder != nil || unipcVariant != nil) && !sampler.hasPrefix("unip") {
            throw DDPMError(.invalidConfiguration, "\(solverOrder != nil ? "--solver-order" : "--unipc-variant"): for unipc and unip, not --sampler \(sampler)")
        }
        if lowerOrderFinal && !["dpm++2m", "dpm++2m-sde", "unipc", "unip"].contains(sampler) {
            throw DDPMError(.invalidConfiguration, "--lower-order-final: for the multistep solvers dpm++2m, dpm++2m-sde, unipc and unip, not --sampler \(sampler)")
        }
        if sChurn != nil && sampler != "heun" { throw DDPMError(.invalidConfiguration, "--s-churn: for --sampler heun, not \(sampler)") }
        let kind: SigmaScheduleKind
        switch sigmas ?? "karras" {
        case "karras":
            let r = rho ?? 7
            guard r > 0, r.isFinite else { throw DDPMError(.invalidValue, "--rho: expected a finite value > 0, got \(r)") }
            kind = .karras(rho: r)
        case "exponential": kind = .exponential
        case "trained": kind = .trained(nil)
        case let name:
            guard let spacing = Self.diffusersSpacing(name) else {
                throw DDPMError(.unknownName, "--sigmas '\(name)': expected karras, exponential, trained, euler-linspace|leading[:k]|trailing or dpmsolver-linspace|leading[:k]|trailing")
            }
            kind = .diffusers(spacing)
        }
        if rho != nil, sigmas != nil, sigmas != "karras" { throw DDPMError(.invalidConfiguration, "--rho: for --sigmas karras, not \(sigmas!)") }
        guard let conv = SigmaToTimestep(rawValue: sigmaToT ?? "log-linear") else {
            throw DDPMError(.unknownName, "--sigma-to-t '\(sigmaToT!)': expected log-linear, nearest or linear")
        }
        try solver.validate()
        return SolverChoice(solver: solver, sigmas: kind, timestepConvention: conv, lowerOrderFinal: lowerOrderFinal)
    }
}
