import ArgumentParser
import DDPM
import Foundation

/// The naming scheme of the options, stated once in `ddpm --help` (Tests/DDPMTests/OptionNameTests checks
/// that every subcommand keeps it: one meaning per name).
let optionNames = """
Names: an option means the same in every command that has it. --train-steps: optimisation steps (train, \
demo). --sample-steps: reverse (sampling) steps N of a chain (sample, interpolate; bench's timing \
switches name the sampler they time, --ddim-steps). --timesteps: the \
diffusion's T. --out: the file or folder a command writes (required except by demo, which writes demo-out, and \
evaluate, whose report is optional; no command writes into Notes/ unless told to). --count: how many samples a command draws. --images: how many \
images of its data a command uses. --bound-images: how many held-out images the bound of demo and figures \
averages. --batch-size: images per batch. --image-size: the image side. --min-snr: the γ of min-SNR-γ. \
--seed: the seed of the command's random draws (its help says which). --preset: golden (the golden-file \
and test network, 1×16×16, 500,289 parameters), demo (the demo's network, 1×16×16, 535,265) or default (the \
seed's, 3×32×32, 20,912,259); train, params and bench start from default, golden export from golden.

Old spellings still work and print one note line on stderr: --steps (now --train-steps in train and demo, \
--sample-steps in sample and interpolate), sampler-figures --out-dir \
(--out), weights --gamma (--min-snr), golden export --batch (--batch-size), data digits --size \
(--image-size), evaluate --count (--images), and the presets tiny (golden) and small (demo).
"""

/// An option renamed in some subcommands: `old` given to one of `commands` (their words, "golden export")
/// is read as `new`, with one note on stderr.
struct RenamedOption: Sendable {
    let commands: [String], old: String, new: String
}

/// Every renamed option (the old spellings `ddpm --help` lists).
let renamedOptions: [RenamedOption] = [
    RenamedOption(commands: ["train", "demo"], old: "--steps", new: "--train-steps"),
    RenamedOption(commands: ["sample", "interpolate"], old: "--steps", new: "--sample-steps"),
    RenamedOption(commands: ["sampler-figures"], old: "--out-dir", new: "--out"),
    RenamedOption(commands: ["weights"], old: "--gamma", new: "--min-snr"),
    RenamedOption(commands: ["golden export"], old: "--batch", new: "--batch-size"),
    RenamedOption(commands: ["data digits"], old: "--size", new: "--image-size"),
    RenamedOption(commands: ["evaluate"], old: "--count", new: "--images"),
]

/// Renamed presets (old name → new name) for every `--preset`: the library's table (`Presets.network` reads both).
let renamedPresets: [(old: String, new: String)] = Presets.renamed.sorted { $0.key > $1.key }.map { (old: $0.key, new: $0.value) }

/// The subcommand words a command line starts with ("golden export"), by the command tree of `root`
/// (with no subcommand word, the default subcommand's name).
func subcommandWords(_ arguments: [String], root: ParsableCommand.Type = DDPMTool.self) -> String {
    var node = root, words: [String] = []
    for a in arguments {
        guard let next = node.configuration.subcommands.first(where: { $0._commandName == a }) else { break }
        words.append(a); node = next
    }
    if words.isEmpty, let d = root.configuration.defaultSubcommand { return d._commandName }
    return words.joined(separator: " ")
}

/// The command line with old spellings replaced by the new names (`--steps 5` and `--steps=5`; a preset
/// value after `--preset`), and one note per old spelling used ("note: --steps is now --train-steps"),
/// in the order they first appear. Words after `--` are left alone.
func renamingOldSpellings(_ arguments: [String], command: String) -> (arguments: [String], notes: [String]) {
    var out: [String] = [], notes: [String] = []
    func noteOnce(_ n: String) { if !notes.contains(n) { notes.append(n) } }
    let renames = renamedOptions.filter { $0.commands.contains(command) }
    var i = 0
    while i < arguments.count {
        var a = arguments[i]
        if a == "--" { out += arguments[i...]; break }
        let (name, value) = a.firstIndex(of: "=").map { (String(a[..<$0]), String(a[$0...])) } ?? (a, "")
        if let r = renames.first(where: { $0.old == name }) {
            a = r.new + value
            noteOnce("note: \(r.old) is now \(r.new)")
        }
        if name == "--preset" {
            if value.isEmpty, i + 1 < arguments.count, let p = renamedPresets.first(where: { $0.old == arguments[i + 1] }) {
                out += [a, p.new]; noteOnce("note: preset \(p.old) is now \(p.new)"); i += 2; continue
            }
            if let p = renamedPresets.first(where: { "=" + $0.old == value }) {
                a = "--preset=" + p.new; noteOnce("note: preset \(p.old) is now \(p.new)")
            }
        }
        out.append(a); i += 1
    }
    return (out, notes)
}
