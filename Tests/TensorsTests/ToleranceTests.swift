import TestSupport
import Testing
import Tensors

/// The comparison rule |a − e| ≤ atol + rtol·|e| on hand-picked numbers: differences inside rtol but
/// far outside atol pass, and the same absolute difference on a small value fails.
@Suite("The tolerance rule on hand-picked values")
struct ToleranceTests {
    let golden = Tolerance(rtol: 1e-10, atol: 1e-12)

    @Test("inside rtol, outside atol: passes (|e| = 1000, difference 5e-8, bound 1e-7 + 1e-12)")
    func relativePart() {
        let c = Comparison("large value", actual: [1000 + 5e-8], expected: [1000], tolerance: golden)
        #expect(c.passed && c.worstRatio > 0.4 && c.worstRatio < 0.6, "\(c)")
    }

    @Test("the same difference on a small value fails (|e| = 1e-3: bound 1.01e-12)")
    func smallValue() {
        let c = Comparison("small value", actual: [1e-3 + 5e-8], expected: [1e-3], tolerance: golden)
        #expect(!c.passed && c.worstRatio > 1e4, "\(c)")
    }

    @Test("at e = 0 only atol counts: 5e-13 passes, 2e-12 fails")
    func zeroExpected() {
        #expect(Comparison("zero", actual: [5e-13], expected: [0], tolerance: golden).passed)
        #expect(!Comparison("zero", actual: [2e-12], expected: [0], tolerance: golden).passed)
    }

    @Test("NaN never passes")
    func notANumber() {
        #expect(!Comparison("nan", actual: [.nan], expected: [1], tolerance: golden).passed)
    }
}
