import ArgumentParser
import DDPM

/// Which of Dhariwal & Nichol's two forms of classifier guidance a sampler uses.
enum ClassifierGuidanceForm: String, CaseIterable {
    /// Algorithm 1, guided-diffusion `condition_mean`: the ancestral mean shifted by s Σ ∇ log p_φ.
    case mean
    /// Algorithm 2, guided-diffusion `condition_score`: ε̂ − √(1 − ᾱ_t) s ∇ log p_φ (DDIM, the solvers, or ancestral).
    case score
}

/// `ddpm sample`'s classifier guidance: `--classifier`, `--classifier-scale`, `--classifier-form`, with the
/// classes of `--class` (``ConditioningOptions``).
struct ClassifierGuidanceOptions: ParsableArguments {
    @Option(help: """
        Classifier guidance (Dhariwal & Nichol 2021) by this noisy classifier (written by `ddpm train-classifier` on the \
        checkpoint's diffusion) toward the classes of --class; the checkpoint may be unconditional.
        """)
    var classifier: String?
    @Option(parsing: .unconditional, help: "The classifier scale s (guided-diffusion's classifier_scale; 0 is no guidance). (default: 1)")
    var classifierScale: Double?
    @Option(help: """
        mean (Algorithm 1: μ + s Σ ∇ log p, the ancestral sampler only) or score (Algorithm 2: ε − √(1 − ᾱ_t) s ∇ log p, \
        every sampler). (default: mean for ancestral, score for ddim and the solvers)
        """)
    var classifierForm: String?

    var scale: Double { classifierScale ?? 1 }

    /// Everything that needs no file: the scale, the form and the sampler it applies to, and --class.
    func check(sampler: SamplerChoice, classes: [Int]) throws {
        guard classifier != nil else {
            try refuseIfGiven(classifierScale != nil, "--classifier-scale", "needs --classifier")
            try refuseIfGiven(classifierForm != nil, "--classifier-form", "needs --classifier")
            return
        }
        guard scale.isFinite else { throw DDPMError(.invalidValue, "--classifier-scale: expected a finite number, got \(scale)") }
        guard !classes.isEmpty else { throw DDPMError(.invalidValue, "--classifier: classifier guidance needs --class (the classes to steer toward)") }
        _ = try form(for: sampler)
    }

    /// The form for `sampler`: as given, or mean for ancestral and score for every other sampler.
    func form(for sampler: SamplerChoice) throws -> ClassifierGuidanceForm {
        let ancestral = sampler.solver == nil && sampler.kind == .ancestral
        guard let text = classifierForm else { return ancestral ? .mean : .score }
        let form: ClassifierGuidanceForm = try ObjectiveOptions.choice(text, "--classifier-form")
        if form == .mean && !ancestral {
            throw DDPMError(.invalidConfiguration, "--classifier-form mean: shifts the ancestral sampler's mean (Algorithm 1); --sampler \(sampler.solver.map { "\($0)" } ?? sampler.kind.rawValue) takes the score form")
        }
        return form
    }

    /// Sizes the classifier from its file's metadata (its T checked against the checkpoint's).
    func footprint(into f: inout Footprint, config: ModelConfiguration, batch: Int) throws {
        guard let classifier else { return }
        let c = try checkpointConfiguration(classifier, option: "--classifier", format: .classifier, into: &f)
        try Self.check(c, classifier, against: config)
        f.network(c.network, batch: batch, training: true, network: "the classifier of --classifier \(classifier)", images: "a batch of \(batch) (with its input gradient)")
    }

    /// A classifier must see the images and the diffusion of the model it guides.
    static func check(_ c: ModelConfiguration, _ path: String, against config: ModelConfiguration) throws {
        let (n, m) = (c.network, config.network)
        guard n.channels == m.channels, n.imageSize == m.imageSize else {
            throw DDPMError(.invalidConfiguration, "--classifier \(path): classifies \(n.channels)×\(n.imageSize)×\(n.imageSize) images, the checkpoint's are \(m.channels)×\(m.imageSize)×\(m.imageSize)")
        }
        guard c.timesteps == config.timesteps, c.diffusion.schedule == config.diffusion.schedule else {
            throw DDPMError(.invalidConfiguration, "--classifier \(path): trained on T = \(c.timesteps) (\(c.diffusion.schedule.name) schedule), the checkpoint has T = \(config.timesteps) (\(config.diffusion.schedule.name)); a classifier must be trained on the diffusion it guides")
        }
    }

    /// The classifier, with every class of `classes` checked against its K.
    func load(classes: [Int], against config: ModelConfiguration) throws -> EncoderUNet? {
        guard let path = classifier else { return nil }
        let trainer = try namingFile(path) { try ClassifierTrainer.load(from: path) }
        try Self.check(trainer.config, path, against: config)
        if let bad = classes.first(where: { $0 >= trainer.classes }) {
            throw DDPMError(.invalidValue, "--class \(bad): expected a class in 0 ..< \(trainer.classes) (the classes of --classifier \(path))")
        }
        return trainer.network
    }

    /// Writes the classifier guidance as given (path, scale, form) as root attributes of the samples' file.
    func record(to w: HDF5Writer, form: ClassifierGuidanceForm) throws {
        guard let classifier else { return }
        try w.setAttribute("classifier", classifier)
        try w.setAttribute("classifier_scale", scale)
        try w.setAttribute("classifier_form", form == .mean ? "condition_mean (Dhariwal & Nichol Algorithm 1)" : "condition_score (Dhariwal & Nichol Algorithm 2)")
    }

    var summary: String {
        guard classifier != nil else { return "" }
        return ", classifier guidance s = \(scale)"
    }
}
