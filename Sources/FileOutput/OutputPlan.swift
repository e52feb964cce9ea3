// ─── A command's files, declared once ────────────────────────────────────────────────────────────────
//
// Every command that writes files declares them in one ``OutputPlan``: its inputs (option and path) and
// its outputs (option, path, a file or a folder of named files, whether `--force` allows replacing it, and
// about how many bytes it will take). Then:
//
// 1. ``OutputPlan/check()``, before any work, refuses every output that must not or cannot be written: an
//    empty path, a missing or read-only folder, a full file system, a folder where a file is meant (or a
//    file where a folder is), an existing file without `--force`, an output that is one of the inputs
//    (links resolved; the one exception is an input declared as replaced in place, a resumed checkpoint),
//    two outputs that are the same file. Each refusal is one sentence naming the option and the path.
// 2. ``OutputPlan/run(_:)`` runs the work. Every ``OutputFile/write(to:_:)`` inside it must be to a
//    declared output (anything else is a programmer error). A plan with one output file commits each
//    write at once; a plan with several commits them all after the work succeeded, or none: a failure
//    leaves no output, and a failed commit undoes the ones before it. An output declared `atEachWrite`
//    (a training run's periodic checkpoint and its loss figure: each write is a complete state the run
//    may stop after) is committed at each write whatever the plan holds, and is not counted among the
//    files committed together.
// 3. An output that did not exist when it was checked is created exclusively (link(2) of the finished
//    temporary to its name, which fails if the name exists by then): of two runs writing one new file,
//    exactly one succeeds and the other reports it and leaves the file alone. With `--force` the output
//    is renamed into place and the last writer wins.
//
// Only Foundation and `Errors`.

import Errors
import Foundation

public struct OutputPlan {
    /// What an output is: one file, or a folder holding these files (created if missing; nothing else in
    /// an existing folder is touched).
    public enum Kind: Equatable, Sendable {
        case file
        case folder(files: [String])
    }

    public struct Output: Equatable, Sendable {
        public var option: String, path: String, kind: Kind
        /// Whether an existing file may be replaced (`--force`, or a checkpoint resumed in place).
        public var mayReplace: Bool
        /// About how many bytes the output takes (compared with the free space before any work).
        public var bytes: Double
        /// Committed at each write (a periodic checkpoint), not with the plan's other outputs after the work.
        public var atEachWrite = false

        /// How many files the output is (a folder: the files it holds).
        var files: [String] {
            switch kind {
            case .file: return [path]
            case .folder(let names): return names
            }
        }
    }

    public struct Input: Equatable, Sendable {
        public var option: String, path: String
        /// The input is also the output, on purpose (a checkpoint resumed in place).
        public var replacedInPlace: Bool
    }

    public private(set) var outputs: [Output] = []
    public private(set) var inputs: [Input] = []

    public init() {}

    /// Declares an input (nothing is declared for a nil path: an option not given).
    public mutating func input(_ option: String, _ path: String?, replacedInPlace: Bool = false) {
        if let path { inputs.append(Input(option: option, path: path, replacedInPlace: replacedInPlace)) }
    }

    /// Declares an output (nothing is declared for a nil path: an option not given).
    /// `atEachWrite`: each write of this file is committed at once (see the file's header); files only.
    public mutating func output(_ option: String, _ path: String?, kind: Kind = .file, mayReplace: Bool, bytes: Double = 0, atEachWrite: Bool = false) {
        precondition(!atEachWrite || kind == .file, "OutputPlan.output(\(option)): only a file output can be committed at each write")
        if let path { outputs.append(Output(option: option, path: path, kind: kind, mayReplace: mayReplace, bytes: bytes, atEachWrite: atEachWrite)) }
    }

    /// Every file the plan writes (folder outputs expanded into their files), in declaration order.
    public var files: [(option: String, path: String, mayReplace: Bool, bytes: Double)] {
        outputs.flatMap { o -> [(option: String, path: String, mayReplace: Bool, bytes: Double)] in
            switch o.kind {
            case .file: return [(o.option, o.path, o.mayReplace, o.bytes)]
            case .folder(let names):
                return names.map { (o.option, o.path + "/" + $0, o.mayReplace, o.bytes / Double(max(names.count, 1))) }
            }
        }
    }

    // MARK: Checks before work

