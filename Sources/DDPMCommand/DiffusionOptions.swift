import ArgumentParser
import DDPM

/// What the network predicts, its variance and the loss (`train`, `demo` and `golden export`). Each is
/// optional so that a resumed run can tell a given option from a default (a checkpoint fixes them).
struct ObjectiveOptions: ParsableArguments {
    @Option(help: "What the network predicts: eps (Ho et al.), x0, xprev (the posterior mean) or v (Salimans & Ho 2022). (default: eps)")
    var meanType: String?
    @Option(help: "Reverse variance: small (β̃_t), large (β_t), learned (log σ² output) or learned-range (Nichol & Dhariwal eq. 15). Learned ones double the network's output channels. (default: small)")
    var variance: String?
    @Option(help: "Loss: simple (MSE to the target), kl (L_t in bits/dim), rescaled-kl (T·L_t) or hybrid (simple + T/1000·L_t with the mean frozen; needs a learned variance). (default: simple)")
    var loss: String?
    @Option(help: "Min-SNR-γ weighting of the simple term with this γ (Hang et al. 2023 use 5); not for --mean-type xprev.")
    var minSnr: Double?

    static func choice<E: RawRepresentable & CaseIterable>(_ text: String, _ option: String) throws -> E where E.RawValue == String {
        guard let v = E(rawValue: text) else {
            throw DDPMError(.unknownName, "\(option) '\(text)': expected one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    /// Sets the given objective fields of `d` (the others keep `d`'s values); a bad combination is one thrown error.
    func apply(to d: inout DiffusionConfiguration) throws {
        if let meanType { d.meanType = try Self.choice(meanType, "--mean-type") }
        if let variance { d.varianceType = try Self.choice(variance, "--variance") }
        if let loss { d.lossType = try Self.choice(loss, "--loss") }
        if let minSnr {
            guard minSnr > 0, minSnr.isFinite else { throw DDPMError(.invalidValue, "--min-snr \(minSnr): expected a positive finite number") }
            d.weighting = .minSNR(gamma: minSnr)
        }
        try d.validate()
    }

    /// The given options whose value differs from the configuration `d` (a checkpoint's), as "--flag value (checkpoint: …)".
    func conflicts(with d: DiffusionConfiguration) throws -> [String] {
        var out: [String] = []
        if let meanType, try Self.choice(meanType, "--mean-type") as ModelMeanType != d.meanType { out.append("--mean-type \(meanType) (checkpoint: \(d.meanType.rawValue))") }
        if let variance, try Self.choice(variance, "--variance") as ModelVarianceType != d.varianceType { out.append("--variance \(variance) (checkpoint: \(d.varianceType.rawValue))") }
        if let loss, try Self.choice(loss, "--loss") as LossType != d.lossType { out.append("--loss \(loss) (checkpoint: \(d.lossType.rawValue))") }
        if let minSnr {
            if case .minSNR(let g) = d.weighting, g == minSnr {} else { out.append("--min-snr \(minSnr) (checkpoint: \(d.weighting.name))") }
        }
        return out
    }
}

/// Diffusion options of `train`. The schedule options are optional so that a resumed run can tell a given
/// option from a default (a checkpoint fixes them).
struct DiffusionOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Diffusion steps T. (default: 1000)") var timesteps: Int?
    @Option(help: "β schedule: linear, quadratic, warmup10, warmup50, constant, jsd, cosine, sigmoid. (default: linear)") var betaSchedule: String?
    @Option(parsing: .unconditional, help: "First β of linear, quadratic, warmup and sigmoid. (default: 0.0001)") var betaStart: Double?
    @Option(parsing: .unconditional, help: "Last β of linear, quadratic, warmup and sigmoid, or the constant schedule's β. (default: 0.02)") var betaEnd: Double?
    @Option(parsing: .unconditional, help: "The cosine schedule's offset s. (default: 0.008)") var cosineS: Double?
    @OptionGroup var objective: ObjectiveOptions
    @Option(help: "How training draws t: uniform, or loss-second-moment (importance sampling, improved-diffusion). (default: uniform)")
    var timestepSampler: String?

    /// The schedule options that were given, by their flags.
    var givenSchedule: [String] {
        [("--beta-schedule", betaSchedule != nil), ("--beta-start", betaStart != nil), ("--beta-end", betaEnd != nil), ("--cosine-s", cosineS != nil)]
            .filter(\.1).map(\.0)
    }

    /// The schedule these options give, starting from `base` (the defaults, or a checkpoint's schedule).
    func schedule(startingFrom base: BetaSchedule = .default) throws -> BetaSchedule {
        var p = Dictionary(base.parameters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        if let betaStart { p["beta_start"] = betaStart }
        if let betaEnd { p["beta_end"] = betaEnd; p["beta"] = betaEnd }
        if let cosineS { p["cosine_s"] = cosineS }
        return try BetaSchedule.named(betaSchedule ?? base.name, parameters: p)
    }

    /// The diffusion these options give (defaults where an option is not given).
    func configuration() throws -> DiffusionConfiguration {
        var d = DiffusionConfiguration(schedule: try schedule(), timesteps: timesteps ?? 1000)
        try objective.apply(to: &d)
        try d.validate()
        return d
    }

    /// The timestep sampler of the training options.
    func sampler() throws -> TimestepSampler {
        try timestepSampler.map { try ObjectiveOptions.choice($0, "--timestep-sampler") } ?? .uniform
    }
}
