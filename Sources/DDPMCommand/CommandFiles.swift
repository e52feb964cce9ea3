import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// The rules every command follows for the files it writes, stated once in `ddpm --help`.
let outputRules = """
Files: every command declares the files it reads and writes, and checks all of them before any work: an \
output must not be one of the inputs (links resolved; resuming a checkpoint in place is the one exception), \
an existing file is replaced only with --force, and a missing, read-only or full folder is refused. Outputs \
are written to a temporary file `.NAME.ddpm-tmp-PID-RANDOM` beside each output and put in place when \
complete; a command with several outputs puts them all in place after the work, or none (except train, whose \
checkpoint and loss figure are each put in place at every checkpoint). A new output is \
created exclusively: of two runs writing the same new file, one succeeds and the other stops with an error \
and leaves it alone; with --force the last run to finish wins. A symbolic link is written through to its \
target and a replaced file keeps its mode; temporaries of dead processes are removed by the next run that \
writes there. Sizes are estimated before anything is allocated, and a request beyond the memory the process \
may use is refused with the estimate.
"""

/// A subcommand that reads or writes files. It declares them once (``files``) and its size once
/// (``footprint()``); `run()` is the same for all of them: options, then every file, then the size, all
/// before any work, and the work's outputs written only through the declared plan.
protocol FileCommand: ParsableCommand {
    /// Checks of option values and combinations that need no file (ranges, names, options that cannot apply).
    func checkOptions() throws
    /// The command's inputs and outputs.
    func files() throws -> OutputPlan
    /// Every term that scales memory, from the options and from the inputs' metadata (read, not loaded).
    func footprint() throws -> Footprint
    /// The work; it writes only the outputs of ``files()``.
    func work() throws
    /// A failure to report after the outputs were committed (a check that fails still writes its report); none by default.
    func verdict() throws
}

extension FileCommand {
    func run() throws {
        try checkOptions()
        let plan = try files()
        try plan.check()
        try footprint().check()
        Announcements.pending = plan.commitsTogether ? [] : nil
        defer { Announcements.pending = nil }
        try plan.run { try work() }
        for line in Announcements.pending ?? [] { print(line) }
        try verdict()
    }

    func verdict() throws {}
}

/// "wrote …" lines: printed at once when each write is committed as it happens, else only after the
/// outputs were committed together (a run that fails at the commit never says it wrote anything).
enum Announcements {
    nonisolated(unsafe) static var pending: [String]?
}

func announce(_ line: String) {
    if Announcements.pending != nil { Announcements.pending!.append(line) } else { print(line) }
}

/// Writes a text file (UTF-8) through the one file-writing helper.
func writeText(_ text: String, to path: String) throws {
    try OutputFile.write(to: path) { try text.write(toFile: $0, atomically: false, encoding: .utf8) }
}

/// Runs a library check and names the option behind each quantity in its message ("learning rate: …" → "--lr: …").
func naming(_ options: [String: String], _ body: () throws -> Void) throws {
    do { try body() } catch let e as DDPMError {
        for (quantity, flag) in options where e.message.hasPrefix(quantity + ":") {
            throw DDPMError(e.kind, flag + e.message.dropFirst(quantity.count))
        }
        throw e
    }
}

/// Refuses a count outside `range` with the option's name (one sentence).
func requireRange(_ option: String, _ value: Int, _ range: ClosedRange<Int>, _ expected: String? = nil) throws {
    guard range.contains(value) else {
        let what = expected ?? (range.upperBound == Int.max ? (range.lowerBound == 1 ? "a positive number" : "at least \(range.lowerBound)")
                                                            : "\(range.lowerBound) to \(range.upperBound)")
        throw DDPMError(.invalidValue, "\(option): expected \(what), got \(value)")
    }
}

/// The largest width, side, count of blocks or multiplier a network option or checkpoint field may have
/// (2^20): beyond it the network's sizes overflow 64-bit products before any estimate could be made. Below
/// it, ``Footprint`` decides.
let widthLimit = 1 << 20

/// Refuses a network size beyond ``widthLimit`` (and below 1, which the configuration check reports itself).
func requireWidth(_ option: String, _ value: Int) throws {
    guard value <= widthLimit else { throw DDPMError(.invalidValue, "\(option): expected at most \(widthLimit), got \(value)") }
}

/// Refuses an option given where it cannot have any effect, saying why.
func refuseIfGiven(_ given: Bool, _ option: String, _ why: String) throws {
    if given { throw DDPMError(.invalidConfiguration, "\(option) \(why)") }
}

// MARK: Checkpoints

/// A checkpoint's configuration from its attributes, without building anything: T is read and sized first
/// (the tables a configuration check builds scale with it), then the rest. Messages name the file.
func checkpointConfiguration(_ path: String, option: String, format: FileFormat = Trainer.format,
                             into footprint: inout Footprint) throws -> ModelConfiguration {
    try namingFile(path) {
        let file = try HDF5File(path: path)
        try format.check(file)
        if file.exists("/config"), (try? file.attributeNames(of: "/config"))?.contains("timesteps") == true {
            let t = Int(clamping: try file.int64Attribute("timesteps", of: "/config"))
            var sizing = Footprint()
            sizing.diffusion(timesteps: t, "\(option) \(path): T = \(t) diffusion tables")
            try sizing.check()
        }
        let names = file.exists("/config") ? Set(try file.attributeNames(of: "/config")) : []
        for k in ["image_size", "channels", "base_channels", "num_res_blocks", "time_emb_dim"] where names.contains(k) {
            try requireWidth("\(option) \(path) /config attribute '\(k)'", Int(clamping: try file.int64Attribute(k, of: "/config")))
        }
        if names.contains("channel_mults") {
            let m = try file.int64ArrayAttribute("channel_mults", of: "/config")
            try requireWidth("\(option) \(path) /config attribute 'channel_mults' (levels)", m.count)
            for v in m { try requireWidth("\(option) \(path) /config attribute 'channel_mults'", Int(clamping: v)) }
        }
        let config = try ModelConfiguration(reading: file)
        footprint.diffusion(timesteps: config.timesteps, "\(option) \(path): T = \(config.timesteps) diffusion tables")
        return config
    }
}

/// Loads a checkpoint (after ``checkpointConfiguration(_:option:into:)`` sized it); messages name the file.
func loadCheckpoint(_ path: String) throws -> Trainer { try namingFile(path) { try Trainer.load(from: path) } }

/// Prefixes "PATH: " to a library message that does not name the file it came from.
func namingFile<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as DDPMError where !e.message.contains(path) {
        throw DDPMError(e.kind, "\(path): \(e.message)")
    }
}
