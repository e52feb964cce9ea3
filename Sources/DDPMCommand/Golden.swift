import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm golden export|check`: reference files for other backends (schema in Notes/09-golden-files.md).
struct Golden: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write or check golden files (schema ddpm-golden, version 3; versions 1 and 2 still check) for other backends.",
        subcommands: [Export.self, Check.self])

    struct Export: FileCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a golden file from our own initialised network, with every output.")
        @Option(help: "The golden file to write.") var out: String
        @Option(help: "Network preset: golden (the golden-file network), demo or default (`ddpm --help`).") var preset: String = "golden"
        @Option(parsing: .unconditional, help: "Seed of the weights and inputs.") var seed: Int = 0
        @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Images per batch: the batch size N of the inputs.") var batch: Int = 2
        @Flag(help: "Replace --out if it exists.") var force = false
        @Flag(help: "Also store every module's output and the loss's gradient with respect to it (/activations, /activation_gradients).")
        var activations = false
        @Flag(help: "Also store whole sampling trajectories (x_T, per-step noise, x_t and x̂_0 at every step) and the σ tables (/trajectories, /sigma_tables).")
        var trajectories = false
        @Flag(help: "Draw x_0 uniform on the data range (version 2's inputs) instead of on its 256-level grid k/255.")
        var continuousX0 = false
        @OptionGroup var diffusionOptions: DiffusionOptions
        @Option(help: "Also store Imagen's dynamic thresholding of x̂_0 and its per-sample s: dynamic[:p[:smax]] (p 0.995, no upper limit).")
        var threshold: String?
        @Flag(help: "Also store the zero-terminal-SNR tables of the schedule (Lin et al. 2024, Algorithm 1).")
        var zeroTerminalSnr = false
        @Option(name: .customLong("sample-steps"), help: "Sampling steps N of the sampler options' DDIM chain (default T); any of --sample-steps, --spacing, --eta, --epsilon, --set-alpha-to-one adds the options.")
        var steps: Int?
        @Option(help: "Which timesteps the N reverse steps keep, as for ddpm sample: ddim, sections:<c1,c2,…>, linspace, leading[:offset], trailing (default ddim).")
        var spacing: String?
        @Option(help: "DDIM η of the sampler options (default 0).")
        var eta: Double?
        @Option(help: "DDIM ε after x̂_0 is clipped: rederive (improved-diffusion, default) or original (diffusers' default).")
        var epsilon: String?
        @Flag(inversion: .prefixedNo, help: "diffusers spacings: final ᾱ = 1 (set_alpha_to_one, the default) or ᾱ_0.")
        var setAlphaToOne: Bool?
        @Option(parsing: .unconditional, help: "K: a class-conditional network (label_emb, K + 1 rows) with labels and classifier-free guided outputs and one guided DDIM step (cfg_*); needs --guidance or --guidance-scale.")
        var classes: Int?
        @OptionGroup(title: "Classifier-free guidance (with --classes)") var guidance: GuidanceOptions
        @Option(parsing: .unconditional, help: "K, the classes of the noisy classifier to also store (the network's encoder; classifier guidance, Notes/20) with its log-probabilities and input gradients at x_t (/classifier, /outputs/classifier_log_prob, /outputs/classifier_grad).")
        var classifierClasses: Int?

        func checkOptions() throws {
            try requireRange("--batch-size", batch, 1...Int.max)
            if let t = diffusionOptions.timesteps { try requireRange("--timesteps", t, 1...Int.max) }
            _ = try seedValue(seed)
            _ = try Presets.network(preset)
            _ = try extras()
            try guidance.check()
            if guidance.intervalText != nil { throw DDPMError(.invalidValue, "--guidance-interval: golden files store guidance at every t; drop it") }
            if let classes {
                try requireRange("--classes", classes, 1...(1 << 20))
                guard guidance.strength != nil else { throw DDPMError(.invalidValue, "--classes: a conditional golden file needs --guidance w or --guidance-scale s") }
            } else if guidance.strength != nil {
                throw DDPMError(.invalidValue, "\(guidance.flag): guided golden outputs need a class-conditional network (--classes K)")
            }
            if let classifierClasses { try requireRange("--classifier-classes", classifierClasses, 2...widthLimit) }
            if let o = try samplerOptions(), let n = o.steps, n > diffusionOptions.timesteps ?? 1000 {
                throw DDPMError(.invalidValue, "--sample-steps: expected between 1 and --timesteps \(diffusionOptions.timesteps ?? 1000), got \(n)")
            }
        }

        /// The sampler options, or nil when none of them is given; recorded in the file with the outputs they add.
        func samplerOptions() throws -> GoldenSamplerOptions? {
            guard steps != nil || spacing != nil || eta != nil || epsilon != nil || setAlphaToOne != nil else { return nil }
            if let steps { try requireRange("--sample-steps", steps, 1...Int.max) }
            if let eta { guard eta >= 0, eta.isFinite else { throw DDPMError(.invalidValue, "--eta: expected a finite value ≥ 0, got \(eta)") } }
            if spacing != nil, steps == nil { throw DDPMError(.invalidConfiguration, "--spacing needs --sample-steps N: the full chain keeps every timestep") }
            let s = try spacing.map { try SamplerOptions.spacing($0, steps: steps ?? 1) }
            var diffusers = false
            if case .diffusersLinspace? = s { diffusers = true } else if case .diffusersLeading? = s { diffusers = true } else if case .diffusersTrailing? = s { diffusers = true }
            if setAlphaToOne != nil, !diffusers {
                throw DDPMError(.invalidConfiguration, "--set-alpha-to-one/--no-set-alpha-to-one applies with a diffusers spacing (linspace, leading, trailing)")
            }
            let red = try epsilon.map { try ObjectiveOptions.choice($0, "--epsilon") as NoiseRederivation } ?? .rederive
            return GoldenSamplerOptions(steps: steps, spacing: s, eta: eta ?? 0, rederivation: red, setAlphaToOne: setAlphaToOne ?? true)
        }

        /// The guided part (with --classes).
        var conditional: GoldenConditional? { guidance.strength.map { GoldenConditional(strength: $0, rescale: guidance.rescale) } }

        /// The configuration; build it only after ``footprint()`` sized T (the schedule allocates T values).
        func configuration() throws -> ModelConfiguration {
            var network = try Presets.network(preset)
            network.classes = classes
            return ModelConfiguration(network: network, diffusion: try diffusionOptions.configuration())
        }

        func extras() throws -> GoldenExtras {
            var extras = GoldenExtras(zeroTerminalSNR: zeroTerminalSnr, timestepSampler: try diffusionOptions.sampler())
            if let threshold {
                guard case let .dynamic(p, s) = try SamplerOptions.thresholding(threshold) else {
                    throw DDPMError(.invalidValue, "--threshold '\(threshold)': expected dynamic[:p[:smax]] (clipping is the configuration's)")
                }
                extras.dynamicThreshold = (p, s)
            }
            return extras
        }

        func files() throws -> OutputPlan {
            var plan = OutputPlan()
            plan.output("--out", out, mayReplace: force)
            return plan
        }

        func footprint() throws -> Footprint {
            var f = Footprint()
            let t = diffusionOptions.timesteps ?? 1000
            f.diffusion(timesteps: t, "--timesteps \(t) diffusion tables")
            try f.check()   // before building the schedule, which allocates T values
            let config = try configuration()
            // The inputs, every output and the gradients (and with --activations every module's output): a training step's worth.
            f.network(config.network, batch: batch, training: true, network: "the network", images: "--batch-size \(batch) inputs (outputs and gradients)")
            return f
        }

        func work() throws {
            let config = try configuration(), diffusion = config.diffusion, extras = try extras(), options = try samplerOptions()
            try naming(["sampling steps": "--sample-steps"]) {
                try GoldenFile.export(to: out, config: config, seed: try seedValue(seed), batch: batch, activations: activations, x0OnGrid: !continuousX0,
                                      extras: extras, trajectories: trajectories, samplerOptions: options, conditional: conditional,
                                      classifierClasses: classifierClasses)
            }
            announce("wrote \(out): preset \(preset), seed \(seed), batch \(batch), mean type \(diffusion.meanType.rawValue), variance \(diffusion.varianceType.rawValue), loss \(diffusion.lossType.rawValue), weighting \(diffusion.weighting.name), schedule \(diffusion.schedule.name), T \(diffusion.timesteps)"
                  + (extras.names.isEmpty ? "" : ", with \(extras.names.joined(separator: ", "))") + ", the outputs and the gradient of every parameter" + (activations ? ", every module's output and output gradient" : "") + (trajectories ? ", whole trajectories and σ tables" : "")
                  + (conditional.map { ", \(classes!) classes with guided outputs (\($0.strength.convention) \($0.strength.given), rescale \($0.rescale))" } ?? "")
                  + (classifierClasses.map { ", a noisy classifier of \($0) classes with its log-probabilities and input gradients" } ?? "")
                  + (options.map { ", the sampler options (\($0.choice(timesteps: diffusion.timesteps))) with sampler_ddim_x_prev and the trajectory ddim_options" } ?? ""))
        }
    }

    struct Check: FileCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute every output of a golden file and compare; exit 0 only if all pass.",
            discussion: "Tiers float32, bfloat16 and float16 judge a backend computing in that precision: normwise and elementwise bounds from a probabilistic rounding model (Notes/09-golden-files.md).")
        @Argument(help: "The golden file to check.") var file: String
        @Option(help: "Precision tier: float64 (elementwise rtol/atol), float32, bfloat16 or float16.") var tier: String = "float64"
        @Option(help: "Accumulation precision of the tier's reductions (default float32 for float32/bfloat16/float16).") var accumulation: String?
        @Option(help: "Relative tolerance of the float64 tier (default 1e-10).") var rtol: Double?
        @Option(help: "Absolute tolerance of the float64 tier (default 1e-12).") var atol: Double?
        @Option(help: "Write the whole table (every output, every layer's gradients) as Markdown to this file; with trajectories, also the figure of their error growth beside it (NAME-trajectories.svg).") var report: String?
        @Flag(help: "Replace an existing --report file.") var force = false

        /// The comparison rule the options describe; every option that cannot apply to the tier is refused.
        func rule() throws -> GoldenCheckRule {
            guard let storage = Precision(rawValue: tier) else {
                throw DDPMError(.unknownName, "--tier '\(tier)': expected one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if storage == .float64 {
                guard accumulation == nil else { throw DDPMError(.invalidValue, "--accumulation applies to the float32, bfloat16 and float16 tiers, not float64") }
                let r = rtol ?? 1e-10, a = atol ?? 1e-12
                guard r >= 0, a >= 0, r.isFinite, a.isFinite, r > 0 || a > 0 else {
                    throw DDPMError(.invalidValue, "--rtol \(r) / --atol \(a): expected finite non-negative values, not both 0")
                }
                return .elementwise(Tolerance(rtol: r, atol: a))
            }
            guard rtol == nil, atol == nil else { throw DDPMError(.invalidValue, "--rtol/--atol apply to the float64 tier; --tier \(tier) derives its own bounds") }
            var acc: Precision? = nil
            if let accumulation {
                guard let p = Precision(rawValue: accumulation) else {
                    throw DDPMError(.unknownName, "--accumulation '\(accumulation)': expected one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                acc = p
            }
            return .tier(GoldenTier(storage: storage, accumulation: acc))
        }

        func checkOptions() throws { _ = try rule() }

        func files() throws -> OutputPlan {
            var plan = OutputPlan()
            plan.input("FILE", file)
            plan.output("--report", report, mayReplace: force)
            if (try? GoldenTrajectories.present(path: file)) == true { plan.output("--report", figurePath, mayReplace: force) }
            return plan
        }

        /// The trajectories' figure beside the report: `R.md` → `R-trajectories.svg`.
        var figurePath: String? {
            report.map { ($0.hasSuffix(".md") ? String($0.dropLast(3)) : $0) + "-trajectories.svg" }
        }

        /// One log-scale chart per trajectory: the state and x̂_0 errors per step against the state bound of each tier.
        static func trajectoryFigure(_ c: GoldenTrajectories.Check) -> String {
            let colours: [Precision: String] = [.float32: "#2ca02c", .bfloat16: "#d62728", .float16: "#9467bd"]
            let charts = c.figureSeries.map { t in
                LogChart(title: "\(t.name): ‖file − ours‖/‖ours‖ per step" + (t.bounds.isEmpty ? " (no measured amplification: no tier bound)" : ""), xLabel: "step",
                         series: [("state x", "#1f77b4", t.stateErrors), ("x̂_0", "#ff7f0e", t.predictedStartErrors)]
                             + t.bounds.map { ("\($0.tier.rawValue) bound τ·A_k", colours[$0.tier] ?? "#888", $0.values) }).svg()
            }
            let h = 390.0
            var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"\(h * Double(max(charts.count, 1)))\" font-family=\"sans-serif\">\n"
            for (i, chart) in charts.enumerated() { s += "<g transform=\"translate(0,\(h * Double(i)))\">\n" + chart + "</g>\n" }
            return s + "</svg>\n"
        }

        func footprint() throws -> Footprint {
            var f = Footprint()
            let config = try checkpointConfiguration(file, option: "FILE", format: .golden, into: &f)
            let n = (try? HDF5File(path: file).shape(of: "/inputs/t").first) ?? 1
            f.network(config.network, batch: n ?? 1, training: true, network: "the network of \(file)", images: "its batch of \(n ?? 1) inputs (outputs and gradients)")
            return f
        }

        /// The check's failure, thrown by ``verdict()`` once the report is written (set by ``work()``).
        nonisolated(unsafe) static var failure: DDPMError?

        func verdict() throws {
            defer { Self.failure = nil }
            if let f = Self.failure { throw f }
        }

        func work() throws {
            Self.failure = nil
            do { try judge() } catch let e as DDPMError where e.kind == .checkFailed { Self.failure = e }
        }

        /// Recomputes, prints and writes the report; a failed check throws `.checkFailed` after writing it.
        func judge() throws {
            let rule = try rule(), storage = Precision(rawValue: tier)
            let result = try GoldenFile.check(path: file, rule: rule)
            for r in result.failedRows { print(result.failureLine(r)) }
            print(result.summaryLine)
            for line in result.activations?.lines ?? [] { print(line) }
            if let line = result.activationTierLine { print(line) }
            // Trajectories: at the chosen tier, each step against τ_net·A_k (Notes/09, "Tiers for trajectories").
            let chains = try GoldenTrajectories.present(path: file) ? try GoldenTrajectories.check(path: file, rule: rule) : nil
            for line in chains?.lines ?? [] { print(line) }
            if let line = chains?.tierLine { print(line) }
            if let report {
                let figure = chains != nil ? figurePath : nil
                let markdown = result.markdown() + (result.activations?.markdown() ?? "") + (result.activationTierLine.map { "\n" + $0 + "\n" } ?? "")
                    + (chains?.markdown(figure: figure.map { URL(fileURLWithPath: $0).lastPathComponent }) ?? "")
                try writeText(markdown, to: report)
                if let chains, let figure { try writeText(Self.trajectoryFigure(chains), to: figure) }
                announce("wrote \(report)" + (figure.map { " and \($0)" } ?? ""))
            }
            if result.rows.isEmpty { throw DDPMError(.checkFailed, "\(file): '/outputs' holds no outputs; a check that compares nothing fails") }
            if result.passed, let a = result.activations, !a.passed {
                throw DDPMError(.checkFailed, "\(file): every output passes but module outputs differ beyond the \(tier) tier, first \(a.firstFailingOutput?.name ?? a.firstFailingGradientBackwards?.name ?? "?")")
            }
            if let chains, !chains.decided { print("trajectories: none has a measured amplification for the \(tier) tier; they are reported and do not decide the exit status") }
            if let chains, chains.decided, !chains.passed {
                let what = chains.trajectories.isEmpty ? "'/trajectories' holds no trajectory"
                    : chains.judged.isEmpty ? "no trajectory has a measured amplification for the \(tier) tier"
                    : chains.judged.filter { !$0.passed }.map { "\($0.name) from step \($0.firstFailingStep.map(String.init) ?? "–")" }.joined(separator: ", ")
                throw DDPMError(.checkFailed, "\(file): trajectories differ beyond the \(storage == .float64 ? "float64 tolerance" : "\(tier) tier"): \(what)")
            }
            if !result.passed {
                throw DDPMError(.checkFailed, "\(result.failedRows.count) output(s) of \(file) differ beyond the \(tier) tier: \(result.failedRows.prefix(3).map(\.name).joined(separator: ", "))\(result.failedRows.count > 3 ? ", …" : "")")
            }
        }
    }
}
