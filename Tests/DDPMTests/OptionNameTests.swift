// Issue 23, "one name per meaning": every option of every subcommand, read from ArgumentParser's own
// description of the command tree (`ddpm --experimental-dump-help`, the tool-info JSON), against a declared
// table of names and meanings; and the old spellings, which still work with one note line.

@testable import DDPMCommand
import Foundation
import TestSupport
import Testing
import DDPM

/// What a name means. `marker`: the help of every option with this name contains one of these phrases
/// (lower case), so a name reused with another meaning fails. `exclusive`: phrases that say this meaning;
/// any option whose help says one of them must carry this name (so a meaning cannot get a second name).
struct OptionMeaning {
    let meaning: String
    let marker: [String]
    var exclusive: [String] = []
}

/// The declared table: long option name → its one meaning (issue 23; `ddpm --help` states the scheme).
let optionMeanings: [String: OptionMeaning] = [
    "train-steps": .init(meaning: "optimisation steps", marker: ["optimisation steps"], exclusive: ["optimisation steps", "training steps"]),
    "sample-steps": .init(meaning: "sampling steps N of a reverse chain", marker: ["sampling steps"], exclusive: ["sampling steps", "ddim steps"]),
    "timesteps": .init(meaning: "diffusion steps T", marker: ["diffusion steps t"], exclusive: ["diffusion steps"]),
    "out": .init(meaning: "the file or folder the command writes", marker: ["to write", "write the results into", "write the figures into"]),
    "count": .init(meaning: "how many samples the command draws", marker: ["number of samples"], exclusive: ["number of samples"]),
    "images": .init(meaning: "how many images of its data the command uses", marker: ["number of images", "number of training images", "number of held-out"],
                    exclusive: ["number of images", "number of training images", "number of held-out"]),
    "bound-images": .init(meaning: "held-out images the bound averages (demo, figures)", marker: ["held-out images"]),
    "batch-size": .init(meaning: "images per batch", marker: ["images per"], exclusive: ["images per step", "images per batch", "batch size n"]),
    "ddim-steps": .init(meaning: "bench: also time DDIM sampling in N steps", marker: ["also time ddim sampling"]),
    "solver-steps": .init(meaning: "bench: also time DPM-Solver++(2M) and Heun sampling in N steps", marker: ["also time dpm-solver++(2m)"]),
    "batches": .init(meaning: "batch sizes to time", marker: ["batch sizes to time"]),
    "image-size": .init(meaning: "image side length", marker: ["image side"], exclusive: ["image side"]),
    "min-snr": .init(meaning: "the γ of min-SNR-γ", marker: ["min-snr-γ"], exclusive: ["min-snr γ", "γ of the min-snr"]),
    "seed": .init(meaning: "the seed of the command's random draws", marker: ["seed"]),
    "preset": .init(meaning: "a network preset", marker: ["golden", "preset"]),
    "checkpoint": .init(meaning: "a checkpoint to read", marker: ["checkpoint"]),
    "data": .init(meaning: "an HDF5 file of images to read", marker: ["hdf5"]),
    "dataset": .init(meaning: "the dataset inside --data", marker: ["dataset in"]),
    "ema": .init(meaning: "use the averaged weights", marker: ["exponential moving average"]),
    "ema-decay": .init(meaning: "decay of the weights' average", marker: ["decay of the exponential moving average"]),
    "lr": .init(meaning: "Adam learning rate", marker: ["learning rate"]),
    "force": .init(meaning: "replace existing outputs", marker: ["replace"]),
    "from": .init(meaning: "first latent's seed or image index", marker: ["first latent"]),
    "to": .init(meaning: "second latent's seed or image index", marker: ["second latent"]),
    "frames": .init(meaning: "frames of a strip", marker: ["frames"]),
    "rng": .init(meaning: "the random source of a seed", marker: ["random source"]),
    "digits": .init(meaning: "the demo's training data", marker: ["training data"]),
    "split": .init(meaning: "which images of the shipped digits", marker: ["which images"]),
    "checkpoint-every": .init(meaning: "checkpoint interval", marker: ["every this many steps"]),
    "resume": .init(meaning: "a checkpoint to continue", marker: ["continue from"]),
    "h5": .init(meaning: "also write the samples as HDF5", marker: ["also write the samples"]),
    "figure": .init(meaning: "an SVG of the bound per t", marker: ["svg"]),
    "loss-figure": .init(meaning: "train: the SVG of the training (and held-out) loss per step", marker: ["svg of the training loss"]),
    "no-loss-figure": .init(meaning: "train: write no loss figure", marker: ["no loss figure"]),
    "samples": .init(meaning: "evaluate: samples drawn for the sample statistics", marker: ["samples drawn"]),
    "forward-out": .init(meaning: "also write the forward-process figure", marker: ["forward-process figure"]),
    "report": .init(meaning: "a Markdown table of a check", marker: ["markdown"]),
    "runs": .init(meaning: "timed runs per measurement", marker: ["timed runs"]),
    "gemm-size": .init(meaning: "DGEMM matrix side", marker: ["dgemm"]),
    // The network (NetworkOptions).
    "channels": .init(meaning: "image channels", marker: ["image channels"]),
    "base-channels": .init(meaning: "U-Net base width", marker: ["base width"]),
    "channel-mults": .init(meaning: "channel multipliers", marker: ["channel multipliers"]),
    "num-res-blocks": .init(meaning: "residual blocks per level", marker: ["residual blocks"]),
    "attention-resolutions": .init(meaning: "attention resolutions", marker: ["resolutions with attention"]),
    "time-emb-dim": .init(meaning: "time-embedding width", marker: ["time-embedding"]),
    "dropout": .init(meaning: "dropout probability", marker: ["dropout"]),
    "output-activation": .init(meaning: "output activation", marker: ["output activation"]),
    // The diffusion and the objective.
    "beta-schedule": .init(meaning: "β schedule", marker: ["β schedule"]),
    "beta-start": .init(meaning: "first β", marker: ["first β"]),
    "beta-end": .init(meaning: "last β", marker: ["last β"]),
    "cosine-s": .init(meaning: "cosine offset s", marker: ["offset s"]),
    "mean-type": .init(meaning: "what the network predicts", marker: ["what the network predicts"]),
    "variance": .init(meaning: "reverse variance", marker: ["reverse variance"]),
    "loss": .init(meaning: "the loss", marker: ["loss:"]),
    "timestep-sampler": .init(meaning: "how training draws t", marker: ["how training draws t"]),
    // Samplers and solvers.
    "sampler": .init(meaning: "the reverse sampler", marker: ["reverse sampler"]),
    "spacing": .init(meaning: "which timesteps a respaced chain keeps", marker: ["which timesteps"]),
    "eta": .init(meaning: "DDIM / ancestral η", marker: ["η"]),
    "threshold": .init(meaning: "x̂_0 thresholding", marker: ["threshold", "x̂_0 processing"]),
    "epsilon": .init(meaning: "DDIM ε after clipping", marker: ["ddim ε"]),
    "set-alpha-to-one": .init(meaning: "diffusers' set_alpha_to_one", marker: ["set_alpha_to_one"]),
    "no-set-alpha-to-one": .init(meaning: "diffusers' set_alpha_to_one", marker: ["set_alpha_to_one"]),
    "sigmas": .init(meaning: "σ table of the solvers", marker: ["σ table"]),
    "rho": .init(meaning: "Karras ρ", marker: ["karras ρ"]),
    "sigma-to-t": .init(meaning: "σ → timestep", marker: ["σ → network timestep"]),
    "lower-order-final": .init(meaning: "diffusers' lower_order_final", marker: ["lower_order_final"]),
    "solver-order": .init(meaning: "UniPC order", marker: ["unipc order"]),
    "unipc-variant": .init(meaning: "UniPC B(h)", marker: ["unipc b(h)"]),
    "s-churn": .init(meaning: "Heun's S_churn", marker: ["s_churn"]),
    // Class conditioning and classifier-free guidance (issue 20).
    "classes": .init(meaning: "K of a class-conditional network", marker: ["class-conditional network"]),
    "label-dropout": .init(meaning: "the probability a training label becomes the null class", marker: ["null class"]),
    "class": .init(meaning: "the classes to draw", marker: ["class(es) to draw"]),
    "guidance": .init(meaning: "classifier-free guidance w, the paper's convention", marker: ["paper's convention"], exclusive: ["paper's convention"]),
    "guidance-scale": .init(meaning: "classifier-free guidance s = 1 + w, diffusers' convention", marker: ["s = 1 + w"], exclusive: ["cond_scale"]),
    "guidance-interval": .init(meaning: "the timesteps where guidance applies", marker: ["guidance in a limited interval"]),
    "guidance-rescale": .init(meaning: "Lin et al.'s guidance rescale φ", marker: ["guidance rescale"]),
    // Golden files.
    "activations": .init(meaning: "also store every module's output", marker: ["every module's output"]),
    "trajectories": .init(meaning: "also store sampling trajectories", marker: ["trajectories"]),
    "continuous-x0": .init(meaning: "x_0 uniform instead of on the grid", marker: ["x_0 uniform"]),
    "zero-terminal-snr": .init(meaning: "also store zero-terminal-SNR tables", marker: ["zero-terminal-snr"]),
    "tier": .init(meaning: "precision tier", marker: ["precision tier"]),
    "accumulation": .init(meaning: "accumulation precision", marker: ["accumulation precision"]),
    "rtol": .init(meaning: "relative tolerance", marker: ["relative tolerance"]),
    "atol": .init(meaning: "absolute tolerance", marker: ["absolute tolerance"]),
    // Classifier guidance (issue 20, Notes/20).
    "held-out": .init(meaning: "held-out images: train records their loss at checkpoints, train-classifier reports its accuracy on them (labelled)",
                      marker: ["held-out images", "report the accuracy"]),
    "classifier": .init(meaning: "a noisy classifier that guides sampling", marker: ["by this noisy classifier"]),
    "classifier-scale": .init(meaning: "the classifier scale s", marker: ["classifier scale"]),
    "classifier-form": .init(meaning: "Algorithm 1 (mean) or 2 (score) of classifier guidance", marker: ["algorithm 1"]),
    "classifier-classes": .init(meaning: "K, the classes of a noisy classifier", marker: ["the classes of the noisy classifier"]),
]

