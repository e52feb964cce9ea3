import ArgumentParser
import DDPM

/// Classifier-free guidance's strength, one of `--guidance` (the paper's w) or `--guidance-scale`
/// (diffusers' s = 1 + w), and `--guidance-rescale` φ (`ddpm sample`, `ddpm golden export`).
struct GuidanceOptions: ParsableArguments {
    @Option(name: .customLong("guidance"), parsing: .unconditional, help: """
        Classifier-free guidance strength w, the PAPER's convention (Ho & Salimans 2022, eq. 6): \
        eps = (1 + w) eps_c - w eps_u; w = 0 is the conditional model. Give this or --guidance-scale, not both.
        """)
    var w: Double?
    @Option(name: .customLong("guidance-scale"), parsing: .unconditional, help: """
        Classifier-free guidance scale s = 1 + w, the convention of GLIDE, diffusers (guidance_scale) and \
        k-diffusion (cond_scale): eps = eps_u + s (eps_c - eps_u); s = 1 is the conditional model (no skip \
        for s <= 1, unlike diffusers). Give this or --guidance, not both.
        """)
    var s: Double?
    @Option(name: .customLong("guidance-rescale"), parsing: .unconditional, help: """
        Guidance rescale phi in [0, 1] (Lin et al. 2024, section 3.4; diffusers guidance_rescale): the guided \
        eps rescaled to the conditional one's standard deviation, mixed by phi. Needs --guidance or --guidance-scale. (default: 0)
        """)
    var phi: Double?
    @Option(name: .customLong("guidance-interval"), help: """
        lo,hi: the network timesteps t (0-based) at which guidance is applied (Kynkäänniemi et al. 2024, guidance \
        in a limited interval); at every other t the conditional model alone. Needs --guidance or --guidance-scale. \
        (default: every t)
        """)
    var intervalText: String?

    /// The guidance interval (nil: every t); valid after ``check()``.
    func interval() throws -> ClosedRange<Int>? {
        guard let intervalText else { return nil }
        let v = try Presets.integers(intervalText, option: "--guidance-interval")
        guard v.count == 2, v[0] >= 0, v[0] <= v[1] else {
            throw DDPMError(.invalidValue, "--guidance-interval '\(intervalText)': expected lo,hi with 0 ≤ lo ≤ hi")
        }
        return v[0]...v[1]
    }

    /// The strength as given (nil: no guidance).
    var strength: GuidanceStrength? { w.map { .paper(w: $0) } ?? s.map { .scale(s: $0) } }
    var rescale: Double { phi ?? 0 }
    /// The flag that was given, for messages.
    var flag: String { w != nil ? "--guidance" : "--guidance-scale" }

    /// Both scales, a non-finite scale, φ outside [0, 1] or φ without a scale are errors.
    func check() throws {
        if w != nil && s != nil {
            throw DDPMError(.invalidValue, "--guidance and --guidance-scale: give one of the two (w, the paper's, or s = 1 + w, diffusers')")
        }
        for (flag, v) in [("--guidance", w), ("--guidance-scale", s)] {
            if let v, !v.isFinite { throw DDPMError(.invalidValue, "\(flag): expected a finite number, got \(v)") }
        }
        if let phi {
            guard phi >= 0, phi <= 1 else { throw DDPMError(.invalidValue, "--guidance-rescale: expected a value in [0, 1], got \(phi)") }
            guard strength != nil else { throw DDPMError(.invalidValue, "--guidance-rescale: only with --guidance or --guidance-scale") }
        }
        if intervalText != nil {
            _ = try interval()
            guard strength != nil else { throw DDPMError(.invalidValue, "--guidance-interval: only with --guidance or --guidance-scale") }
        }
    }
}

/// `ddpm sample`'s class conditioning: `--class`, and the guidance flags (``GuidanceOptions``).
struct ConditioningOptions: ParsableArguments {
    @Option(name: .customLong("class"), help: """
        Class(es) to draw, comma-separated (e.g. 3, or 0,1,2 for a row of --count images per class); needs a \
        checkpoint trained with --classes K, each class in 0 ..< K. Without a guidance flag: the conditional \
        model, unguided.
        """)
    var classes: String?
    @OptionGroup var guidance: GuidanceOptions

    var strength: GuidanceStrength? { guidance.strength }
    var rescale: Double { guidance.rescale }

    /// The classes asked for (empty without `--class`); valid after ``check()``.
    var classList: [Int] { (classes.flatMap { try? Presets.integers($0, option: "--class") }) ?? [] }

    /// Everything that needs no checkpoint.
    func check() throws {
        try guidance.check()
        guard let classes else {
            if strength != nil { throw DDPMError(.invalidValue, "\(guidance.flag): classifier-free guidance needs --class") }
            return
        }
        let list = try Presets.integers(classes, option: "--class")
        guard !list.isEmpty else { throw DDPMError(.invalidValue, "--class '\(classes)': expected at least one class") }
        if let bad = list.first(where: { $0 < 0 }) { throw DDPMError(.invalidValue, "--class \(bad): expected a class 0 or more") }
    }

    /// Checks the classes against the checkpoint's network (K, or unconditional). With `classifierGuided`
    /// (`--classifier`), an unconditional network takes --class too: the classifier alone steers it (its K is
    /// checked when it is loaded), but classifier-free guidance still needs a class-conditional network.
    func check(against network: UNetConfiguration, classifierGuided: Bool = false) throws {
        let list = classList
        guard !list.isEmpty else { return }
        guard let k = network.classes else {
            if classifierGuided && strength == nil { return }
            throw DDPMError(.invalidValue, "--class: the checkpoint's network is unconditional (trained without --classes)"
                            + (classifierGuided ? "; --guidance and --guidance-scale need a class-conditional checkpoint" : ""))
        }
        if let bad = list.first(where: { $0 >= k }) {
            throw DDPMError(.invalidValue, "--class \(bad): expected a class in 0 ..< \(k) (the checkpoint was trained with --classes \(k))")
        }
    }

    /// One label per image: `perClass` images of each class in order; nil without `--class`.
    func labels(perClass: Int) -> [Int]? {
        let list = classList
        return list.isEmpty ? nil : list.flatMap { [Int](repeating: $0, count: perClass) }
    }

    /// Writes `/labels` and the guidance the user gave (convention, w, s, φ) as root attributes.
    func record(labels: [Int], to w: HDF5Writer) throws {
        try w.write(labels.map(Int64.init), shape: [labels.count], to: "/labels")
        if let g = strength {
            try w.setAttribute("guidance_convention", g.convention)
            try w.setAttribute("guidance_w", g.w)
            try w.setAttribute("guidance_s", g.s)
            try w.setAttribute("guidance_rescale", rescale)
            if let i = try guidance.interval() { try w.setAttribute("guidance_interval", [Int64(i.lowerBound), Int64(i.upperBound)]) }
        }
    }

    /// For the closing line: the classes and the guidance as given.
    var summary: String {
        let list = classList
        guard !list.isEmpty else { return "" }
        var text = ", class\(list.count == 1 ? "" : "es") \(list.map(String.init).joined(separator: ","))"
        switch strength {
        case nil: text += ", no guidance"
        case .paper(let w)?: text += ", guidance w = \(w) (paper; s = \(1 + w))"
        case .scale(let s)?: text += ", guidance scale s = \(s) (diffusers; w = \(s - 1))"
        }
        if rescale != 0 { text += ", rescale φ = \(rescale)" }
        if let i = try? guidance.interval() { text += ", guidance at t in \(i.lowerBound)...\(i.upperBound)" }
        return text
    }
}
