// Issue 22, "One output rule for every command": every subcommand's declared outputs and inputs run against
// the same cases, every size option with a huge value under a memory limit, two writers of one output, and
// one named test per numbered defect of the issue. Each case runs the built `ddpm` executable.

import ArgumentParser
@testable import DDPMCommand
import FileOutput
import Foundation
import TestSupport
import Testing
import DDPM

/// The inputs the quick runs share, made once: 8 training images, a tiny checkpoint (T = 10), a golden file.
/// Safe to share because every case checks that its inputs are unchanged.
final class SharedInputs: @unchecked Sendable {
    static let shared = SharedInputs()
    let dir = scratchFolder("ddpm-output-rule-inputs")
    var data: String { dir + "/data.h5" }
    var checkpoint: String { dir + "/c.h5" }
    var golden: String { dir + "/g.h5" }
    /// The same 8 images with labels 0, 1, 0, 1, … (for train-classifier).
    var labelled: String { dir + "/labelled.h5" }
    private let lock = NSLock()
    private var made = false

    func make() throws {
        lock.lock(); defer { lock.unlock() }
        guard !made else { return }
        _ = try makeCheckpoint(dir)
        try writeLabelledImages(labelled)
        let g = try runDDPM(["golden", "export", "--out", golden])
        #expect(g.status == 0, "\(g.stderr)")
        made = true
    }
}

/// One quick, valid run of every subcommand (tiny settings), by its name. A subcommand missing here fails
/// ``OutputRuleTests/everySubcommandHasAQuickRunAndGoesThroughThePlan``, so a new command cannot skip the cases.
func quickRun(_ name: String, out dir: String, inputs i: SharedInputs) -> [String]? {
    switch name {
    case "demo": return ["demo", "--train-steps", "1", "--images", "4", "--count", "1", "--timesteps", "10", "--batch-size", "2", "--bound-images", "1", "--out", dir + "/demo"]
    case "train": return ["train", "--data", i.data, "--held-out", i.data, "--out", dir + "/t.h5", "--loss-figure", dir + "/t.svg", "--train-steps", "1"] + tinyRun
    case "train-classifier": return ["train-classifier", "--data", i.labelled, "--held-out", i.labelled, "--out", dir + "/cls.h5", "--train-steps", "1"] + tinyClassifier
    case "sample": return ["sample", "--checkpoint", i.checkpoint, "--count", "1", "--out", dir + "/s.png", "--h5", dir + "/s.h5"]
    case "interpolate": return ["interpolate", "--checkpoint", i.checkpoint, "--data", i.data, "--from", "0", "--to", "1", "--frames", "2", "--sample-steps", "2", "--out", dir + "/i.png"]
    case "golden export": return ["golden", "export", "--out", dir + "/g.h5"]
    case "golden check": return ["golden", "check", i.golden, "--report", dir + "/r.md"]
    case "params": return ["params", "--preset", "golden"]
    case "bench": return ["bench", "--preset", "golden", "--batches", "1", "--runs", "1", "--gemm-size", "8"]
    case "schedules": return ["schedules", "--out", dir + "/sch.svg", "--timesteps", "10"]
    case "figures": return ["figures", "--checkpoint", i.checkpoint, "--out", dir + "/figs", "--count", "2", "--bound-images", "1"]
    case "weights": return ["weights", "--out", dir + "/w.svg", "--timesteps", "10"]
    case "bound": return ["bound", "--checkpoint", i.checkpoint, "--out", dir + "/b.svg", "--images", "1"]
    case "data digits": return ["data", "digits", "--split", "test", "--image-size", "8", "--out", dir + "/digits.h5"]
    case "evaluate": return ["evaluate", "--checkpoint", i.checkpoint, "--data", i.data, "--images", "1", "--samples", "1", "--out", dir + "/e.md", "--figure", dir + "/e.svg"]
    case "sampler-figures": return ["sampler-figures", "--checkpoint", i.checkpoint, "--out", dir + "/sf", "--count", "1"]
    default: return nil
    }
}

/// Every leaf subcommand of `ddpm`, by its words ("golden export").
func leafCommands(_ type: ParsableCommand.Type = DDPMTool.self, prefix: [String] = []) -> [(name: String, type: ParsableCommand.Type)] {
    let subs = type.configuration.subcommands
    if subs.isEmpty { return [(prefix.joined(separator: " "), type)] }
    return subs.flatMap { leafCommands($0, prefix: prefix + [$0._commandName]) }
}

/// The plan a command line declares, from the command's own declaration.
func declaredPlan(_ arguments: [String]) throws -> OutputPlan {
    let command = try DDPMTool.parseAsRoot(arguments)
    guard let c = command as? any FileCommand else { throw DDPMError(.invalidConfiguration, "\(arguments[0]) is not a FileCommand") }
    return try c.files()
}

/// Every regular file under `dir` (recursively) with its bytes, and symbolic links with their targets.
func snapshot(_ dir: String) -> [String: Data] {
    var out: [String: Data] = [:]
    guard let e = FileManager.default.enumerator(atPath: dir) else { return out }
    while let name = e.nextObject() as? String {
        let path = dir + "/" + name
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) { out[name] = Data(("link → " + target).utf8); continue }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue { out[name] = fileBytes(path) ?? Data() }
        else { out[name + "/"] = Data() }
    }
    return out
}