/// One option of one subcommand, as ArgumentParser describes it.
struct DeclaredOption {
    let command: String, name: String, help: String
}

/// Every long option name of every subcommand, from `DDPMTool`'s tool-info JSON (what
/// `ddpm --experimental-dump-help` prints), with its help text (abstract and discussion).
func declaredOptions() throws -> [DeclaredOption] {
    let json = try #require(try JSONSerialization.jsonObject(with: Data(DDPMTool._dumpHelp().utf8)) as? [String: Any])
    let root = try #require(json["command"] as? [String: Any])
    var out: [DeclaredOption] = []
    func walk(_ command: [String: Any], _ words: [String]) {
        for argument in command["arguments"] as? [[String: Any]] ?? [] {
            let help = [(argument["abstract"] as? String) ?? "", (argument["discussion"] as? String) ?? ""].joined(separator: " ")
            for name in argument["names"] as? [[String: Any]] ?? [] where name["kind"] as? String == "long" {
                let n = name["name"] as? String ?? ""
                if !["help", "version", "experimental-dump-help"].contains(n) { out.append(DeclaredOption(command: words.joined(separator: " "), name: n, help: help)) }
            }
        }
        for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, words + [sub["commandName"] as? String ?? "?"]) }
    }
    walk(root, [])
    return out
}

