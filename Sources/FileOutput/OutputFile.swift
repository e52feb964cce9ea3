// ─── One way to write a file ─────────────────────────────────────────────────────────────────────────
//
// Every file the package writes (HDF5 checkpoints, golden files and samples, PNG grids, the demo's report)
// goes through this one helper, which keeps these rules:
//
// 1. Atomic: the bytes go to a temporary file in the destination's own folder, named
//    `.<name>.ddpm-tmp-<pid>-<random>`, which is renamed over the destination only when complete. A failure
//    (or a kill) never leaves a half-written destination.
// 2. Tidy: before writing into a folder, temporary files of that name pattern whose process is no longer
//    alive are removed (a `kill -9` leaves one behind; the next write into the folder removes it).
// 3. Links and modes are kept: a symbolic link is written through to its final target (the link stays a
//    link), and a replaced file keeps its permission bits.
// 4. Checked before work: ``OutputFile/check(_:mayReplace:inputs:)`` refuses, before anything is computed,
//    a destination whose folder is missing or not writable, a folder, one of the run's inputs, or an
//    existing file when replacing was not allowed. It names the path and what is wrong; it never names a
//    command-line option (the command adds that).
//
// Only Foundation and `Errors`; knows nothing of HDF5, PNG or diffusion.

import Errors
import Foundation

public enum OutputFile {
    /// The marker in every temporary file's name: `.<name>.ddpm-tmp-<pid>-<random>`.
    public static let temporaryMarker = ".ddpm-tmp-"

    // MARK: Paths

    /// The path a write to `path` really changes: symbolic links are followed to their final target
    /// (a dangling link resolves to the path it points at). Other paths are returned as given.
    public static func resolve(_ path: String) -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK,
                  let target = try? FileManager.default.destinationOfSymbolicLink(atPath: current) else { return current }
            current = target.hasPrefix("/") ? target : (folder(of: current) + "/" + target)
        }
        return current
    }

    /// The folder holding `path` ("." for a bare name).
    public static func folder(of path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().path
    }

    /// Whether `a` and `b` are the same existing file (same device and inode, links followed).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    // MARK: Checks before work

    /// Refuses, with a ``DDPMError`` of kind `.outputRefused`, an output that must not or cannot be written:
    /// an empty path; a missing, non-folder or read-only folder; a folder as the destination; a destination
    /// that is one of `inputs` (links followed); or an existing file when `mayReplace` is false.
    /// Also removes stale temporary files of dead processes in the destination's folder.
    public static func check(_ path: String, mayReplace: Bool, inputs: [String] = []) throws {
        guard !path.isEmpty else { throw DDPMError(.outputRefused, "the output path is empty") }
        let target = resolve(path)
        let dir = folder(of: target)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder) else {
            throw DDPMError(.outputRefused, "\(path): the folder '\(dir)' does not exist")
        }
        guard isFolder.boolValue else { throw DDPMError(.outputRefused, "\(path): '\(dir)' is not a folder") }
        guard access(dir, W_OK) == 0 else { throw DDPMError(.outputRefused, "\(path): the folder '\(dir)' is not writable") }
        if FileManager.default.fileExists(atPath: target, isDirectory: &isFolder) {
            guard !isFolder.boolValue else { throw DDPMError(.outputRefused, "\(path): is a folder, expected a file name") }
            if let input = inputs.first(where: { sameFile($0, target) }) {
                throw DDPMError(.outputRefused, "\(path): is also an input (\(input)); an output never replaces an input")
            }
            guard mayReplace else { throw DDPMError(.outputRefused, "\(path): exists and was not written by this run; it is kept") }
        }
        removeStaleTemporaries(in: dir)
    }

    /// Refuses two outputs of one run that are the same file (or the same path).
    public static func checkDistinct(_ a: String, _ b: String) throws {
        let ra = resolve(a), rb = resolve(b)
        if URL(fileURLWithPath: ra).standardizedFileURL.path == URL(fileURLWithPath: rb).standardizedFileURL.path || sameFile(ra, rb) {
            throw DDPMError(.outputRefused, "\(a) and \(b) are the same file; each output needs its own")
        }
    }

    // MARK: Writing

    /// A fresh temporary path in the folder of `destination` (already resolved), with the recognised name.
    public static func temporaryPath(for destination: String) -> String {
        let url = URL(fileURLWithPath: destination)
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return folder(of: destination) + "/." + url.lastPathComponent + temporaryMarker
            + "\(ProcessInfo.processInfo.processIdentifier)-" + random
    }

    /// Writes `destination` atomically: `body` creates and fills the temporary file whose path it is given;
    /// the file is then flushed to disk, given the replaced file's mode, and renamed over the destination
    /// (through any symbolic link). If `body` or any step fails, the temporary file is removed, the
    /// destination is untouched, and the error is rethrown.
    public static func write(to destination: String, _ body: (String) throws -> Void) throws {
        guard !destination.isEmpty else { throw DDPMError(.outputRefused, "the output path is empty") }
        let target = resolve(destination)
        let dir = folder(of: target)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder), isFolder.boolValue else {
            throw DDPMError(.outputRefused, "\(destination): the folder '\(dir)' does not exist")
        }
        removeStaleTemporaries(in: dir)
        let temporary = temporaryPath(for: target)
        do {
            try body(temporary)
            try commit(temporary, to: destination)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Moves a finished file (or folder) at `temporary` over `destination` (through any symbolic link),
    /// after flushing it and giving it the mode of the file it replaces. `temporary` must be in the same
    /// file system as the destination (the helpers above put it in the same folder).
    public static func commit(_ temporary: String, to destination: String) throws {
        let target = resolve(destination)
        var old = stat(), info = stat()
        guard stat(temporary, &info) == 0 else {
            throw DDPMError(.outputRefused, "\(destination): the finished file is missing (\(String(cString: strerror(errno))))")
        }
        if (info.st_mode & S_IFMT) == S_IFREG {
            let fd = open(temporary, O_RDONLY)
            if fd >= 0 { fsync(fd); close(fd) }
            if stat(target, &old) == 0, (old.st_mode & S_IFMT) == S_IFREG { chmod(temporary, old.st_mode & 0o7777) }
        }
        guard rename(temporary, target) == 0 else {
            throw DDPMError(.outputRefused, "\(destination): could not move the finished file into place: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Stale temporaries

    /// The process id in a temporary name written by this helper (`.<name>.ddpm-tmp-<pid>-<hex>`) or by
    /// earlier versions of this package (`.<name>.tmp-<pid>-<decimal>`); nil for any other name.
    public static func temporaryOwner(_ name: String) -> Int32? {
        guard name.hasPrefix(".") else { return nil }
        for (marker, digits) in [(temporaryMarker, "0123456789abcdef"), (".tmp-", "0123456789")] {
            guard let range = name.range(of: marker, options: .backwards), range.lowerBound > name.index(after: name.startIndex) else { continue }
            let parts = name[range.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, !parts[1].isEmpty,
                  parts[1].allSatisfy({ digits.contains($0) }) else { continue }
            return pid
        }
        return nil
    }

    /// Whether a process with this id is alive (or exists but belongs to someone else).
    static func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    /// Removes the temporary files (and folders) in `folder` whose owning process is dead. Returns their names.
    @discardableResult
    public static func removeStaleTemporaries(in folder: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var removed: [String] = []
        for name in names {
            guard let pid = temporaryOwner(name), !isAlive(pid) else { continue }
            if (try? FileManager.default.removeItem(atPath: folder + "/" + name)) != nil { removed.append(name) }
        }
        return removed
    }
}