/// Temporaries of the package anywhere under `dir`.
func temporariesBelow(_ dir: String) -> [String] {
    guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
    return e.compactMap { $0 as? String }.filter { OutputFile.temporaryOwner(URL(fileURLWithPath: $0).lastPathComponent) != nil }
}

/// Replaces the value of `option` in an argument list.
func replacing(_ option: String, with value: String, in arguments: [String]) -> [String] {
    var a = arguments
    if let i = a.firstIndex(of: option) { a[i + 1] = value }
    return a
}

/// Replaces the argument `old` (an input's path, which may be positional) with `new`.
func replacingValue(_ old: String, with new: String, in arguments: [String]) -> [String] { arguments.map { $0 == old ? new : $0 } }

/// A tmpfs of 64 KiB mounted at `path` (read-only, or filled up), or the reason it cannot be.
func mountSmallFileSystem(at path: String, readOnly: Bool) -> String? {
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/mount")
    p.arguments = ["-t", "tmpfs", "-o", (readOnly ? "ro," : "") + "size=64k", "tmpfs", path]
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return "no /bin/mount" }
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { return "mount -t tmpfs failed (not root, or no CAP_SYS_ADMIN)" }
    if !readOnly {
        // Fill it: write until the device says it is full.
        let fd = open(path + "/filler", O_WRONLY | O_CREAT, 0o644)
        var block = [UInt8](repeating: 1, count: 4096)
        while write(fd, &block, block.count) > 0 {}
        close(fd)
    }
    return nil
}

func unmount(_ path: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/umount")
    p.arguments = [path]
    try? p.run(); p.waitUntilExit()
}

/// Whether `chattr +i` works on a file in `dir` (root on a file system that supports it).
func makeImmutable(_ path: String, _ on: Bool = true) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
    p.arguments = [on ? "+i" : "-i", path]
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

/// The outcome of one case, for the table in the report.
struct CaseOutcome: CustomStringConvertible {
    var command: String, option: String, name: String, outcome: String
    var description: String { "\(command)\t\(option)\t\(name)\t\(outcome)" }
}

/// The cases every declared output runs against. A refusal must: exit non-zero, print exactly one line, starting
/// with `error:` and containing `expect`, change no file (inputs and the case folder), and leave no temporary.
@Suite("Issue 22: one output rule for every command", .serialized)
struct OutputRuleTests {
    static let names = leafCommands().map(\.name)

    @Test("every subcommand has a quick run here and goes through the one pre-flight (a FileCommand)")
    func everySubcommandHasAQuickRunAndGoesThroughThePlan() throws {
        let i = SharedInputs.shared
        for (name, type) in leafCommands() {
            #expect(type is any FileCommand.Type, "\(name) does not declare its files (FileCommand)")
            guard let args = quickRun(name, out: "/nonexistent", inputs: i) else {
                Issue.record("no quick run for '\(name)': add one to quickRun so that it runs every output case")
                continue
            }
            _ = try declaredPlan(args)
        }
        #expect(Self.names.count == 16, "\(Self.names)")
    }