/// The rule on a list of options: the messages of every violation (empty when the names keep one meaning each).
func optionNameViolations(_ options: [DeclaredOption], table: [String: OptionMeaning] = optionMeanings) -> [String] {
    var problems: [String] = []
    for o in options {
        let help = o.help.lowercased()
        if let m = table[o.name] {
            if !m.marker.contains(where: { help.contains($0) }) {
                problems.append("\(o.command) --\(o.name): its help does not say '\(m.meaning)' (none of \(m.marker)); another meaning needs another name (help: \(o.help))")
            }
        } else {
            problems.append("\(o.command) --\(o.name): not in the table of option names (optionMeanings, Tests/DDPMTests/OptionNameTests.swift); give it its meaning there, or use the name that already has it (help: \(o.help))")
        }
        // Checked for names outside the table too: adding `--steps` to the table does not let it mean sampling steps.
        for (name, other) in table.sorted(by: { $0.key < $1.key }) where name != o.name {
            if let phrase = other.exclusive.first(where: { help.contains($0) }) {
                problems.append("\(o.command) --\(o.name): its help says '\(phrase)', whose name is --\(name) (help: \(o.help))")
            }
        }
    }
    let used = Set(options.map(\.name))
    for name in table.keys.sorted() where !used.contains(name) { problems.append("--\(name): in the table, used by no command; remove it") }
    return problems
}

@Suite("Option names: one meaning per name across subcommands; old spellings are aliases with a note")
struct OptionNameTests {
    @Test("every option of every subcommand has the one meaning the table gives its name")
    func oneMeaningPerName() throws {
        let options = try declaredOptions()
        #expect(Set(options.map(\.command)).count >= 15, "the tree has \(Set(options.map(\.command)).sorted())")
        let problems = optionNameViolations(options)
        #expect(problems.isEmpty, "\(problems.count) violation(s):\n\(problems.joined(separator: "\n"))")
        print("option names: \(Set(options.map(\.name)).count) names, \(options.count) uses in \(Set(options.map(\.command)).count) commands, \(problems.count) violations")
    }

