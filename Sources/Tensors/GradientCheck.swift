// Finite-difference gradient checking: the test every derivative in this project must pass.

/// Checks reverse-mode derivatives against central differences.
///
/// Numeric derivative of output component `y` with respect to input element `x_j`:
///
///     ∂y/∂x_j ≈ (y(x + h e_j) − y(x − h e_j)) / 2h,     h = 1e-6 · max(1, |x_j|)
///
/// An element passes iff `|analytic − numeric| ≤ atol + rtol·|numeric|`. The result reports the worst
/// ratio `|a − n| / (atol + rtol·|n|)` (≤ 1 passes) and where it occurred.
///
/// - ``Mode/fullJacobian``: every entry of the Jacobian of every input (for small inputs).
/// - ``Mode/directional(seed:sampledCoordinates:)``: for each input tensor separately, a seeded random
///   cotangent `v` and direction `u`; compares `vᵀJu` from one backward pass with the central difference
///   of `v·f` along `u` (step `1e-6 · max(1, ‖x‖∞)`), then a few seeded coordinates of `vᵀJ`.
///
/// The function must recompute its output from the input tensors' current values on every call and
/// must not draw random numbers (fix noise and timesteps outside it).
public enum GradientCheck {
    public enum Mode: Sendable {
        case fullJacobian
        case directional(seed: UInt64, sampledCoordinates: Int)
    }

    public struct Result: Sendable, CustomStringConvertible {
        public var name: String
        public var tolerance: Tolerance
        /// Number of (analytic, numeric) pairs compared.
        public var compared = 0
        public var worstRatio = 0.0
        public var worstLocation = "nothing compared"
        public var worstAnalytic = 0.0, worstNumeric = 0.0
        public var passed: Bool { compared > 0 && worstRatio <= 1 }
        public var description: String {
            "\(name): \(passed ? "pass" : "FAIL") — \(compared) derivatives, worst ratio \(formatRatio(worstRatio)) at \(worstLocation) " +
                "(analytic \(worstAnalytic), numeric \(worstNumeric)), \(tolerance)"
        }
        mutating func record(analytic a: Double, numeric n: Double, at location: @autoclosure () -> String) {
            compared += 1
            let r = tolerance.ratio(actual: a, expected: n)
            if compared == 1 || r > worstRatio { worstRatio = r; worstAnalytic = a; worstNumeric = n; worstLocation = location() }
        }
    }

    /// Runs the check. `inputs` are leaves; their `requiresGrad` is set for the check and restored after.
    public static func check(_ name: String, inputs: [Tensor], tolerance: Tolerance = .operation,
                             mode: Mode = .fullJacobian, _ f: () -> Tensor) -> Result {
        let previous = inputs.map(\.requiresGrad)
        for x in inputs { x.zeroGrad(); x.setRequiresGrad(true) }
        defer { for (x, p) in zip(inputs, previous) { x.zeroGrad(); x.setRequiresGrad(p) } }
        var result = Result(name: name, tolerance: tolerance)
        switch mode {
        case .fullJacobian: full(&result, inputs, f)
        case let .directional(seed, sampled): directional(&result, inputs, seed, sampled, f)
        }
        return result
    }

    /// Checks a gradient computed elsewhere (`gradient`, x's shape, e.g. an input gradient that a function returns
    /// rather than leaves in `.grad`) against central differences of the scalar `f` at every element of `x`:
    /// numeric_j = (f(x + h e_j) − f(x − h e_j)) / 2h with h as above, f evaluated without a graph.
    public static func compare(_ name: String, gradient: [Double], at x: Tensor, tolerance: Tolerance = .operation,
                               _ f: () -> Double) -> Result {
        precondition(gradient.count == x.count, "GradientCheck.compare: \(gradient.count) gradient values for x of shape \(x.shape)")
        var result = Result(name: name, tolerance: tolerance)
        for j in 0..<x.count {
            let original = x.data[j], h = step(original)
            x.data[j] = original + h; let plus = withoutGradients(f)
            x.data[j] = original - h; let minus = withoutGradients(f)
            x.data[j] = original
            result.record(analytic: gradient[j], numeric: (plus - minus) / (2 * h), at: "input \(x.shape) element \(j)")
        }
        return result
    }

    /// Evaluates `f` with `x[j]` moved by `delta`, restoring it afterwards.
    static func evaluate(_ f: () -> Tensor, moving x: Tensor, at j: Int, by delta: Double) -> [Double] {
        let original = x.data[j]
        x.data[j] = original + delta
        let y = withoutGradients { f().data }
        x.data[j] = original
        return y
    }

    static func step(_ x: Double) -> Double { 1e-6 * max(1, abs(x)) }

    static func full(_ result: inout Result, _ inputs: [Tensor], _ f: () -> Tensor) {
        let outputCount = withoutGradients { f().count }
        // Analytic Jacobian rows: one backward pass per output component.
        var rows: [[[Double]]] = []  // [output][input] -> gradient values
        for i in 0..<outputCount {
            for x in inputs { x.zeroGrad() }
            let y = f()
            var seed = [Double](repeating: 0, count: outputCount); seed[i] = 1
            if y.requiresGrad { y.backward(seed: seed) }
            rows.append(inputs.map { $0.gradValues ?? [Double](repeating: 0, count: $0.count) })
        }
        for (k, x) in inputs.enumerated() {
            for j in 0..<x.count {
                let h = step(x.data[j])
                let plus = evaluate(f, moving: x, at: j, by: h), minus = evaluate(f, moving: x, at: j, by: -h)
                for i in 0..<outputCount {
                    let numeric = (plus[i] - minus[i]) / (2 * h)
                    result.record(analytic: rows[i][k][j], numeric: numeric,
                                  at: "input \(k) \(x.shape) element \(j), output element \(i)")
                }
            }
        }
    }

    static func directional(_ result: inout Result, _ inputs: [Tensor], _ seed: UInt64, _ sampled: Int, _ f: () -> Tensor) {
        var rng = RandomGenerator(seed: seed)
        let outputCount = withoutGradients { f().count }
        let v = rng.normals(outputCount)
        func projected() -> Double { withoutGradients { zip(f().data, v).reduce(0) { $0 + $1.0 * $1.1 } } }
        for x in inputs { x.zeroGrad() }
        let y = f()
        if y.requiresGrad { y.backward(seed: v) }
        for (k, x) in inputs.enumerated() {
            let g = x.gradValues ?? [Double](repeating: 0, count: x.count)
            // One direction u over the whole tensor, scaled so that ‖u‖₂ ≈ 1.
            let u = rng.normals(x.count).map { $0 / Double(x.count).squareRoot() }
            let analytic = zip(g, u).reduce(0) { $0 + $1.0 * $1.1 }
            let h = 1e-6 * max(1, x.data.reduce(0) { max($0, abs($1)) })
            let original = x.data
            x.data = zip(original, u).map { $0 + h * $1 }
            let plus = projected()
            x.data = zip(original, u).map { $0 - h * $1 }
            let minus = projected()
            x.data = original
            result.record(analytic: analytic, numeric: (plus - minus) / (2 * h), at: "input \(k) \(x.shape) direction vᵀJu")
            for _ in 0..<min(sampled, x.count) {
                let j = rng.nextInt(below: x.count)
                let hj = step(x.data[j])
                x.data[j] = original[j] + hj; let p = projected()
                x.data[j] = original[j] - hj; let m = projected()
                x.data[j] = original[j]
                result.record(analytic: g[j], numeric: (p - m) / (2 * hj), at: "input \(k) \(x.shape) element \(j) of vᵀJ")
            }
        }
    }
}
