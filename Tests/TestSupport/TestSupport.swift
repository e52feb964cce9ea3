// Shared by every test target: fixture paths, temporary folders, the gradient-check and fixture
// expectations, and matching thrown errors by kind. Nothing here computes an expected value.

import Foundation
import HDF5
import Tensors
import Testing

/// The repository's `Fixtures/` folder (found from this file's path, so tests run from any directory).
public let fixturesFolder: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// The repository's root folder.
public let repositoryRoot: String = URL(fileURLWithPath: fixturesFolder).deletingLastPathComponent().path

/// A fixture file written by one of the independent Python generators in `Fixtures/`.
public final class FixtureFile: Sendable {
    public let path: String
    nonisolated(unsafe) let file: HDF5File   // read-only after opening; HDF5 is built thread-safe

    /// Opens `Fixtures/<name>`; a missing or unreadable fixture stops the test run with its path.
    public init(_ name: String) {
        path = fixturesFolder + "/" + name
        do { file = try HDF5File(path: path) } catch { preconditionFailure("fixture \(path): \(error)") }
    }

    public func tensor(_ dataset: String) -> Tensor {
        let a = read(dataset)
        return Tensor(shape: a.shape, data: a.values)
    }
    public func values(_ dataset: String) -> [Double] { read(dataset).values }
    public func ints(_ dataset: String) -> [Int] {
        do { return try file.readInt64s(dataset).values.map { Int($0) } } catch { preconditionFailure("fixture \(path): \(error)") }
    }
    public func scalar(_ dataset: String) -> Double { values(dataset)[0] }
    public func exists(_ object: String) -> Bool { file.exists(object) }
    public func doubleAttribute(_ name: String, of object: String = "/") -> Double {
        do { return try file.doubleAttribute(name, of: object) } catch { preconditionFailure("fixture \(path): \(error)") }
    }
    public func int64Attribute(_ name: String, of object: String = "/") -> Int64 {
        do { return try file.int64Attribute(name, of: object) } catch { preconditionFailure("fixture \(path): \(error)") }
    }
    public func stringAttribute(_ name: String, of object: String = "/") -> String {
        do { return try file.stringAttribute(name, of: object) } catch { preconditionFailure("fixture \(path): \(error)") }
    }
    public func doubleArrayAttribute(_ name: String, of object: String = "/") -> [Double] {
        do { return try file.doubleArrayAttribute(name, of: object) } catch { preconditionFailure("fixture \(path): \(error)") }
    }
    public func int64ArrayAttribute(_ name: String, of object: String = "/") -> [Int64] {
        do { return try file.int64ArrayAttribute(name, of: object) } catch { preconditionFailure("fixture \(path): \(error)") }
    }
    /// The members of a group, sorted by name.
    public func members(_ group: String) -> [String] {
        do { return try file.members(ofGroup: group) } catch { preconditionFailure("fixture \(path): \(error)") }
    }
    private func read(_ dataset: String) -> HDF5Array<Double> {
        do { return try file.readDoubles(dataset) } catch { preconditionFailure("fixture \(path): \(error)") }
    }

    /// Compares with a dataset of this file, prints the comparison (its worst error) and expects a pass.
    @discardableResult
    public func expectMatches(_ actual: Tensor, _ dataset: String, tolerance: Tolerance = .equation,
                              sourceLocation: SourceLocation = #_sourceLocation) -> Comparison {
        let c = Comparison(dataset, actual: actual, expected: tensor(dataset), tolerance: tolerance)
        print("fixture \(c)")
        #expect(c.passed, "\(c)", sourceLocation: sourceLocation)
        return c
    }

    @discardableResult
    public func expectMatches(_ actual: [Double], _ dataset: String, tolerance: Tolerance = .equation,
                              sourceLocation: SourceLocation = #_sourceLocation) -> Comparison {
        let c = Comparison(dataset, actual: actual, expected: values(dataset), tolerance: tolerance)
        print("fixture \(c)")
        #expect(c.passed, "\(c)", sourceLocation: sourceLocation)
        return c
    }
}

/// The one folder of this test process under the system's temporary folder that every ``scratchFolder(_:)``
/// is made in; it is removed with everything in it when the process exits, so a run leaves nothing behind.
/// (A child process of an exit test that makes scratch folders gets its own, named by its own process id.)
private let scratchRoot: String = {
    let path = NSTemporaryDirectory() + "ddpm-tests-\(getpid())-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
    return path
}()

/// A new empty folder inside this test process's scratch root (removed when the process exits).
public func scratchFolder(_ label: String = "ddpm-tests") -> String {
    let path = scratchRoot + "/\(label)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Draws a seeded uniform tensor; `range` keeps inputs away from kinks and singularities.
public func randomTensor(_ shape: [Int], seed: UInt64, in range: ClosedRange<Double> = -1...1) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return Tensor.randomUniform(shape, in: range, generator: &rng)
}

/// Runs the gradient checker, prints its result (so the worst ratio of a run is visible in the log) and
/// records an issue with the checker's full report when it fails.
@discardableResult
public func expectGradient(_ name: String, _ inputs: [Tensor], tolerance: Tolerance = .operation,
                           mode: GradientCheck.Mode = .fullJacobian, _ f: () -> Tensor,
                           sourceLocation: SourceLocation = #_sourceLocation) -> GradientCheck.Result {
    let r = GradientCheck.check(name, inputs: inputs, tolerance: tolerance, mode: mode, f)
    print("gradcheck \(r)")
    #expect(r.passed, "\(r)", sourceLocation: sourceLocation)
    return r
}

/// Expects every value within `bound` units in the last place of its expected value (equal infinities
/// count as 0), prints the worst distance, and returns it.
@discardableResult
public func expectULP(_ actual: [Double], _ expected: [Double], _ name: String, bound: UInt64 = 4,
                      sourceLocation: SourceLocation = #_sourceLocation) -> UInt64 {
    #expect(actual.count == expected.count, "\(name): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
    var worst: UInt64 = 0
    for (a, e) in zip(actual, expected) where !(a == e) { worst = max(worst, ulpDistance(a, e)) }
    print("fixture \(name): worst \(worst) ULP over \(expected.count) values (bound \(bound))")
    #expect(worst <= bound, "\(name): \(worst) ULP", sourceLocation: sourceLocation)
    return worst
}

/// Expects `body` to throw a ``DDPMError`` of `kind` whose message contains every string of `mentioning`
/// (the names a person needs to see: the thing, the expected and the found value). Returns the error.
@discardableResult
public func expectError<R>(_ kind: DDPMError.Kind, mentioning: [String] = [], sourceLocation: SourceLocation = #_sourceLocation,
                           _ body: () throws -> R) -> DDPMError? {
    do {
        _ = try body()
        Issue.record("expected a DDPMError of kind \(kind), nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let e as DDPMError {
        #expect(e.kind == kind, "expected kind \(kind), got \(e.kind): \(e.message)", sourceLocation: sourceLocation)
        for s in mentioning { #expect(e.message.contains(s), "message '\(e.message)' does not mention '\(s)'", sourceLocation: sourceLocation) }
        return e
    } catch {
        Issue.record("expected a DDPMError of kind \(kind), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
