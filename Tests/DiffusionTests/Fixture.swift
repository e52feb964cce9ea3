import Foundation
import HDF5
import Testing
import Tensors

/// `Fixtures/diffusion.h5`, written by `Fixtures/make_diffusion_fixtures.py` (numpy, independent of this code).
enum DiffusionFixture {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/diffusion.h5").path
    nonisolated(unsafe) static let file: HDF5File = try! HDF5File(path: path)

    static func tensor(_ name: String) -> Tensor {
        let a = try! file.readDoubles(name)
        return Tensor(shape: a.shape, data: a.values)
    }
    static func values(_ name: String) -> [Double] { try! file.readDoubles(name).values }
    static func ints(_ name: String) -> [Int] { try! file.readInt64s(name).values.map { Int($0) } }
}

/// Compares against a fixture dataset, prints the comparison (its worst error), and expects a pass.
@discardableResult
func expectMatches(_ actual: Tensor, _ dataset: String, tolerance: Tolerance = .equation,
                   sourceLocation: SourceLocation = #_sourceLocation) -> Comparison {
    let c = Comparison(dataset, actual: actual, expected: DiffusionFixture.tensor(dataset), tolerance: tolerance)
    print("fixture \(c)")
    #expect(c.passed, "\(c)", sourceLocation: sourceLocation)
    return c
}

@discardableResult
func expectMatches(_ actual: [Double], _ dataset: String, tolerance: Tolerance = .equation,
                   sourceLocation: SourceLocation = #_sourceLocation) -> Comparison {
    let c = Comparison(dataset, actual: actual, expected: DiffusionFixture.values(dataset), tolerance: tolerance)
    print("fixture \(c)")
    #expect(c.passed, "\(c)", sourceLocation: sourceLocation)
    return c
}