    @Test("the rule fails on a name with two meanings and on a meaning with two names")
    func theRuleCanFail() throws {
        let planted = [
            DeclaredOption(command: "interpolate", name: "steps", help: "Sampling steps N of the DDIM chain."),
            DeclaredOption(command: "bench", name: "count", help: "Timed runs per measurement."),
            DeclaredOption(command: "sample", name: "ddim-steps", help: "Sampling steps N."),
        ]
        let problems = optionNameViolations(try declaredOptions() + planted)
        #expect(problems.contains { $0.hasPrefix("interpolate --steps: not in the table") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("interpolate --steps: its help says 'sampling steps', whose name is --sample-steps") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("bench --count: its help does not say 'how many samples") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("sample --ddim-steps: its help says 'sampling steps', whose name is --sample-steps") }, "\(problems)")
        #expect(problems.count == 5, "\(problems)")
        // A second meaning declared for a name still fails where its help says another name's meaning.
        var table = optionMeanings
        table["steps"] = OptionMeaning(meaning: "DDIM steps", marker: ["sampling steps"])
        #expect(optionNameViolations([planted[0]], table: table).contains { $0.contains("whose name is --sample-steps") })
    }

    @Test("each old spelling is gone from its commands and its new name is there; ddpm --help lists every one")
    func renamedOptionsAreDeclared() throws {
        let options = try declaredOptions()
        let help = try runDDPM(["--help"]).stdout.replacingOccurrences(of: "\n", with: " ")
        for r in renamedOptions {
            for c in r.commands {
                let names = Set(options.filter { $0.command == c }.map { "--" + $0.name })
                #expect(names.contains(r.new) && !names.contains(r.old), "\(c): \(r.old) → \(r.new); declared \(names.sorted())")
                #expect(help.contains(r.old) && help.contains(r.new), "ddpm --help does not name \(r.old) → \(r.new)")
            }
        }
        for p in renamedPresets {
            #expect(try Presets.network(p.old) == Presets.network(p.new), "\(p)")
            #expect(help.contains("\(p.old) (\(p.new))"), "ddpm --help does not list preset \(p.old) → \(p.new)")
        }
    }

    @Test("the rewriting: = and separate values, one note per old spelling, only in its commands, nothing after --")
    func rewriting() {
        #expect(subcommandWords([]) == "demo" && subcommandWords(["--steps", "3"]) == "demo")
        #expect(subcommandWords(["golden", "export", "--batch", "2"]) == "golden export" && subcommandWords(["train", "--out", "sample"]) == "train")
        let train = renamingOldSpellings(["--steps", "5", "--steps=6", "--preset", "tiny", "--", "--steps", "1"], command: "train")
        #expect(train.arguments == ["--train-steps", "5", "--train-steps=6", "--preset", "golden", "--", "--steps", "1"], "\(train.arguments)")
        #expect(train.notes == ["note: --steps is now --train-steps", "note: preset tiny is now golden"], "\(train.notes)")
        let sample = renamingOldSpellings(["--steps=-1", "--count", "3"], command: "sample")
        #expect(sample.arguments == ["--sample-steps=-1", "--count", "3"] && sample.notes == ["note: --steps is now --sample-steps"], "\(sample)")
        let evaluate = renamingOldSpellings(["--count", "3", "--preset=small"], command: "evaluate")
        #expect(evaluate.arguments == ["--images", "3", "--preset=demo"] && evaluate.notes.count == 2, "\(evaluate)")
        let unchanged = ["--sample-steps", "5", "--out", "x.png"]
        #expect(renamingOldSpellings(unchanged, command: "sample") == (unchanged, []))
    }

