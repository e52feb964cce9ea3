import ArgumentParser
import DDPM
import Foundation

/// `ddpm golden export|check`: reference files for other backends (schema in Notes/09-golden-files.md).
struct Golden: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write or check golden files (schema ddpm-golden, version 2; version 1 still checks) for other backends.",
        subcommands: [Export.self, Check.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a golden file from our own initialised network, with every output.")
        @Option(help: "The golden file to write.") var out: String
        @Option(help: "Network preset: tiny or default.") var preset: String = "tiny"
        @Option(help: "Seed of the weights and inputs.") var seed: Int = 0
        @Option(help: "Batch size N of the inputs.") var batch: Int = 2
        @OptionGroup var objective: ObjectiveOptions

        func run() throws {
            guard batch > 0 else { throw DDPMError(.invalidValue, "--batch: expected a positive number, got \(batch)") }
            var diffusion = DiffusionConfiguration()
            try objective.apply(to: &diffusion)
            let config = ModelConfiguration(network: try Presets.network(preset), diffusion: diffusion)
            try GoldenFile.export(to: out, config: config, seed: seedValue(seed), batch: batch)
            print("wrote \(out): preset \(preset), seed \(seed), batch \(batch), mean type \(diffusion.meanType.rawValue), variance \(diffusion.varianceType.rawValue), loss \(diffusion.lossType.rawValue), weighting \(diffusion.weighting.name), \(GoldenFile.outputNames.count) outputs and the gradient of every parameter")
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recompute every output of a golden file and compare; exit 0 only if all pass.")
        @Argument(help: "The golden file to check.") var file: String
        @Option(help: "Relative tolerance.") var rtol: Double = 1e-10
        @Option(help: "Absolute tolerance.") var atol: Double = 1e-12

        func run() throws {
            guard rtol >= 0, atol >= 0, rtol > 0 || atol > 0 else { throw DDPMError(.invalidValue, "--rtol \(rtol) / --atol \(atol): expected non-negative values, not both 0") }
            let rows = try GoldenFile.check(path: file, tolerance: Tolerance(rtol: rtol, atol: atol))
            let width = max(12, rows.map(\.name.count).max() ?? 0)
            print("output".padding(toLength: width, withPad: " ", startingAt: 0) + "  shape              max abs error  max rel error  result")
            for r in rows {
                let shape = "\(r.shape)".padding(toLength: 18, withPad: " ", startingAt: 0)
                print(r.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + shape
                      + String(format: " %13.3e  %13.3e  ", r.comparison.maxAbsoluteError, r.comparison.maxRelativeError)
                      + (r.comparison.passed ? "pass" : "FAIL"))
            }
            let failed = rows.filter { !$0.comparison.passed }
            print("\(rows.count - failed.count) passed, \(failed.count) failed (rtol \(rtol), atol \(atol))")
            if !failed.isEmpty {
                throw DDPMError(.checkFailed, "\(failed.count) output(s) differ beyond tolerance: " + failed.map { "\($0.comparison)" }.joined(separator: "; "))
            }
        }
    }
}
