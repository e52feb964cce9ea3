import Testing
import Tensors

/// Draws a seeded tensor; `range` keeps inputs away from kinks and singularities.
func randomTensor(_ shape: [Int], seed: UInt64, in range: ClosedRange<Double> = -1...1) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return Tensor.randomUniform(shape, in: range, generator: &rng)
}

/// Runs the gradient checker and records a test issue with the checker's full report when it fails.
/// Prints every result so the worst ratio of the run is visible in the log.
@discardableResult
func expectGradient(_ name: String, _ inputs: [Tensor], tolerance: Tolerance = .operation,
                    mode: GradientCheck.Mode = .fullJacobian, _ f: () -> Tensor,
                    sourceLocation: SourceLocation = #_sourceLocation) -> GradientCheck.Result {
    let r = GradientCheck.check(name, inputs: inputs, tolerance: tolerance, mode: mode, f)
    print("gradcheck \(r)")
    #expect(r.passed, "\(r)", sourceLocation: sourceLocation)
    return r
}