    @Test("each declared output against every case", arguments: leafCommands().map(\.name))
    func everyOutputAgainstEveryCase(_ name: String) throws {
        let inputs = SharedInputs.shared
        try inputs.make()
        let base = scratchFolder("ddpm-output-rule")
        guard let args = quickRun(name, out: base, inputs: inputs) else { Issue.record("no quick run for \(name)"); return }
        let plan = try declaredPlan(args)
        var outcomes: [CaseOutcome] = []
        defer { print(outcomes.map(\.description).joined(separator: "\n")) }
        if plan.outputs.isEmpty { outcomes.append(CaseOutcome(command: name, option: "-", name: "writes no file", outcome: "—")); return }
        let inputsBefore = snapshot(inputs.dir)

        for output in plan.outputs {
            let isFolder = output.kind != .file
            let firstFile: String
            if case .folder(let files) = output.kind { firstFile = files[0] } else { firstFile = "" }
            var k = 0
            /// Runs one case in its own folder: `prepare` makes the files, returns the arguments; then the checks.
            func run(_ caseName: String, expect: String?, _ prepare: (String) throws -> [String]) throws {
                k += 1
                let dir = base + "/\(output.option.dropFirst(2))-\(k)"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let arguments = try prepare(dir)
                let before = snapshot(dir)
                let r = try runDDPM(arguments)
                let lines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
                let errorLines = lines.filter { $0.hasPrefix("error:") }
                if let expect {
                    let ok = r.status != 0 && errorLines.count == 1 && lines.count == 1 && r.stderr.contains(expect)
                    #expect(ok, "\(name) \(output.option) \(caseName): status \(r.status), stderr: \(r.stderr)")
                    #expect(snapshot(dir) == before, "\(name) \(output.option) \(caseName): files changed")
                    outcomes.append(CaseOutcome(command: name, option: output.option, name: caseName,
                                                outcome: ok ? "refused: " + (errorLines.first.map(String.init) ?? "") : "NOT REFUSED (\(r.status))"))
                } else {
                    #expect(r.status == 0, "\(name) \(output.option) \(caseName): \(r.stderr)")
                    outcomes.append(CaseOutcome(command: name, option: output.option, name: caseName, outcome: r.status == 0 ? "written" : "FAILED: \(r.stderr)"))
                }
                #expect(temporariesBelow(dir).isEmpty, "\(name) \(output.option) \(caseName): left \(temporariesBelow(dir))")
                #expect(snapshot(inputs.dir) == inputsBefore, "\(name) \(output.option) \(caseName): an input changed")
            }
            let withForce = { (a: [String]) in a + ["--force"] }

            // 1. An existing file, without and with --force.
            try run("existing file, no --force", expect: "pass --force to replace it") { dir in
                let target = isFolder ? dir + "/out/" + firstFile : dir + "/out"
                try FileManager.default.createDirectory(atPath: OutputFile.folder(of: target), withIntermediateDirectories: true)
                try "precious".write(toFile: target, atomically: false, encoding: .utf8)
                return replacing(output.option, with: dir + "/out", in: args)
            }
            try run("existing file, --force", expect: nil) { dir in
                let target = isFolder ? dir + "/out/" + firstFile : dir + "/out"
                try FileManager.default.createDirectory(atPath: OutputFile.folder(of: target), withIntermediateDirectories: true)
                try "precious".write(toFile: target, atomically: false, encoding: .utf8)
                return withForce(replacing(output.option, with: dir + "/out", in: args))
            }
            // 2. The output is one of the inputs, directly and through a link (with --force: still refused).
            for input in plan.inputs {
                try run("equal to \(input.option)", expect: "is also an input") { dir in
                    if isFolder {
                        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
                        try FileManager.default.copyItem(atPath: input.path, toPath: dir + "/out/" + firstFile)
                        return withForce(replacingValue(input.path, with: dir + "/out/" + firstFile, in: replacing(output.option, with: dir + "/out", in: args)))
                    }
                    return withForce(replacing(output.option, with: input.path, in: args))
                }
                try run("a link to \(input.option)", expect: "is also an input") { dir in
                    if isFolder {
                        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
                        try FileManager.default.createSymbolicLink(atPath: dir + "/out/" + firstFile, withDestinationPath: input.path)
                        return withForce(replacing(output.option, with: dir + "/out", in: args))
                    }
                    try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: input.path)
                    return withForce(replacing(output.option, with: dir + "/link", in: args))
                }
            }
            // 3. A folder where a file is meant (a file where a folder is), and a missing folder.
            try run(isFolder ? "a file" : "a folder", expect: isFolder ? "is a file" : "is a folder") { dir in
                if isFolder { try "precious".write(toFile: dir + "/out", atomically: false, encoding: .utf8) }
                else { try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: false) }
                return withForce(replacing(output.option, with: dir + "/out", in: args))
            }
            try run("missing folder", expect: "does not exist") { dir in
                withForce(replacing(output.option, with: dir + "/missing/out", in: args))
            }
            // 4. A read-only and a full file system (a small tmpfs), where one can be mounted.
            for readOnly in [true, false] {
                let caseName = readOnly ? "read-only file system" : "full file system"
                let probe = base + "/probe-\(readOnly)"
                if let reason = mountSmallFileSystem(at: probe, readOnly: readOnly) {
                    outcomes.append(CaseOutcome(command: name, option: output.option, name: caseName, outcome: "skipped: \(reason)"))
                    continue
                }
                unmount(probe)
                var mounted: String?
                defer { if let mounted { unmount(mounted) } }
                try run(caseName, expect: readOnly ? "read-only file system" : "no space left on device") { dir in
                    _ = mountSmallFileSystem(at: dir + "/fs", readOnly: readOnly)
                    mounted = dir + "/fs"
                    return withForce(replacing(output.option, with: dir + "/fs/out", in: args))
                }
            }
            // 5. An immutable existing file with --force (root: chattr +i).
            do {
                let dir = base + "/immutable-\(output.option.dropFirst(2))"
                let target = isFolder ? dir + "/out/" + firstFile : dir + "/out"
                try FileManager.default.createDirectory(atPath: OutputFile.folder(of: target), withIntermediateDirectories: true)
                try "precious".write(toFile: target, atomically: false, encoding: .utf8)
                if makeImmutable(target) {
                    let r = try runDDPM(withForce(replacing(output.option, with: dir + "/out", in: args)))
                    _ = makeImmutable(target, false)
                    let ok = r.status != 0 && r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("operation not permitted")
                    #expect(ok, "\(name) immutable: \(r.stderr)")
                    #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious")
                    #expect(temporariesBelow(dir).isEmpty)
                    outcomes.append(CaseOutcome(command: name, option: output.option, name: "immutable file, --force", outcome: ok ? "refused: \(r.stderr.dropLast())" : "NOT REFUSED"))
                } else {
                    outcomes.append(CaseOutcome(command: name, option: output.option, name: "immutable file, --force", outcome: "skipped: chattr +i failed (not root, or the file system has no immutable flag)"))
                }
            }
            // 6. A link as the output, with --force: the link stays a link, its target is replaced and keeps its mode.
            do {
                k += 1
                let dir = base + "/link-\(output.option.dropFirst(2))"
                try FileManager.default.createDirectory(atPath: dir + "/real", withIntermediateDirectories: true)
                let real = isFolder ? dir + "/real/" + firstFile : dir + "/real/target"
                try "old".write(toFile: real, atomically: false, encoding: .utf8)
                chmod(real, 0o640)
                let link = isFolder ? dir + "/real" : dir + "/link"
                if !isFolder { try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "real/target") }
                let r = try runDDPM(withForce(replacing(output.option, with: isFolder ? dir + "/real" : link, in: args)))
                #expect(r.status == 0, "\(name) link: \(r.stderr)")
                if !isFolder {
                    #expect(try FileManager.default.attributesOfItem(atPath: link)[.type] as? FileAttributeType == .typeSymbolicLink)
                }
                #expect(fileBytes(real) != Data("old".utf8), "\(name) link: the target was not written")
                #expect(try FileManager.default.attributesOfItem(atPath: real)[.posixPermissions] as? Int == 0o640)
                #expect(temporariesBelow(dir).isEmpty)
                outcomes.append(CaseOutcome(command: name, option: output.option, name: "link, --force", outcome: r.status == 0 ? "written through the link, mode kept" : "FAILED"))
            }
        }
    }
}

