// Every file type this library writes carries a `format` attribute naming it and a `version`; every
// reader checks both before reading anything else, the same way.

import HDF5

/// A file type: its `format` name, the version this library writes and the versions it reads.
public struct FileFormat: Sendable, Equatable {
    public let name: String
    public let version: Int64
    public let readableVersions: [Int64]
    /// How messages call it ("golden-file schema", "checkpoint").
    public let label: String

    /// Golden files: version 2 stores the whole diffusion configuration, version 3 may hold per-module
    /// activations and records the decoder's edge rule; version-1 and 2 files still check.
    public static let golden = FileFormat(name: "ddpm-golden", version: 3, readableVersions: [1, 2, 3], label: "golden-file schema")
    /// Training checkpoints: version 2 stores the whole diffusion configuration; version-1 files still load.
    public static let checkpoint = FileFormat(name: "ddpm-checkpoint", version: 2, readableVersions: [1, 2], label: "checkpoint")

    /// Writes the `format` and `version` attributes on the root group.
    public func stamp(_ w: HDF5Writer) throws {
        try w.setAttribute("format", name)
        try w.setAttribute("version", version)
    }

    /// Throws unless the file's `format` is this one and its `version` is readable; returns the version.
    @discardableResult
    public func check(_ file: HDF5File) throws -> Int64 {
        let found = try file.stringAttribute("format")
        guard found == name else {
            throw DDPMError(.malformedFile, "\(file.path): attribute 'format' is '\(found)', expected '\(name)'")
        }
        let v = try file.int64Attribute("version")
        guard readableVersions.contains(v) else {
            throw DDPMError(.unsupportedVersion, "\(file.path): \(label) version \(v) is not supported (expected one of \(readableVersions.map(String.init).joined(separator: ", ")))")
        }
        return v
    }
}
