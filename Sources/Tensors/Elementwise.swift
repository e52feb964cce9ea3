// Elementwise operations. Each forward sits beside its backward, and the comment gives the derivative.

import Foundation
import Kernels

extension Tensor {
    // MARK: Binary, with broadcasting

    /// Shared machinery of the four binary operations: `f` gives the value, `dfa`/`dfb` the partial
    /// derivatives ∂f/∂a and ∂f/∂b at (a, b); gradients are summed back over broadcast axes.
    @inline(__always)  // so that each operator's f, dfa, dfb are inlined into the loops, not called per element
    static func binary(_ op: String, _ a: Tensor, _ b: Tensor,
                       _ f: (Double, Double) -> Double,
                       _ dfa: @escaping (Double, Double) -> Double,
                       _ dfb: @escaping (Double, Double) -> Double,
                       constantPartials: (a: Double, b: Double)? = nil) -> Tensor {
        let outShape = Broadcast.shape(a.shape, b.shape, op: op)
        let sa = Broadcast.strides(of: a.shape, in: outShape), sb = Broadcast.strides(of: b.shape, in: outShape)
        let av = a.data, bv = b.data, total = outShape.reduce(1, *)
        let out = uninitializedArray(total) { o in av.withUnsafeBufferPointer { pa in bv.withUnsafeBufferPointer { pb in
            if a.shape == b.shape {
                Parallel.chunks(total, work: total) { r in for i in r { o[i] = f(pa[i], pb[i]) } }
            } else if a.shape == outShape, let block = Broadcast.trailingBlock(of: b.shape, in: outShape), block > 0 {
                Parallel.chunks(total / block, work: total) { r in for q in r {  // b[q] against a block of a
                    let bq = pb[q]
                    for j in (q * block)..<((q + 1) * block) { o[j] = f(pa[j], bq) }
                } }
            } else if b.shape == outShape, let block = Broadcast.trailingBlock(of: a.shape, in: outShape), block > 0 {
                Parallel.chunks(total / block, work: total) { r in for q in r {
                    let aq = pa[q]
                    for j in (q * block)..<((q + 1) * block) { o[j] = f(aq, pb[j]) }
                } }
            } else {
                Broadcast.forEach(outShape, sa, sb) { i, ia, ib in o[i] = f(pa[ia], pb[ib]) }
            }
        } } }
        return operation(op, shape: outShape, data: out, parents: [a, b]) { g in
            var ga: [Double] = [], gb: [Double] = []
            if let c = constantPartials {
                // ∂f/∂a and ∂f/∂b are constants (±1 for add and subtract): scale g, no per-element calls.
                func scaled(_ k: Double) -> [Double] {
                    k == 1 ? g : uninitializedArray(g.count) { o in for i in 0..<g.count { o[i] = g[i] * k } }
                }
                if a.requiresGrad { ga = scaled(c.a) }
                if b.requiresGrad { gb = scaled(c.b) }
            } else if a.shape == b.shape {
                let n = g.count
                av.withUnsafeBufferPointer { pa in bv.withUnsafeBufferPointer { pb in g.withUnsafeBufferPointer { pg in
                    if a.requiresGrad {
                        ga = uninitializedArray(n) { o in Parallel.chunks(n, work: n) { r in for i in r { o[i] = pg[i] * dfa(pa[i], pb[i]) } } }
                    }
                    if b.requiresGrad {
                        gb = uninitializedArray(n) { o in Parallel.chunks(n, work: n) { r in for i in r { o[i] = pg[i] * dfb(pa[i], pb[i]) } } }
                    }
                } } }
            } else {
                ga = a.requiresGrad ? [Double](repeating: 0, count: g.count) : []
                gb = b.requiresGrad ? [Double](repeating: 0, count: g.count) : []
                av.withUnsafeBufferPointer { pa in bv.withUnsafeBufferPointer { pb in
                    Broadcast.forEach(outShape, sa, sb) { i, ia, ib in
                        if a.requiresGrad { ga[i] = g[i] * dfa(pa[ia], pb[ib]) }
                        if b.requiresGrad { gb[i] = g[i] * dfb(pa[ia], pb[ib]) }
                    }
                } }
            }
            return [a.requiresGrad ? Broadcast.reduce(ga, from: outShape, to: a.shape) : nil,
                    b.requiresGrad ? Broadcast.reduce(gb, from: outShape, to: b.shape) : nil]
        }
    }