    /// Refuses, with one `.outputRefused` sentence naming the option and the path, the first output that
    /// must not or cannot be written (see the file's header). Removes stale temporaries of dead processes
    /// in the folders it will write into.
    public func check() throws {
        var seen: [String: String] = [:]
        for o in outputs {
            guard !o.path.isEmpty else { throw DDPMError(.outputRefused, "\(o.option): the output path is empty") }
            if case .folder = o.kind { try checkFolder(o) }
        }
        for f in files {
            try checkFile(f.option, f.path, mayReplace: f.mayReplace, bytes: f.bytes, folderMayBeMissing: isInNewFolder(f.path))
            let key = Self.key(f.path)
            if let other = seen[key] {
                throw DDPMError(.outputRefused, "\(other) and \(f.option) \(f.path) are the same file; each output needs its own")
            }
            seen[key] = "\(f.option) \(f.path)"
        }
    }

    /// Whether `path` lies in a folder output that does not exist yet (made at commit).
    func isInNewFolder(_ path: String) -> Bool {
        outputs.contains { o in
            guard case .folder = o.kind else { return false }
            return OutputFile.folder(of: path) == URL(fileURLWithPath: o.path).path && !FileManager.default.fileExists(atPath: o.path)
        }
    }

    func checkFolder(_ o: Output) throws {
        var isFolder: ObjCBool = false
        let target = OutputFile.resolve(o.path)
        if FileManager.default.fileExists(atPath: target, isDirectory: &isFolder) {
            guard isFolder.boolValue else {
                throw DDPMError(.outputRefused, "\(o.option) \(o.path): is a file; this command writes a folder (give a new or existing folder)")
            }
            try Self.checkWritable(o.option, o.path, folder: target, bytes: o.bytes)
        } else {
            try Self.checkWritable(o.option, o.path, folder: OutputFile.folder(of: target), bytes: o.bytes)
        }
    }

    func checkFile(_ option: String, _ path: String, mayReplace: Bool, bytes: Double, folderMayBeMissing: Bool) throws {
        let target = OutputFile.resolve(path)
        let dir = OutputFile.folder(of: target)
        if !folderMayBeMissing { try Self.checkWritable(option, path, folder: dir, bytes: bytes) }
        var info = stat()
        guard lstat(target, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw DDPMError(.outputRefused, "\(option) \(path): is a folder, expected a file name") }
        if let input = inputs.first(where: { !$0.replacedInPlace && OutputFile.sameFile($0.path, target) }) {
            throw DDPMError(.outputRefused, "\(option) \(path): is also an input (\(input.option) \(input.path)); an output never replaces an input")
        }
        guard mayReplace || inputs.contains(where: { $0.replacedInPlace && OutputFile.sameFile($0.path, target) }) else {
            throw DDPMError(.outputRefused, "\(option) \(path): exists and was not written by this run; it is kept; pass --force to replace it")
        }
        if access(target, W_OK) != 0 && errno == EPERM {
            throw DDPMError(.outputRefused, "\(option) \(path): cannot be replaced: \(OutputFile.reason(EPERM))")
        }
    }

