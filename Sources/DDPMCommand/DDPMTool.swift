// The `ddpm` command: wires the library's parts together; no mathematics lives here.
import ArgumentParser
import DDPM
import Foundation

@main
struct DDPMTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "A float64 reference implementation of Denoising Diffusion Probabilistic Models (Ho et al., 2020).",
        discussion: """
        With no subcommand, runs `ddpm demo`.

        \(outputRules)

        \(optionNames)

        Ctrl-C during training saves a checkpoint at the current step and exits with status 130.
        """,
        version: "0.1.0",
        subcommands: [Demo.self, Train.self, TrainClassifier.self, Sample.self, Evaluate.self, DataCommand.self, Interpolate.self, Golden.self, Params.self, Bench.self, SchedulesFigure.self,
                      Figures.self, WeightsFigure.self, BoundFigure.self, SamplerFigures.self],
        defaultSubcommand: Demo.self
    )

    /// Every failure is one line on stderr starting with `error:`, and a non-zero exit status.
    static func main() {
        Machine.prepare()
        do {
            let given = Array(CommandLine.arguments.dropFirst())
            let renamed = renamingOldSpellings(given, command: subcommandWords(given))
            for line in renamed.notes { note(line) }
            var command = try parseAsRoot(joiningNegativeNumbers(renamed.arguments))
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { print(fullMessage(for: error)); Foundation.exit(0) }
            let message: String
            switch error {
            case let e as UserFacingError: message = e.description
            default: message = self.message(for: error)
            }
            let line = message.split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(("error: " + line.replacingOccurrences(of: "Error: ", with: "") + "\n").data(using: .utf8)!)
            // Stopped by a signal after saving: the shell's convention, 128 + the signal's number.
            if let e = error as? DDPMError, e.kind == .interrupted, let signal = InterruptWatch.lastSignal { Foundation.exit(128 + signal) }
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }
}

/// `--steps -1` as `--steps=-1`: a negative number written as a separate word after an option is that option's
/// value (the parser would otherwise take it for an option and report a missing value), so that every
/// option's range check sees it. Only words that read as numbers (`-1`, `-2.5`, `-1e9`, `-.5`, `-inf`) are joined.
func joiningNegativeNumbers(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < arguments.count {
        let a = arguments[i]
        if a == "--" { out += arguments[i...]; break }
        if a.hasPrefix("--"), !a.contains("="), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
            out.append(a + "=" + arguments[i + 1]); i += 2
        } else {
            out.append(a); i += 1
        }
    }
    return out
}

func isNegativeNumber(_ word: String) -> Bool {
    guard word.hasPrefix("-"), word.count > 1 else { return false }
    let rest = word.dropFirst()
    return Double(rest) != nil && !rest.hasPrefix("-") && !rest.hasPrefix("+")
}

/// A seed option as the generator's UInt64, refusing negative values with a message that names the option.
func seedValue(_ seed: Int, option: String = "--seed") throws -> UInt64 {
    guard seed >= 0 else { throw DDPMError(.invalidValue, "\(option): expected a non-negative integer, got \(seed)") }
    return UInt64(seed)
}