    /// `a + b`; ∂/∂a = 1, ∂/∂b = 1.
    public static func + (a: Tensor, b: Tensor) -> Tensor { binary("add", a, b, +, { _, _ in 1 }, { _, _ in 1 }, constantPartials: (1, 1)) }
    /// `a − b`; ∂/∂a = 1, ∂/∂b = −1.
    public static func - (a: Tensor, b: Tensor) -> Tensor { binary("subtract", a, b, -, { _, _ in 1 }, { _, _ in -1 }, constantPartials: (1, -1)) }
    /// `a · b`; ∂/∂a = b, ∂/∂b = a.
    public static func * (a: Tensor, b: Tensor) -> Tensor { binary("multiply", a, b, *, { _, y in y }, { x, _ in x }) }
    /// `a / b`; ∂/∂a = 1/b, ∂/∂b = −a/b².
    public static func / (a: Tensor, b: Tensor) -> Tensor { binary("divide", a, b, /, { _, y in 1 / y }, { x, y in -x / (y * y) }) }

    // MARK: Unary

    /// Shared machinery of unary operations: `f` the value, `df(x, y)` the derivative given input x and output y.
    static func unary(_ op: String, _ a: Tensor, _ f: (Double) -> Double, _ df: @escaping (Double, Double) -> Double) -> Tensor {
        let av = a.data, n = a.count
        let out = uninitializedArray(n) { o in av.withUnsafeBufferPointer { pa in
            Parallel.chunks(n, work: 4 * n) { r in for i in r { o[i] = f(pa[i]) } }
        } }
        let y = out
        return operation(op, shape: a.shape, data: out, parents: [a]) { g in
            let ga = uninitializedArray(n) { pg in av.withUnsafeBufferPointer { pa in y.withUnsafeBufferPointer { py in g.withUnsafeBufferPointer { gg in
                Parallel.chunks(n, work: 4 * n) { r in for i in r { pg[i] = gg[i] * df(pa[i], py[i]) } }
            } } } }
            return [ga]
        }
    }

    /// `a + c`; ∂/∂a = 1.
    public static func + (a: Tensor, c: Double) -> Tensor { unary("add scalar", a, { $0 + c }, { _, _ in 1 }) }
    public static func + (c: Double, a: Tensor) -> Tensor { a + c }
    /// `a − c`; ∂/∂a = 1.
    public static func - (a: Tensor, c: Double) -> Tensor { unary("subtract scalar", a, { $0 - c }, { _, _ in 1 }) }
    /// `c − a`; ∂/∂a = −1.
    public static func - (c: Double, a: Tensor) -> Tensor { unary("scalar subtract", a, { c - $0 }, { _, _ in -1 }) }
    /// `a · c`; ∂/∂a = c.
    public static func * (a: Tensor, c: Double) -> Tensor { unary("multiply scalar", a, { $0 * c }, { _, _ in c }) }
    public static func * (c: Double, a: Tensor) -> Tensor { a * c }
    /// `a / c`; ∂/∂a = 1/c.
    public static func / (a: Tensor, c: Double) -> Tensor { unary("divide scalar", a, { $0 / c }, { _, _ in 1 / c }) }
    /// `c / a`; ∂/∂a = −c/a².
    public static func / (c: Double, a: Tensor) -> Tensor { unary("scalar divide", a, { c / $0 }, { x, _ in -c / (x * x) }) }
    /// `−a`; ∂/∂a = −1.
    public static prefix func - (a: Tensor) -> Tensor { unary("negate", a, { -$0 }, { _, _ in -1 }) }

