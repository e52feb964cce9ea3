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
// 4. Checked before work: ``OutputPlan`` (a command's declared inputs and outputs) refuses, before anything
//    is computed, a destination whose folder is missing, read-only or full, a folder, one of the run's
//    inputs, or an existing file when replacing was not allowed. It names the path and what is wrong.
// 5. Exclusive: while an ``OutputPlan`` runs, a destination that did not exist when it was checked is
//    created with link(2) from the finished temporary, which fails if the name exists by then: of two
//    runs writing one new file, exactly one succeeds. A replacement allowed by the plan is a rename (the
//    last writer wins). Several outputs of one plan are committed together after the work, or none.
// 6. File-system errors become one sentence naming the user's path and the cause (no space left on
//    device, read-only file system, is a directory, permission denied).
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
    /// destination is untouched, and the error is rethrown (a file-system cause as one sentence naming
    /// `destination`). Inside ``OutputPlan/run(_:)`` the destination must be one of the plan's outputs, and
    /// the plan decides when and how it is committed (exclusively, or together with the others).
    public static func write(to destination: String, _ body: (String) throws -> Void) throws {
        guard !destination.isEmpty else { throw DDPMError(.outputRefused, "the output path is empty") }
        if let session = OutputSession.current {
            try session.write(to: destination, body)
            return
        }
        let target = resolve(destination)
        let dir = folder(of: target)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder), isFolder.boolValue else {
            throw DDPMError(.outputRefused, "\(destination): the folder '\(dir)' does not exist")
        }
        removeStaleTemporaries(in: dir)
        let temporary = temporaryPath(for: target)
        do {
            try fill(temporary, for: destination, body)
            try commit(temporary, to: destination)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Runs `body` on `temporary` and flushes the file; a failure whose cause is the file system (a full or
    /// read-only device, a Foundation error with a POSIX code) is rethrown as one sentence naming `destination`.
    static func fill(_ temporary: String, for destination: String, _ body: (String) throws -> Void) throws {
        do {
            try body(temporary)
            let fd = open(temporary, O_RDONLY)
            if fd >= 0 {
                let status = fsync(fd), code = errno
                close(fd)
                if status != 0 && code != EINVAL { throw DDPMError(.outputRefused, "\(destination): could not be written: \(reason(code))") }
            }
        } catch let e as DDPMError where e.kind != .outputRefused {
            throw e   // the work's own error (bad data, an interrupt): not the file system's
        } catch {
            if let code = fileSystemCause(of: error, folder: folder(of: temporary)) {
                throw DDPMError(.outputRefused, "\(destination): could not be written: \(reason(code))")
            }
            throw error
        }
    }

    /// The errno behind a failed write: a POSIX code carried by a Foundation error, else what the folder's
    /// file system says (read-only, or no free blocks left); nil when neither explains the failure.
    static func fileSystemCause(of error: Error, folder: String) -> Int32? {
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return Int32(ns.code) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain { return Int32(underlying.code) }
        var fs = statvfs()
        guard statvfs(folder, &fs) == 0 else { return nil }
        if fs.f_flag & UInt(ST_RDONLY) != 0 { return EROFS }
        if fs.f_bavail == 0 { return ENOSPC }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileWriteOutOfSpaceError: return ENOSPC
            case NSFileWriteVolumeReadOnlyError: return EROFS
            case NSFileWriteNoPermissionError: return EACCES
            default: return nil
            }
        }
        return nil
    }

    /// The cause of a failed file-system call as words for a sentence ("no space left on device").
    public static func reason(_ code: Int32) -> String {
        switch code {
        case ENOSPC, EDQUOT: return "no space left on device"
        case EROFS: return "read-only file system"
        case EISDIR: return "is a directory"
        case EACCES: return "permission denied"
        case EPERM: return "operation not permitted (the file or folder is immutable or append-only)"
        case ENOENT: return "no such file or folder"
        case ENOTDIR: return "a part of the path is not a folder"
        case EEXIST: return "already exists"
        default: return String(cString: strerror(code))
        }
    }

    /// Moves a finished file (or folder) at `temporary` over `destination` (through any symbolic link),
    /// after flushing it and giving it the mode of the file it replaces. `temporary` must be in the same
    /// file system as the destination (the helpers above put it in the same folder).
    public static func commit(_ temporary: String, to destination: String) throws {
        let target = resolve(destination)
        var old = stat(), info = stat()
        guard stat(temporary, &info) == 0 else {
            throw DDPMError(.outputRefused, "\(destination): the finished file is missing (\(reason(errno)))")
        }
        if (info.st_mode & S_IFMT) == S_IFREG {
            let fd = open(temporary, O_RDONLY)
            if fd >= 0 { fsync(fd); close(fd) }
            if stat(target, &old) == 0, (old.st_mode & S_IFMT) == S_IFREG { chmod(temporary, old.st_mode & 0o7777) }
        }
        guard rename(temporary, target) == 0 else {
            throw DDPMError(.outputRefused, "\(destination): could not move the finished file into place: \(reason(errno))")
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
