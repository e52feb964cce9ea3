import ArgumentParser
import DDPM

/// What the network predicts, its variance and the loss (`train` and `golden export`).
struct ObjectiveOptions: ParsableArguments {
    @Option(help: "What the network predicts: eps (Ho et al.), x0, xprev (the posterior mean) or v (Salimans & Ho 2022).")
    var meanType: String = "eps"
    @Option(help: "Reverse variance: small (β̃_t), large (β_t), learned (log σ² output) or learned-range (Nichol & Dhariwal eq. 15). Learned ones double the network's output channels.")
    var variance: String = "small"
    @Option(help: "Loss: simple (MSE to the target), kl (L_t in bits/dim), rescaled-kl (T·L_t) or hybrid (simple + T/1000·L_t with the mean frozen; needs a learned variance).")
    var loss: String = "simple"
    @Option(help: "Min-SNR-γ weighting of the simple term with this γ (Hang et al. 2023 use 5); not for --mean-type xprev.")
    var minSnr: Double?

    /// Sets the objective's fields of `d`; a bad combination is one thrown error.
    func apply(to d: inout DiffusionConfiguration) throws {
        func choice<E: RawRepresentable & CaseIterable>(_ text: String, _ option: String) throws -> E where E.RawValue == String {
            guard let v = E(rawValue: text) else {
                throw DDPMError(.invalidValue, "\(option) '\(text)': expected one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return v
        }
        d.meanType = try choice(meanType, "--mean-type")
        d.varianceType = try choice(variance, "--variance")
        d.lossType = try choice(loss, "--loss")
        if let minSnr {
            guard minSnr > 0, minSnr.isFinite else { throw DDPMError(.invalidValue, "--min-snr \(minSnr): expected a positive number") }
            d.weighting = .minSNR(gamma: minSnr)
        }
        try d.validate()
    }
}

/// Diffusion options of `train`.
struct DiffusionOptions: ParsableArguments {
    @Option(help: "Diffusion steps T.") var timesteps: Int = 1000
    @Option(help: "β schedule: linear, quadratic, warmup10, warmup50, constant, jsd, cosine, sigmoid.") var betaSchedule: String = "linear"
    @Option(help: "First β (linear, quadratic, warmup, sigmoid).") var betaStart: Double = 1e-4
    @Option(help: "Last β (linear, quadratic, warmup, sigmoid), or the β of the constant schedule.") var betaEnd: Double = 0.02
    @Option(help: "The cosine schedule's offset s.") var cosineS: Double = 0.008
    @OptionGroup var objective: ObjectiveOptions
    @Option(help: "How training draws t: uniform, or loss-second-moment (importance sampling, improved-diffusion).")
    var timestepSampler: String = "uniform"

    func configuration() throws -> DiffusionConfiguration {
        let schedule = try BetaSchedule.named(betaSchedule, parameters: ["beta_start": betaStart, "beta_end": betaEnd, "cosine_s": cosineS])
        var d = DiffusionConfiguration(schedule: schedule, timesteps: timesteps)
        try objective.apply(to: &d)
        try d.validate()
        return d
    }

    /// The timestep sampler of the training options.
    func sampler() throws -> TimestepSampler {
        guard let s = TimestepSampler(rawValue: timestepSampler) else {
            throw DDPMError(.invalidValue, "--timestep-sampler '\(timestepSampler)': expected one of \(TimestepSampler.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return s
    }
}
