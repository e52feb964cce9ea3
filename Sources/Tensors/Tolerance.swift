// The one comparison rule used everywhere: |actual − expected| ≤ atol + rtol·|expected|.

import Foundation

/// An elementwise tolerance in numpy's `assert_allclose` convention, the reference in the
/// `expected` slot.
public struct Tolerance: Sendable, Equatable, CustomStringConvertible {
    public var rtol: Double, atol: Double
    public init(rtol: Double, atol: Double) {
        precondition(rtol >= 0 && atol >= 0 && (rtol > 0 || atol > 0), "Tolerance: rtol \(rtol) and atol \(atol) must be ≥ 0 and not both 0")
        self.rtol = rtol; self.atol = atol
    }
    /// Single-operation gradient checks: rtol 1e-6, atol 1e-8.
    public static let operation = Tolerance(rtol: 1e-6, atol: 1e-8)
    /// Whole-network gradient checks: rtol 1e-5, atol 1e-7.
    public static let network = Tolerance(rtol: 1e-5, atol: 1e-7)
    /// Closed-form equations against an independent oracle: rtol 1e-13.
    public static let equation = Tolerance(rtol: 1e-13, atol: 0)
    /// Network outputs against an independent implementation: rtol 1e-10, atol 1e-12.
    public static let independentImplementation = Tolerance(rtol: 1e-10, atol: 1e-12)

    /// `|a − e| / (atol + rtol·|e|)`: ≤ 1 passes. Infinite when the bound is 0 and the values differ.
    public func ratio(actual a: Double, expected e: Double) -> Double {
        if a == e { return 0 }
        if a.isNaN || e.isNaN { return .infinity }
        let bound = atol + rtol * abs(e)
        return bound == 0 ? .infinity : abs(a - e) / bound
    }
    public var description: String { "rtol \(rtol), atol \(atol)" }
}

/// The outcome of comparing two arrays elementwise: the worst element and its numbers.
public struct Comparison: Sendable, CustomStringConvertible {
    public var name: String
    public var tolerance: Tolerance
    public var count: Int
    /// Index of the element with the largest ratio, or nil when empty.
    public var worstIndex: Int?
    public var worstActual = 0.0, worstExpected = 0.0
    /// Largest `|a − e| / (atol + rtol·|e|)`; the comparison passes iff this is ≤ 1.
    public var worstRatio = 0.0
    public var maxAbsoluteError = 0.0
    /// Largest `|a − e| / |e|` over elements with `e ≠ 0`.
    public var maxRelativeError = 0.0
    public var shapeMismatch: String?
    /// Mean of `|a − e|` over all elements.
    public var meanAbsoluteError = 0.0
    /// The 99th percentile of `|a − e|` (nearest rank: the ⌈0.99·m⌉-th smallest of the m errors).
    public var absoluteError99 = 0.0
    /// Elements with `|a − e| > atol + rtol·|e|` (NaN counts as beyond).
    public var countBeyondTolerance = 0
    /// `‖a − e‖₂` and `‖e‖₂` over the whole array (for normwise and grouped comparisons).
    public var errorNorm = 0.0, expectedNorm = 0.0
    /// Normwise relative error `‖a − e‖₂ / ‖e‖₂`: 0 when equal, infinite when `e = 0` and they differ.
    public var normwiseRelativeError: Double {
        if errorNorm == 0 { return 0 }
        return expectedNorm == 0 ? .infinity : errorNorm / expectedNorm
    }
    public var passed: Bool { shapeMismatch == nil && worstRatio <= 1 }

    public var description: String {
        if let shapeMismatch { return "\(name): \(shapeMismatch)" }
        guard let i = worstIndex else { return "\(name): empty, nothing compared" }
        return "\(name): \(passed ? "pass" : "FAIL") — \(count) elements, worst ratio \(formatRatio(worstRatio)) at element \(i) " +
            "(actual \(worstActual), expected \(worstExpected)), max abs error \(maxAbsoluteError), max rel error \(maxRelativeError), \(tolerance)"
    }

    /// Compares `actual` with `expected` elementwise under `tolerance`.
    public init(_ name: String, actual: [Double], expected: [Double], tolerance: Tolerance) {
        self.name = name; self.tolerance = tolerance; self.count = expected.count
        guard actual.count == expected.count else {
            shapeMismatch = "\(actual.count) values, expected \(expected.count)"; return
        }
        var errors = [Double](repeating: 0, count: expected.count)
        var sumError = 0.0, sumSquaredError = 0.0, sumSquaredExpected = 0.0
        for i in 0..<expected.count {
            let a = actual[i], e = expected[i]
            let r = tolerance.ratio(actual: a, expected: e)
            let abserr = (a == e) ? 0 : abs(a - e)
            maxAbsoluteError = max(maxAbsoluteError, abserr.isNaN ? .infinity : abserr)
            if e != 0 { maxRelativeError = max(maxRelativeError, abserr / abs(e)) }
            if worstIndex == nil || r > worstRatio { worstIndex = i; worstRatio = r; worstActual = a; worstExpected = e }
            let d = abserr.isNaN ? Double.infinity : abserr
            errors[i] = d; sumError += d; sumSquaredError += d * d; sumSquaredExpected += e * e
            if r > 1 { countBeyondTolerance += 1 }
        }
        if !errors.isEmpty {
            meanAbsoluteError = sumError / Double(errors.count)
            errors.sort()
            absoluteError99 = errors[max(0, Int((0.99 * Double(errors.count)).rounded(.up)) - 1)]
        }
        errorNorm = sumSquaredError.squareRoot(); expectedNorm = sumSquaredExpected.squareRoot()
    }

    /// Compares two tensors, shapes included.
    public init(_ name: String, actual: Tensor, expected: Tensor, tolerance: Tolerance) {
        self.init(name, actual: actual.data, expected: expected.data, tolerance: tolerance)
        if actual.shape != expected.shape { shapeMismatch = "shape \(actual.shape), expected \(expected.shape)" }
    }
}

func formatRatio(_ r: Double) -> String {
    r == 0 ? "0" : String(format: "%.3g", r)
}

/// The number of representable doubles between `a` and `b` (0 when equal; `UInt64.max` for NaN).
/// Used for the schedule tables, which are compared to the oracle within a few ULP.
public func ulpDistance(_ a: Double, _ b: Double) -> UInt64 {
    if a == b { return 0 }
    if a.isNaN || b.isNaN { return .max }
    // Map the sign-magnitude bit patterns onto a monotone integer line.
    func ordered(_ x: Double) -> Int64 {
        let bits = Int64(bitPattern: x.bitPattern)
        return bits < 0 ? Int64.min &- bits : bits
    }
    let d = ordered(a).subtractingReportingOverflow(ordered(b))
    return d.overflow ? .max : d.partialValue.magnitude
}
