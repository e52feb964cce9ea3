// ─── One error story ─────────────────────────────────────────────────────────────────────────────────
//
// The rule (also in the README's contributor section):
// - Anything a user's file, argument, configuration or input tensor can get wrong is a thrown error. Its
//   `kind` is for programs and tests to match; its `message` is one sentence for people that names the
//   thing, says what was expected and what was found. Library messages never name command-line flags:
//   the command adds its own context.
// - A mistake that only a programmer calling the library's internals can make (two internal tensors of
//   different shapes, a rank the caller already checked) is a `precondition` failure naming the operation
//   and both shapes.
// Every module's errors conform to `UserFacingError`, so the command prints any of them the same way.

/// An error meant for the person running the program: `description` is one self-contained sentence.
public protocol UserFacingError: Error, CustomStringConvertible, Sendable {}

/// A user-facing failure of the library above the file layer: tensors, diffusion, U-Net, training, golden files.
public struct DDPMError: UserFacingError, Equatable {
    /// What went wrong, for programs and tests to match (the message is for people and may be reworded).
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// A number or count outside its allowed range (a batch size of 0, a timestep ≥ T, a negative rate).
        case invalidValue
        /// A name that is not one of the known ones (a preset, a schedule, an output).
        case unknownName
        /// A combination of settings that cannot be built (U-Net widths, a variance type with too few steps).
        case invalidConfiguration
        /// An input whose shape does not fit (a batch, a noise tensor, a stored dataset).
        case shapeMismatch
        /// A file that is not what it claims, or lacks a part it needs (format, group, dataset, attribute).
        case malformedFile
        /// A file of a format version this library does not read.
        case unsupportedVersion
        /// Values that are not finite or not in the expected range (NaN data, data outside [0, 1]).
        case invalidData
        /// Training produced a non-finite loss or weights.
        case diverged
        /// A comparison (a golden check) found differences beyond its tolerance, or nothing to compare.
        case checkFailed
        /// An output that cannot or must not be written (it is an input, it exists, its folder is missing).
        case outputRefused
        /// A request whose estimated memory exceeds what this process may use (checked before allocating).
        case exceedsMemory
        /// Work stopped by a signal (Ctrl-C, SIGTERM); the message says what was saved.
        case interrupted
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }

    public var description: String { message }
}