    /// `a²`; d/da = 2a.
    public func square() -> Tensor { Tensor.unary("square", self, { $0 * $0 }, { x, _ in 2 * x }) }
    /// `√a`; d/da = 1/(2√a).
    public func sqrt() -> Tensor { Tensor.unary("sqrt", self, { Foundation.sqrt($0) }, { _, y in 0.5 / y }) }
    /// `eᵃ`; d/da = eᵃ.
    public func exp() -> Tensor { Tensor.unary("exp", self, { Foundation.exp($0) }, { _, y in y }) }
    /// `ln a`; d/da = 1/a.
    public func log() -> Tensor { Tensor.unary("log", self, { Foundation.log($0) }, { x, _ in 1 / x }) }
    /// `sin a`; d/da = cos a.
    public func sin() -> Tensor { Tensor.unary("sin", self, { Foundation.sin($0) }, { x, _ in Foundation.cos(x) }) }
    /// `cos a`; d/da = −sin a.
    public func cos() -> Tensor { Tensor.unary("cos", self, { Foundation.cos($0) }, { x, _ in -Foundation.sin(x) }) }
    /// `erf a = (2/√π) ∫₀ᵃ e^{−s²} ds`; d/da = (2/√π) e^{−a²}.
    public func erf() -> Tensor {
        Tensor.unary("erf", self, { Foundation.erf($0) }, { x, _ in 2 / Double.pi.squareRoot() * Foundation.exp(-x * x) })
    }
    /// `tanh a`; d/da = 1 − tanh² a.
    public func tanh() -> Tensor { Tensor.unary("tanh", self, { Foundation.tanh($0) }, { _, y in 1 - y * y }) }

    /// `min(max(a, lower), upper)`; d/da = 1 strictly inside (lower, upper), 0 outside. At the
    /// boundary itself the derivative is taken as 1 (the value passes through unchanged).
    public func clamp(min lower: Double = -.infinity, max upper: Double = .infinity) -> Tensor {
        precondition(lower <= upper, "clamp: lower bound \(lower) exceeds upper bound \(upper)")
        return Tensor.unary("clamp", self, { Swift.min(Swift.max($0, lower), upper) },
                            { x, _ in (x < lower || x > upper) ? 0 : 1 })
    }

    /// The logistic sigmoid `σ(a) = 1/(1 + e^{−a})`; dσ/da = σ(1 − σ).
    public func sigmoid() -> Tensor { Tensor.unary("sigmoid", self, Tensor.logistic, { _, s in s * (1 - s) }) }

    /// SiLU (swish) `a · σ(a)`; d/da = σ(a) · (1 + a · (1 − σ(a))). σ(a) is kept from the forward
    /// pass for the backward (one `exp` per element instead of two). Computed four elements at a
    /// time by `Kernels.Exponential.silu`, which `KernelTests.siluAndSoftmaxAgainstScalarDefinitions`
    /// holds against the scalar formula (the one `logistic` below computes).
    public func silu() -> Tensor {
        let av = data, n = count
        var sigma = [Double]()
        let out = uninitializedArray(n) { o in av.withUnsafeBufferPointer { pa in
            let x = pa.baseAddress!
            func run(_ ps: UnsafeMutablePointer<Double>?) {
                Parallel.chunks(n, work: 4 * n) { r in
                    Exponential.silu(x + r.lowerBound, o + r.lowerBound, sigma: ps.map { $0 + r.lowerBound }, count: r.count)
                }
            }
            if GradientRecording.isEnabled && requiresGrad { sigma = uninitializedArray(n) { run($0) } } else { run(nil) }
        } }
        let kept = sigma
        return Tensor.operation("silu", shape: shape, data: out, parents: [self]) { g in
            [uninitializedArray(n) { pg in av.withUnsafeBufferPointer { pa in kept.withUnsafeBufferPointer { ps in g.withUnsafeBufferPointer { gg in
                Parallel.chunks(n, work: 4 * n) { r in for i in r { let s = ps[i]; pg[i] = gg[i] * (s * (1 + pa[i] * (1 - s))) } }
            } } } }]
        }
    }

    /// σ(x) evaluated without overflow for large |x|: with e = exp(−|x|) ≤ 1, σ = 1/(1 + e) for
    /// x ≥ 0 and e/(1 + e) for x < 0. Written as one division of selected numerators so that it
    /// compiles without a branch (the sign of an activation is a coin toss for the branch predictor).
    @inline(__always) static func logistic(_ x: Double) -> Double {
        let e = Foundation.exp(-Swift.abs(x))
        return (x >= 0 ? 1 : e) / (1 + e)
    }
}