/// Every size option with a huge value, run under a 4 GB address-space limit: refused with an estimate, no crash.
@Suite("Issue 22: every size option is estimated before allocating")
struct SizeOptionTests {
    static func cases(_ i: SharedInputs, _ dir: String) -> [(String, [String])] {
        let data = i.data, c = i.checkpoint, tiny = ["--preset", "golden"]
        return [
            ("train --batch-size", ["train", "--data", data, "--out", dir + "/o.h5", "--batch-size", "1000000000"] + tiny),
            ("train --timesteps", ["train", "--data", data, "--out", dir + "/o.h5", "--timesteps", "100000000"] + tiny),
            ("train --base-channels", ["train", "--data", data, "--out", dir + "/o.h5", "--preset", "golden", "--base-channels", "1000000"]),
            ("train --image-size", ["train", "--data", data, "--out", dir + "/o.h5", "--preset", "golden", "--image-size", "1048576", "--attention-resolutions", ""]),
            ("train --channels", ["train", "--data", data, "--out", dir + "/o.h5", "--preset", "golden", "--channels", "1000000"]),
            ("train --time-emb-dim", ["train", "--data", data, "--out", dir + "/o.h5", "--preset", "golden", "--time-emb-dim", "1000000"]),
            ("train --channel-mults", ["train", "--data", data, "--out", dir + "/o.h5", "--preset", "golden", "--channel-mults", "1,1000000"]),
            ("train --num-res-blocks", ["train", "--data", data, "--out", dir + "/o.h5", "--preset", "golden", "--num-res-blocks", "1000000"]),
            ("train --resume, a checkpoint's T", ["train", "--data", data, "--resume", dir + "/bigT.h5", "--out", dir + "/o.h5", "--train-steps", "5"]),
            ("train --resume, a checkpoint's batch size", ["train", "--data", data, "--resume", dir + "/bigB.h5", "--out", dir + "/o.h5", "--train-steps", "5"]),
            ("train-classifier --batch-size", ["train-classifier", "--data", i.labelled, "--out", dir + "/o.h5", "--batch-size", "1000000000", "--preset", "golden"]),
            ("train-classifier --base-channels", ["train-classifier", "--data", i.labelled, "--out", dir + "/o.h5", "--base-channels", "1000000"]),
            ("sample --count", ["sample", "--checkpoint", c, "--out", dir + "/s.png", "--count", "1000000000"]),
            ("sample, a checkpoint's T", ["sample", "--checkpoint", dir + "/bigT.h5", "--out", dir + "/s.png"]),
            ("interpolate --frames", ["interpolate", "--checkpoint", c, "--from", "1", "--to", "2", "--sample-steps", "2", "--frames", "100000000", "--out", dir + "/i.png"]),
            ("golden export --batch-size", ["golden", "export", "--out", dir + "/g.h5", "--batch-size", "100000000"]),
            ("params --base-channels", ["params", "--base-channels", "100000"]),
            ("bench --gemm-size", ["bench", "--gemm-size", "100000"]),
            ("bench --batches", ["bench", "--batches", "100000000"]),
            ("bench --base-channels", ["bench", "--base-channels", "100000"]),
            ("schedules --timesteps", ["schedules", "--out", dir + "/x.svg", "--timesteps", "100000000"]),
            ("weights --timesteps", ["weights", "--out", dir + "/w.svg", "--timesteps", "100000000"]),
            ("bound --images", ["bound", "--checkpoint", c, "--out", dir + "/b.svg", "--images", "1000000000"]),
            ("evaluate --samples", ["evaluate", "--checkpoint", c, "--data", data, "--samples", "1000000000"]),
            ("figures --count", ["figures", "--checkpoint", c, "--out", dir + "/f", "--count", "1000000000"]),
            ("sampler-figures --count", ["sampler-figures", "--checkpoint", c, "--out", dir + "/sf", "--count", "1000000000"]),
            ("demo --images", ["demo", "--digits", "procedural", "--out", dir + "/d", "--images", "1000000000", "--count", "1"]),
            ("demo --count", ["demo", "--digits", "procedural", "--out", dir + "/d", "--count", "1000000000", "--images", "1000000000"]),
            ("demo --batch-size", ["demo", "--out", dir + "/d", "--batch-size", "1000000000"]),
            ("demo --timesteps", ["demo", "--out", dir + "/d", "--timesteps", "1000000000"]),
            ("golden check, a file's base channels", ["golden", "check", dir + "/bigG.h5"]),
            // Sizes whose products would overflow 64 bits before any estimate: refused by the width limit.
            ("params --base-channels 2^62", ["params", "--base-channels", "4611686018427387904"]),
            ("params --num-res-blocks 2^62", ["params", "--num-res-blocks", "4611686018427387904"]),
            ("sample, a checkpoint's num_res_blocks 2^62", ["sample", "--checkpoint", dir + "/bigR.h5", "--out", dir + "/s.png"]),
        ]
    }