    @Test("an old spelling gives the new name's result, with one note line on stderr")
    func aliasesGiveIdenticalResults() throws {
        let (dir, checkpoint, _) = try microSamplingCheckpoint()
        /// Runs the old spelling writing under DIR/old and the new one under DIR/new (OUT in the arguments).
        func same(_ old: [String], _ new: [String], note: String, outputs: (String) -> [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
            func at(_ a: [String], _ p: String) -> [String] { a.map { $0.replacingOccurrences(of: "OUT", with: p) } }
            let a = try runDDPM(at(old, dir + "/old")), b = try runDDPM(at(new, dir + "/new"))
            #expect(a.status == 0 && b.status == 0, "\(a.stderr)\(b.stderr)", sourceLocation: sourceLocation)
            #expect(a.stderr.hasPrefix(note + "\n") && !b.stderr.contains("note: "), "old: \(a.stderr)\nnew: \(b.stderr)", sourceLocation: sourceLocation)
            #expect(a.stderr.components(separatedBy: "note: ").count == b.stderr.components(separatedBy: "note: ").count + 1, "\(a.stderr)", sourceLocation: sourceLocation)
            #expect(a.stdout.replacingOccurrences(of: dir + "/old", with: "") == b.stdout.replacingOccurrences(of: dir + "/new", with: ""), sourceLocation: sourceLocation)
            for (x, y) in zip(outputs(dir + "/old"), outputs(dir + "/new")) {
                #expect(fileBytes(x) != nil && fileBytes(x) == fileBytes(y), "\(x) vs \(y)", sourceLocation: sourceLocation)
            }
        }
        try FileManager.default.createDirectory(atPath: dir + "/old", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/new", withIntermediateDirectories: true)
        try writeImages(dir + "/data.h5")
        let d8 = digits8(2)
        try HDF5Writer.write(to: dir + "/data8.h5") { try $0.write(d8.data, shape: d8.shape, to: "/images") }
        let sample = ["sample", "--checkpoint", checkpoint, "--count", "2", "--sampler", "ddim", "--out", "OUT/s.png"]
        try same(sample + ["--steps", "4"], sample + ["--sample-steps", "4"], note: "note: --steps is now --sample-steps", outputs: { [$0 + "/s.png"] })
        let strip = ["interpolate", "--checkpoint", checkpoint, "--from", "1", "--to", "2", "--frames", "2", "--out", "OUT/i.png"]
        try same(strip + ["--steps", "4"], strip + ["--sample-steps", "4"], note: "note: --steps is now --sample-steps", outputs: { [$0 + "/i.png"] })
        let train = ["train", "--data", dir + "/data.h5", "--out", "OUT/c.h5"] + tinyRun
        try same(train + ["--steps", "1"], train + ["--train-steps", "1"], note: "note: --steps is now --train-steps", outputs: { [$0 + "/c.h5"] })
        try same(["params", "--preset", "tiny"], ["params", "--preset", "golden"], note: "note: preset tiny is now golden", outputs: { _ in [] })
        try same(["params", "--preset=small"], ["params", "--preset", "demo"], note: "note: preset small is now demo", outputs: { _ in [] })
        try same(["weights", "--out", "OUT/w.svg", "--timesteps", "10", "--gamma", "3"], ["weights", "--out", "OUT/w.svg", "--timesteps", "10", "--min-snr", "3"],
                 note: "note: --gamma is now --min-snr", outputs: { [$0 + "/w.svg"] })
        try same(["sampler-figures", "--out-dir", "OUT/sf"], ["sampler-figures", "--out", "OUT/sf"], note: "note: --out-dir is now --out", outputs: { [$0 + "/sf/zero-terminal-snr.svg"] })
        try same(["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data8.h5", "--count", "1"], ["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data8.h5", "--images", "1"],
                 note: "note: --count is now --images", outputs: { _ in [] })
    }

    @Test("an old spelling's errors name the new option: the note, then one error line")
    func aliasErrors() throws {
        let dir = scratchFolder()
        for (arguments, note, error) in [
            (["demo", "--out", dir + "/demo", "--steps", "0"], "note: --steps is now --train-steps", "error: --train-steps: expected a positive number, got 0"),
            (["golden", "export", "--out", dir + "/g.h5", "--batch", "0"], "note: --batch is now --batch-size", "error: --batch-size: expected a positive number, got 0"),
            (["data", "digits", "--out", dir + "/d.h5", "--size", "12"], "note: --size is now --image-size", "error: --image-size: expected 8 or 16, got 12"),
        ] {
            let r = try runDDPM(arguments)
            let lines = r.stderr.split(separator: "\n").map(String.init)
            #expect(r.status != 0 && lines.count == 2 && lines[0] == note && lines[1].hasPrefix(error), "\(arguments): \(r.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test("the figure commands need --out: without it, one error line and nothing written")
    func figureCommandsNeedOut() throws {
        let dir = scratchFolder()
        for command in [["schedules"], ["weights"], ["figures", "--checkpoint", dir + "/c.h5"], ["sampler-figures"], ["bound", "--checkpoint", dir + "/c.h5"]] {
            let p = Process()
            p.executableURL = try ddpmExecutable()
            p.arguments = command
            p.currentDirectoryURL = URL(fileURLWithPath: dir)
            let err = Pipe()
            p.standardError = err; p.standardOutput = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let lines = text.split(separator: "\n")
            #expect(p.terminationStatus != 0 && lines.count == 1 && lines[0].hasPrefix("error: ") && text.contains("--out"), "\(command): \(text)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty, "written into the current folder")
    }
}
