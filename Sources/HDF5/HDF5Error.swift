import Errors

// Every failure the HDF5 layer can report, each naming the file, the object, what was expected and found.

/// An error reading or writing an HDF5 file. The description is one sentence a user can act on.
public struct HDF5Error: UserFacingError, Equatable {
    public enum Kind: Sendable, Equatable {
        case noSuchFile, notHDF5, noSuchObject, noSuchAttribute, wrongClass, wrongShape, writeFailed, libraryCall
    }
    public var kind: Kind
    public var file: String
    public var object: String
    public var detail: String

    public init(_ kind: Kind, file: String, object: String = "/", _ detail: String) {
        self.kind = kind; self.file = file; self.object = object; self.detail = detail
    }
    public var description: String { "HDF5 file '\(file)', object '\(object)': \(detail)" }
}