    @Test("huge values under prlimit --as=4 GB: one error line with the estimate, nothing written, no crash")
    func hugeValuesAreRefusedWithAnEstimate() throws {
        let i = SharedInputs.shared
        try i.make()
        let dir = scratchFolder()
        try copyHDF5(i.checkpoint, to: dir + "/bigT.h5", attributes: ["/config timesteps": Int64(1_000_000_000)])
        try copyHDF5(i.checkpoint, to: dir + "/bigB.h5", attributes: ["/training batch_size": Int64(1_000_000_000_000)])
        try copyHDF5(i.checkpoint, to: dir + "/bigR.h5", attributes: ["/config num_res_blocks": Int64(1) << 62])
        try copyHDF5(i.golden, to: dir + "/bigG.h5", attributes: ["/config base_channels": Int64(1_000_000)])
        let cases = Self.cases(i, dir)
        for (what, arguments) in cases {
            let r = try runDDPM(["--as=4000000000", try ddpmExecutable().path] + arguments, executable: "/usr/bin/prlimit")
            let lines = r.stderr.split(separator: "\n")
            let expected = what.hasSuffix("2^62") ? "expected at most 1048576" : "needs about"
            #expect(r.status == 1 && lines.count == 1 && lines[0].hasPrefix("error: ") && r.stderr.contains(expected),
                    "\(what): status \(r.status), \(r.stderr)")
            print("\(what)\t\(r.status)\t\(r.stderr.dropLast())")
        }
        #expect(temporariesBelow(dir).isEmpty)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == ["bigT.h5", "bigB.h5", "bigR.h5", "bigG.h5"])
        print("size options covered: \(cases.count)")
    }

    @Test("the parameter estimate is within 5 % of the built network's count for every preset")
    func parameterEstimateIsClose() throws {
        for name in Presets.names {
            let c = try Presets.network(name)
            let built = Double(try UNet(c).parameterCount), estimate = Footprint.parameters(c)
            print("preset \(name): \(Int(built)) parameters, estimate \(Int(estimate)), ratio \(estimate / built)")
            #expect(abs(estimate / built - 1) < 0.05, "\(name): \(estimate) vs \(built)")
        }
    }
}

/// One test per numbered defect of issue 22 (item 15, thread counts, belongs to the kernels' tests).
@Suite("Issue 22: the numbered defects")
struct OutputRuleDefectTests {
    var i: SharedInputs { SharedInputs.shared }

    /// The checkpoint and data bytes, to show they are unchanged.
    func inputBytes() -> [Data?] { [fileBytes(i.checkpoint), fileBytes(i.data)] }