    /// A folder that exists, is a folder, is writable and has room for about `bytes` more.
    static func checkWritable(_ option: String, _ path: String, folder dir: String, bytes: Double) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder) else {
            throw DDPMError(.outputRefused, "\(option) \(path): the folder '\(dir)' does not exist")
        }
        guard isFolder.boolValue else { throw DDPMError(.outputRefused, "\(option) \(path): '\(dir)' is not a folder") }
        var fs = statvfs()
        if statvfs(dir, &fs) == 0 {
            if fs.f_flag & UInt(ST_RDONLY) != 0 {
                throw DDPMError(.outputRefused, "\(option) \(path): the folder '\(dir)' is on a \(OutputFile.reason(EROFS))")
            }
            let free = Double(fs.f_bavail) * Double(fs.f_frsize)
            let needed = max(bytes, Double(fs.f_frsize))
            if free < needed {
                throw DDPMError(.outputRefused, "\(option) \(path): \(OutputFile.reason(ENOSPC)) ('\(dir)' has \(OutputFile.describe(bytes: free)) free, the output needs about \(OutputFile.describe(bytes: needed)))")
            }
        }
        guard access(dir, W_OK) == 0 else {
            throw DDPMError(.outputRefused, "\(option) \(path): the folder '\(dir)' is not writable: \(OutputFile.reason(errno))")
        }
        OutputFile.removeStaleTemporaries(in: dir)
    }

    /// The identity of the file a path names, existing or not: the real path of its folder and its name
    /// (links followed), so that two spellings of one file compare equal.
    static func key(_ path: String) -> String {
        let target = OutputFile.resolve(path)
        let dir = OutputFile.folder(of: target)
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let real = realpath(dir, &buffer) != nil ? String(cString: buffer) : URL(fileURLWithPath: dir).standardizedFileURL.path
        return real + "/" + URL(fileURLWithPath: target).lastPathComponent
    }

    // MARK: Running

    /// Whether the outputs are committed together after the work (several files not declared `atEachWrite`,
    /// or a new folder) rather than at each write.
    public var commitsTogether: Bool {
        outputs.filter { !$0.atEachWrite }.map(\.files.count).reduce(0, +) > 1 || outputs.contains { o in
            if case .folder = o.kind { return !FileManager.default.fileExists(atPath: o.path) }
            return false
        }
    }

    /// Runs `body` with this plan's outputs as the only files ``OutputFile/write(to:_:)`` may write; commits
    /// them as described in the file's header. On failure no output of a multi-output plan is left.
    public func run<T>(_ body: () throws -> T) throws -> T {
        precondition(OutputSession.current == nil, "OutputPlan.run: plans do not nest")
        let session = OutputSession(self)
        OutputSession.current = session
        defer { OutputSession.current = nil }
        let result: T
        do { result = try body() } catch {
            session.abandon()
            throw error
        }
        try session.finish()
        return result
    }
}

/// The state of one running plan: where each output's finished temporary is, and which ones this run created.
final class OutputSession {
    nonisolated(unsafe) static var current: OutputSession?

    struct Entry {
        var option: String, path: String, target: String
        /// Created with link(2) (did not exist at the check, and no --force); false: renamed into place.
        var exclusive: Bool
        /// Committed at each write even when the plan commits its other outputs together.
        var atEachWrite = false
        var staged: String?
        var created = false
    }

    var entries: [(key: String, entry: Entry)] = []
    /// New folder outputs (their resolved paths) and the staging folder beside each that holds their files until commit.
    var newFolders: [(option: String, path: String, target: String, staging: String?)] = []
    /// Several files: staged during the work and committed together at the end.
    let together: Bool

    init(_ plan: OutputPlan) {
        for o in plan.outputs {
            if case .folder = o.kind, !FileManager.default.fileExists(atPath: o.path) {
                newFolders.append((o.option, o.path, URL(fileURLWithPath: OutputFile.resolve(o.path)).path, nil))
            }
        }
        let eachWrite = Set(plan.outputs.filter(\.atEachWrite).map { OutputPlan.key($0.path) })
        for f in plan.files {
            let target = OutputFile.resolve(f.path)
            var info = stat()
            let existed = lstat(target, &info) == 0
            let key = OutputPlan.key(f.path)
            entries.append((key, Entry(option: f.option, path: f.path, target: target, exclusive: !existed && !f.mayReplace, atEachWrite: eachWrite.contains(key))))
        }
        together = plan.commitsTogether
    }

    func index(of destination: String) -> Int {
        let key = OutputPlan.key(destination)
        guard let i = entries.firstIndex(where: { $0.key == key }) else {
            preconditionFailure("OutputFile.write(to: \(destination)): not one of the command's declared outputs (\(entries.map(\.entry.path)))")
        }
        return i
    }

