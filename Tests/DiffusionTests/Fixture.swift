import TestSupport
import Tensors
import Testing

/// `Fixtures/diffusion.h5`, written by `Fixtures/make_diffusion_fixtures.py` (numpy, independent of this code).
enum DiffusionFixture {
    static let file = FixtureFile("diffusion.h5")
    static func tensor(_ name: String) -> Tensor { file.tensor(name) }
    static func values(_ name: String) -> [Double] { file.values(name) }
    static func ints(_ name: String) -> [Int] { file.ints(name) }
}

/// Compares against a dataset of `Fixtures/diffusion.h5`, prints the worst error, and expects a pass.
@discardableResult
func expectMatches(_ actual: Tensor, _ dataset: String, tolerance: Tolerance = .equation,
                   sourceLocation: SourceLocation = #_sourceLocation) -> Comparison {
    DiffusionFixture.file.expectMatches(actual, dataset, tolerance: tolerance, sourceLocation: sourceLocation)
}

@discardableResult
func expectMatches(_ actual: [Double], _ dataset: String, tolerance: Tolerance = .equation,
                   sourceLocation: SourceLocation = #_sourceLocation) -> Comparison {
    DiffusionFixture.file.expectMatches(actual, dataset, tolerance: tolerance, sourceLocation: sourceLocation)
}