    @Test("1. interpolate --out equal to its --checkpoint or --data is refused; it has --force; an existing file is kept")
    func defect01InterpolateOverItsInputs() throws {
        try i.make()
        let dir = scratchFolder(), before = inputBytes()
        let run = ["interpolate", "--checkpoint", i.checkpoint, "--from", "1", "--to", "2", "--frames", "2", "--sample-steps", "2"]
        try expectUserError(run + ["--out", i.checkpoint, "--force"], "is also an input (--checkpoint")
        try expectUserError(run + ["--data", i.data, "--out", i.data, "--force"], "is also an input (--data")
        try "mine".write(toFile: dir + "/strip.png", atomically: false, encoding: .utf8)
        try expectUserError(run + ["--out", dir + "/strip.png"], "pass --force to replace it")
        #expect(try String(contentsOfFile: dir + "/strip.png", encoding: .utf8) == "mine")
        let forced = try runDDPM(run + ["--out", dir + "/strip.png", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(inputBytes() == before)
    }

    @Test("2. bound --out equal to its checkpoint is refused; an existing SVG is kept; a link stays a link")
    func defect02BoundKeepsCheckpointSVGsAndLinks() throws {
        try i.make()
        let dir = scratchFolder(), before = inputBytes()
        let run = ["bound", "--checkpoint", i.checkpoint, "--images", "1"]
        try expectUserError(run + ["--out", i.checkpoint, "--force"], "is also an input")
        try "old svg".write(toFile: dir + "/b.svg", atomically: false, encoding: .utf8)
        try expectUserError(run + ["--out", dir + "/b.svg"], "pass --force to replace it")
        #expect(try String(contentsOfFile: dir + "/b.svg", encoding: .utf8) == "old svg")
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.svg", withDestinationPath: "b.svg")
        let r = try runDDPM(run + ["--out", dir + "/link.svg", "--force"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.attributesOfItem(atPath: dir + "/link.svg")[.type] as? FileAttributeType == .typeSymbolicLink)
        #expect(try String(contentsOfFile: dir + "/b.svg", encoding: .utf8).hasPrefix("<svg"))
        #expect(inputBytes() == before)
    }

    @Test("3. schedules --out over an existing file (or folder) is refused without --force")
    func defect03SchedulesKeepsExistingFiles() throws {
        let dir = scratchFolder()
        try "keep".write(toFile: dir + "/s.svg", atomically: false, encoding: .utf8)
        try expectUserError(["schedules", "--out", dir + "/s.svg", "--timesteps", "10"], "pass --force to replace it")
        try expectUserError(["schedules", "--out", dir, "--timesteps", "10", "--force"], "is a folder")
        #expect(try String(contentsOfFile: dir + "/s.svg", encoding: .utf8) == "keep")
    }

    @Test("4. figures, sampler-figures and weights keep existing outputs and links")
    func defect04FigureCommandsKeepOutputsAndLinks() throws {
        try i.make()
        let dir = scratchFolder()
        try FileManager.default.createDirectory(atPath: dir + "/figs", withIntermediateDirectories: false)
        try "keep".write(toFile: dir + "/figs/chain-x0.png", atomically: false, encoding: .utf8)
        try expectUserError(["figures", "--checkpoint", i.checkpoint, "--out", dir + "/figs", "--count", "2", "--bound-images", "1"], "chain-x0.png: exists")
        try "keep".write(toFile: dir + "/zero-terminal-snr.svg", atomically: false, encoding: .utf8)
        try expectUserError(["sampler-figures", "--out", dir], "zero-terminal-snr.svg: exists")
        try "keep".write(toFile: dir + "/target.svg", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/w.svg", withDestinationPath: "target.svg")
        try expectUserError(["weights", "--out", dir + "/w.svg", "--timesteps", "10"], "pass --force to replace it")
        #expect(try String(contentsOfFile: dir + "/target.svg", encoding: .utf8) == "keep")
        #expect(try String(contentsOfFile: dir + "/figs/chain-x0.png", encoding: .utf8) == "keep")
        let r = try runDDPM(["weights", "--out", dir + "/w.svg", "--timesteps", "10", "--force"])
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/w.svg")
        #expect(r.status == 0 && link == "target.svg", "\(r.stderr)")
    }

    @Test("5. a missing, read-only or full output folder fails before the work in one sentence, not a Foundation error")
    func defect05OutputFoldersBeforeWorkInOneSentence() throws {
        let dir = scratchFolder()
        let r = try runDDPM(["weights", "--out", dir + "/missing/w.svg", "--timesteps", "10"])
        #expect(r.status == 1 && r.stderr.hasPrefix("error: --out \(dir)/missing/w.svg: the folder") && r.stdout.isEmpty, "\(r.stderr)")
        // At write time too (the space went between the check and the write): one sentence naming the user's path.
        if mountSmallFileSystem(at: dir + "/small", readOnly: false) == nil {
            defer { unmount(dir + "/small") }
            unlink(dir + "/small/filler")
            _ = FileManager.default.createFile(atPath: dir + "/small/half", contents: Data(count: 40_000))
            let big = String(repeating: "x", count: 100_000)
            expectError(.outputRefused, mentioning: [dir + "/small/big.txt", "no space left on device"]) {
                try OutputFile.write(to: dir + "/small/big.txt") { try big.write(toFile: $0, atomically: false, encoding: .utf8) }
            }
            #expect(temporaries(dir + "/small").isEmpty && !FileManager.default.fileExists(atPath: dir + "/small/big.txt"))
        } else {
            print("skipped the write-time full-disk case: mount -t tmpfs failed")
        }
        for code in [ENOSPC, EROFS, EISDIR, EACCES] { print("errno \(code): \(OutputFile.reason(code))") }
        #expect(OutputFile.reason(ENOSPC) == "no space left on device" && OutputFile.reason(EROFS) == "read-only file system" && OutputFile.reason(EISDIR) == "is a directory")
    }

    @Test("6. no partial output: a bad second output, a missing checkpoint, a bad --from; a failure in the work or at commit leaves none")
    func defect06NoPartialOutput() throws {
        try i.make()
        let dir = scratchFolder()
        try expectUserError(["sample", "--checkpoint", i.checkpoint, "--count", "1", "--out", dir + "/s.png", "--h5", dir + "/nodir/s.h5"], "does not exist")
        try expectUserError(["sampler-figures", "--checkpoint", dir + "/missing.h5", "--out", dir + "/sf"], "no such file")
        try expectUserError(["figures", "--checkpoint", dir + "/missing.h5", "--out", dir + "/figs"], "no such file")
        try expectUserError(["sampler-figures", "--checkpoint", i.checkpoint, "--out", dir + "/sf", "--from", "-1"], "--from: expected a non-negative integer, got -1")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        // The plan itself: a failure after the first of two writes leaves neither; a commit that fails on the
        // second output (created meanwhile by someone else) undoes the first and restores what it replaced.
        struct Boom: Error {}
        var plan = OutputPlan()
        plan.output("--a", dir + "/a.txt", mayReplace: true)
        plan.output("--b", dir + "/b.txt", mayReplace: false)
        try plan.check()
        #expect(throws: Boom.self) { try plan.run { try writeText("a", to: dir + "/a.txt"); throw Boom() } }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        try "old a".write(toFile: dir + "/a.txt", atomically: false, encoding: .utf8)
        expectError(.outputRefused, mentioning: ["--b", "created by another process"]) {
            try plan.run {
                try writeText("new a", to: dir + "/a.txt"); try writeText("new b", to: dir + "/b.txt")
                try "someone else's".write(toFile: dir + "/b.txt", atomically: false, encoding: .utf8)
            }
        }
        #expect(try String(contentsOfFile: dir + "/a.txt", encoding: .utf8) == "old a")
        #expect(try String(contentsOfFile: dir + "/b.txt", encoding: .utf8) == "someone else's")
        #expect(temporaries(dir).isEmpty)
    }

    // 7. Unbounded allocations: `SizeOptionTests.hugeValuesAreRefusedWithAnEstimate` (every size option under prlimit).

    @Test("8. two writers of one new output, without --force: exactly one succeeds; with --force both do, the last wins",
          arguments: ["golden export", "sample", "train"])
    func defect08ConcurrentWriters(_ command: String) throws {
        try i.make()
        let dir = scratchFolder()
        for force in [false, true] {
            let out = dir + "/out-\(force)", gate = dir + "/gate-\(force)"
            let args: [String]
            switch command {
            case "golden export": args = ["golden", "export", "--out", out]
            case "sample": args = ["sample", "--checkpoint", i.checkpoint, "--count", "1", "--out", out + ".png", "--h5", out]
            default: args = ["train", "--data", i.data, "--out", out, "--train-steps", "1"] + tinyRun
            }
            var runs: [Process] = []
            for k in 0..<2 {
                let logs = dir + "/logs-\(force)-\(k)"
                try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: false)
                runs.append(try startDDPM(args + (force ? ["--force"] : []), logs: logs, environment: ["DDPM_HOLD_BEFORE_COMMIT": gate]))
            }
            // Both have checked the output (it did not exist) and finished their work: both wait at the commit.
            let waiting = waitFor(600) { runs.allSatisfy { FileManager.default.fileExists(atPath: gate + ".\($0.processIdentifier)") } }
            #expect(waiting, "the two runs did not both reach the commit")
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            for p in runs { p.waitUntilExit() }
            let statuses = runs.map(\.terminationStatus)
            let stderrs = (0..<2).map { (try? String(contentsOfFile: dir + "/logs-\(force)-\($0)/stderr.txt", encoding: .utf8)) ?? "" }
            if force {
                #expect(statuses == [0, 0], "\(stderrs)")
            } else {
                #expect(statuses.sorted() == [0, 1], "\(statuses) \(stderrs)")
                if let loser = statuses.firstIndex(of: 1) {
                    let errors = stderrs[loser].split(separator: "\n").filter { $0.hasPrefix("error:") }
                    #expect(errors.count == 1 && errors[0].contains("was created by another process after this run checked it"), "\(stderrs[loser])")
                    #expect(!((try? String(contentsOfFile: dir + "/logs-\(force)-\(loser)/stdout.txt", encoding: .utf8)) ?? "").contains("wrote"))
                }
            }
            #expect((try? HDF5File(path: out)) != nil, "\(command): the output is not a complete HDF5 file")
            #expect(temporaries(dir).isEmpty)
        }
    }

    @Test("9. train --resume refuses objective options that differ from the checkpoint's, and accepts equal ones")
    func defect09ResumeComparesTheObjective() throws {
        try i.make()
        let dir = scratchFolder()
        try FileManager.default.copyItem(atPath: i.checkpoint, toPath: dir + "/c.h5")
        let before = fileBytes(dir + "/c.h5")
        let resume = ["train", "--data", i.data, "--resume", dir + "/c.h5", "--out", dir + "/c.h5", "--train-steps", "2"]
        for (option, value) in [("--mean-type", "x0"), ("--variance", "large"), ("--loss", "kl"), ("--min-snr", "5"), ("--timestep-sampler", "loss-second-moment")] {
            try expectUserError(resume + [option, value], "\(option) \(value)")
        }
        #expect(fileBytes(dir + "/c.h5") == before)
        let same = try runDDPM(resume + ["--mean-type", "eps", "--variance", "small", "--loss", "simple", "--timestep-sampler", "uniform"])
        #expect(same.status == 0, "\(same.stderr)")
    }

    @Test("10. options that cannot apply, empty parameters and unknown names are refused before any work")
    func defect10InapplicableOptions() throws {
        try i.make()
        let dir = scratchFolder()
        let sample = ["sample", "--checkpoint", i.checkpoint, "--out", dir + "/s.png", "--count", "1"]
        try expectUserError(sample + ["--spacing", "bogus"], "--spacing 'bogus'")
        try expectUserError(sample + ["--sample-steps", "5", "--spacing", "bogus"], "--spacing 'bogus'")
        try expectUserError(sample + ["--spacing", "trailing"], "--spacing needs --sample-steps N")
        try expectUserError(sample + ["--eta", "0.5"], "--eta applies to --sampler ddim")
        try expectUserError(sample + ["--epsilon", "original"], "--epsilon applies to --sampler ddim")
        try expectUserError(sample + ["--sampler", "ddim", "--sample-steps", "5", "--no-set-alpha-to-one"], "applies to --sampler ddim with a diffusers spacing")
        try expectUserError(sample + ["--sample-steps", "5", "--spacing", "leading:"], "--spacing 'leading:'")
        try expectUserError(sample + ["--sample-steps", "5", "--spacing", "sections:"], "--spacing 'sections:'")
        try expectUserError(sample + ["--threshold", "clip:"], "--threshold 'clip:'")
        try expectUserError(sample + ["--threshold", "dynamic:"], "--threshold 'dynamic:'")
        for bench in [["--ddim-steps", "-5"], ["--ddim-steps", "2000"], ["--preset", "bogus"]] {
            let r = try runDDPM(["bench", "--runs", "1"] + bench)
            #expect(r.status == 1 && r.stdout.isEmpty && r.stderr.hasPrefix("error: "), "bench \(bench): the DGEMM timing ran first or no error: \(r.stdout) \(r.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test("11. negative numbers as separate words get the range message")
    func defect11NegativeNumbersAsSeparateWords() throws {
        try i.make()
        let dir = scratchFolder()
        try expectUserError(["sample", "--checkpoint", i.checkpoint, "--out", dir + "/s.png", "--sample-steps", "-1"], "--sample-steps: expected a positive number, got -1")
        try expectUserError(["sample", "--checkpoint", i.checkpoint, "--out", dir + "/s.png", "--sampler", "ddim", "--eta", "-1"], "--eta: expected a finite value ≥ 0, got -1.0")
        try expectUserError(["train", "--data", i.data, "--out", dir + "/o.h5", "--min-snr", "-1"] + tinyRun, "--min-snr -1.0: expected a positive finite number")
        try expectUserError(["interpolate", "--checkpoint", i.checkpoint, "--from", "1", "--to", "2", "--out", dir + "/i.png", "--frames", "-1"], "--frames: expected at least 2, got -1")
        #expect(joiningNegativeNumbers(["--steps", "-1", "--eta", "-2.5e-3", "--force", "-x", "--", "--a", "-1"]) == ["--steps=-1", "--eta=-2.5e-3", "--force", "-x", "--", "--a", "-1"])
    }

    @Test("12. a checkpoint weight stored as an integer dataset is refused by name")
    func defect12IntegerWeightsAreRefused() throws {
        try i.make()
        let dir = scratchFolder()
        let name = try HDF5File(path: i.checkpoint).members(ofGroup: "/weights")[0]
        try copyHDF5(i.checkpoint, to: dir + "/int.h5", asIntegers: ["/weights/" + name])
        #expect(try HDF5File(path: dir + "/int.h5").elementType(of: "/weights/" + name) == "int64")
        try expectUserError(["sample", "--checkpoint", dir + "/int.h5", "--out", dir + "/s.png", "--count", "1"], "'\(name)'")
        try expectUserError(["sample", "--checkpoint", dir + "/int.h5", "--out", dir + "/s.png", "--count", "1"], "expected floating-point data, found")
        #expect(!FileManager.default.fileExists(atPath: dir + "/s.png"))
    }

    @Test("13. golden check refuses non-finite tolerances (a perturbed file would pass)")
    func defect13FiniteTolerances() throws {
        try i.make()
        for args in [["--rtol", "inf"], ["--atol", "inf"], ["--rtol", "nan"]] {
            try expectUserError(["golden", "check", i.golden] + args, "expected finite non-negative values")
        }
        expectError(.invalidValue, mentioning: ["finite"]) { _ = try GoldenFile.check(path: i.golden, rule: .elementwise(Tolerance(rtol: .infinity, atol: 0))) }
    }

    @Test("14. messages name the file and the real cause: an unknown schedule in a checkpoint, a checkpoint's batch size, a full disk")
    func defect14MessagesNameTheCause() throws {
        try i.make()
        let dir = scratchFolder()
        try copyHDF5(i.checkpoint, to: dir + "/sched.h5", attributes: ["/config beta_schedule": "bogus"])
        try expectUserError(["sample", "--checkpoint", dir + "/sched.h5", "--out", dir + "/s.png"], dir + "/sched.h5 /config attribute 'beta_schedule': ")
        try copyHDF5(i.checkpoint, to: dir + "/batch.h5", attributes: ["/training batch_size": Int64(1_000_000_000_000)])
        let r = try runDDPM(["train", "--data", i.data, "--resume", dir + "/batch.h5", "--out", dir + "/batch.h5", "--train-steps", "5"])
        #expect(r.status == 1 && r.stderr.contains("the checkpoint's batch size 1000000000000") && !r.stderr.contains("--batch-size"), "\(r.stderr)")
        if mountSmallFileSystem(at: dir + "/full", readOnly: false) == nil {
            defer { unmount(dir + "/full") }
            try expectUserError(["sample", "--checkpoint", i.checkpoint, "--count", "1", "--out", dir + "/s.png", "--h5", dir + "/full/s.h5"], "--h5 \(dir)/full/s.h5: no space left on device")
            #expect(!FileManager.default.fileExists(atPath: dir + "/s.png"))
        } else {
            print("skipped the full-disk message: mount -t tmpfs failed")
        }
    }
}