    func write(to destination: String, _ body: (String) throws -> Void) throws {
        let i = index(of: destination)
        let target = entries[i].entry.target
        let dir = OutputFile.folder(of: target)
        let temporaryFolder = try newFolders.firstIndex(where: { $0.target == dir }).map { try staging(for: $0) } ?? dir
        let temporary = temporaryFolder + "/." + URL(fileURLWithPath: target).lastPathComponent + OutputFile.temporaryMarker
            + "\(ProcessInfo.processInfo.processIdentifier)-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        do { try OutputFile.fill(temporary, for: destination, body) } catch {
            unlink(temporary)
            throw error
        }
        if together && !entries[i].entry.atEachWrite {
            if let old = entries[i].entry.staged { unlink(old) }
            entries[i].entry.staged = temporary
            return
        }
        do {
            try commit(temporary, entry: &entries[i].entry, backup: nil)
            unlink(temporary)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// The staging folder for the files of a folder output that does not exist yet (beside it, so on its file system).
    func staging(for k: Int) throws -> String {
        if let s = newFolders[k].staging { return s }
        let s = OutputFile.temporaryPath(for: newFolders[k].target)
        guard mkdir(s, 0o777) == 0 else {
            throw DDPMError(.outputRefused, "\(newFolders[k].option) \(newFolders[k].path): could not be written: \(OutputFile.reason(errno))")
        }
        newFolders[k].staging = s
        return s
    }

    /// Puts one finished temporary in place: link(2) for an exclusive first creation, else rename(2) (after
    /// linking the replaced file to `backup`, when given, so that a later failure can restore it).
    func commit(_ temporary: String, entry e: inout Entry, backup: String?) throws {
        Self.holdBeforeCommit()
        if e.exclusive && !e.created {
            guard link(temporary, e.target) == 0 else {
                let code = errno
                if code == EEXIST {
                    throw DDPMError(.outputRefused, "\(e.option) \(e.path): was created by another process after this run checked it; it is kept (with --force the last writer wins)")
                }
                throw DDPMError(.outputRefused, "\(e.option) \(e.path): could not be written: \(OutputFile.reason(code))")
            }
        } else {
            var old = stat()
            if stat(e.target, &old) == 0, (old.st_mode & S_IFMT) == S_IFREG {
                chmod(temporary, old.st_mode & 0o7777)
                if let backup { _ = link(e.target, backup) }
            }
            guard rename(temporary, e.target) == 0 else {
                throw DDPMError(.outputRefused, "\(e.option) \(e.path): could not move the finished file into place: \(OutputFile.reason(errno))")
            }
        }
        e.created = true
    }

    /// Commits every staged output, or none: a failure undoes the commits before it (restoring replaced files).
    func finish() throws {
        guard together else { return }
        var done: [(index: Int, backup: String?)] = [], madeFolders: [String] = []
        do {
            for f in newFolders where f.staging != nil {
                Self.holdBeforeCommit()
                guard mkdir(f.target, 0o777) == 0 else {
                    let code = errno
                    if code == EEXIST {
                        throw DDPMError(.outputRefused, "\(f.option) \(f.path): was created by another process after this run checked it; it is kept")
                    }
                    throw DDPMError(.outputRefused, "\(f.option) \(f.path): could not be written: \(OutputFile.reason(code))")
                }
                madeFolders.append(f.target)
            }
            for i in entries.indices {
                guard let temporary = entries[i].entry.staged else { continue }
                let backup = OutputFile.temporaryPath(for: entries[i].entry.target)
                try commit(temporary, entry: &entries[i].entry, backup: backup)
                done.append((i, FileManager.default.fileExists(atPath: backup) ? backup : nil))
            }
        } catch {
            for (i, backup) in done.reversed() {
                if let backup { rename(backup, entries[i].entry.target) } else { unlink(entries[i].entry.target) }
            }
            for f in madeFolders.reversed() { rmdir(f) }
            abandon()
            throw error
        }
        for (_, backup) in done { if let backup { unlink(backup) } }
        abandon()
    }

    /// Removes every staged temporary and staging folder.
    func abandon() {
        for i in entries.indices { if let s = entries[i].entry.staged { unlink(s); entries[i].entry.staged = nil } }
        for f in newFolders { if let s = f.staging { try? FileManager.default.removeItem(atPath: s) } }
    }

    /// A test hook, so that a test can line up two runs at the moment of committing without timing: when the
    /// environment variable `DDPM_HOLD_BEFORE_COMMIT` names a path P, the first commit of the run creates
    /// `P.<pid>` and waits until P exists.
    static func holdBeforeCommit() {
        guard let gate = ProcessInfo.processInfo.environment["DDPM_HOLD_BEFORE_COMMIT"], !held else { return }
        held = true
        FileManager.default.createFile(atPath: gate + ".\(ProcessInfo.processInfo.processIdentifier)", contents: nil)
        while !FileManager.default.fileExists(atPath: gate) { usleep(2_000) }
    }
    nonisolated(unsafe) static var held = false
}

extension OutputFile {
    /// A size in bytes for people: "6.10 GiB".
    public static func describe(bytes: Double) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = bytes, k = 0
        while v >= 1024 && k < units.count - 1 { v /= 1024; k += 1 }
        return k == 0 ? "\(Int(v)) bytes" : String(format: "%.2f %@", v, units[k])
    }
}
