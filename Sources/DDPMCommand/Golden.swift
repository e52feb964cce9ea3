import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm golden export|check`: reference files for other backends (schema in Notes/09-golden-files.md).
struct Golden: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write or check golden files (schema ddpm-golden, version 2; version 1 still checks) for other backends.",
        subcommands: [Export.self, Check.self])

    struct Export: FileCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a golden file from our own initialised network, with every output.")
        @Option(help: "The golden file to write.") var out: String
        @Option(help: "Network preset: tiny, small or default.") var preset: String = "tiny"
        @Option(parsing: .unconditional, help: "Seed of the weights and inputs.") var seed: Int = 0
        @Option(parsing: .unconditional, help: "Batch size N of the inputs.") var batch: Int = 2
        @Flag(help: "Replace --out if it exists.") var force = false
        @OptionGroup var objective: ObjectiveOptions

        func checkOptions() throws {
            try requireRange("--batch", batch, 1...Int.max)
            _ = try seedValue(seed)
            _ = try Presets.network(preset)
            try configuration()
        }

        @discardableResult
        func configuration() throws -> ModelConfiguration {
            var diffusion = DiffusionConfiguration()
            try objective.apply(to: &diffusion)
            return ModelConfiguration(network: try Presets.network(preset), diffusion: diffusion)
        }

        func files() throws -> OutputPlan {
            var plan = OutputPlan()
            plan.output("--out", out, mayReplace: force)
            return plan
        }

        func footprint() throws -> Footprint {
            var f = Footprint()
            let config = try configuration()
            f.diffusion(timesteps: config.timesteps, "T = \(config.timesteps) diffusion tables")
            // The inputs, every output and the gradients: a training step's worth, kept a few times over.
            f.network(config.network, batch: batch, training: true, network: "the network", images: "--batch \(batch) inputs (outputs and gradients)")
            return f
        }

        func work() throws {
            let config = try configuration(), d = config.diffusion
            try GoldenFile.export(to: out, config: config, seed: try seedValue(seed), batch: batch)
            announce("wrote \(out): preset \(preset), seed \(seed), batch \(batch), mean type \(d.meanType.rawValue), variance \(d.varianceType.rawValue), loss \(d.lossType.rawValue), weighting \(d.weighting.name), \(GoldenFile.outputNames.count) outputs and the gradient of every parameter")
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
        @Option(help: "Write the whole table (every output, every layer's gradients) as Markdown to this file.") var report: String?
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
            return plan
        }

        func footprint() throws -> Footprint {
            var f = Footprint()
            let config = try checkpointConfiguration(file, option: "FILE", format: .golden, into: &f)
            let n = (try? HDF5File(path: file).shape(of: "/inputs/t").first) ?? 1
            f.network(config.network, batch: n ?? 1, training: true, network: "the network of \(file)", images: "its batch of \(n ?? 1) inputs (outputs and gradients)")
            return f
        }

        func work() throws {
            let rule = try rule()
            let result = try GoldenFile.check(path: file, rule: rule)
            for r in result.failedRows { print(result.failureLine(r)) }
            print(result.summaryLine)
            if let report {
                let markdown = result.markdown()
                try writeText(markdown, to: report)
                announce("wrote \(report)")
            }
            if result.rows.isEmpty { throw DDPMError(.checkFailed, "\(file): '/outputs' holds no outputs; a check that compares nothing fails") }
            if !result.passed {
                throw DDPMError(.checkFailed, "\(result.failedRows.count) output(s) of \(file) differ beyond the \(tier) tier: \(result.failedRows.prefix(3).map(\.name).joined(separator: ", "))\(result.failedRows.count > 3 ? ", …" : "")")
            }
        }
    }
}
