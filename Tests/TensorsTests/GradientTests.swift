// One gradient-check test per operation, at rtol 1e-6 / atol 1e-8, on seeded inputs away from kinks.
import TestSupport
import Testing
import Tensors

@Suite("Gradients of every operation (full Jacobian, central differences)")
struct OperationGradientTests {
    @Test("add, subtract, multiply, divide with broadcasting", arguments: [
        ([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [1, 3, 1]), ([2, 1, 4], [3, 1]), ([3, 4], [4]),
        ([2, 3, 2, 2], [2, 3, 1, 1]), ([2, 3, 1, 1], [2, 3, 2, 2]), ([2, 3, 4], [2, 1, 1]),  // one value per block (a bias per plane)
    ])
    func binaryBroadcast(_ shapes: ([Int], [Int])) {
        let a = randomTensor(shapes.0, seed: 1), b = randomTensor(shapes.1, seed: 2, in: 0.5...2)
        expectGradient("add \(shapes)", [a, b]) { a + b }
        expectGradient("subtract \(shapes)", [a, b]) { a - b }
        expectGradient("multiply \(shapes)", [a, b]) { a * b }
        expectGradient("divide \(shapes)", [a, b]) { a / b }
    }

    /// Broadcast values against numpy's rule written out (index arithmetic on the aligned shapes), for
    /// the per-block fast path (`[N, C, 1, 1]` against `[N, C, H, W]`, either side) and the general one.
    @Test("broadcast values by index arithmetic", arguments: [
        ([2, 3, 4, 5], [2, 3, 1, 1]), ([2, 3, 1, 1], [2, 3, 4, 5]), ([2, 3, 4], [1, 3, 1]), ([2, 1, 4], [3, 1]),
    ])
    func broadcastValues(_ shapes: ([Int], [Int])) {
        let a = randomTensor(shapes.0, seed: 6), b = randomTensor(shapes.1, seed: 7, in: 0.5...2)
        let r = max(shapes.0.count, shapes.1.count)
        let pa = Array(repeating: 1, count: r - shapes.0.count) + shapes.0, pb = Array(repeating: 1, count: r - shapes.1.count) + shapes.1
        let out = (0..<r).map { max(pa[$0], pb[$0]) }
        var sum = [Double](), product = [Double]()
        for flat in 0..<out.reduce(1, *) {
            var rest = flat, ia = 0, ib = 0, strideA = 1, strideB = 1
            for axis in stride(from: r - 1, through: 0, by: -1) {
                let i = rest % out[axis]; rest /= out[axis]
                ia += (pa[axis] == 1 ? 0 : i) * strideA; strideA *= pa[axis]
                ib += (pb[axis] == 1 ? 0 : i) * strideB; strideB *= pb[axis]
            }
            sum.append(a.data[ia] + b.data[ib]); product.append(a.data[ia] * b.data[ib])
        }
        #expect((a + b).shape == out)
        #expect((a + b).data == sum, "add \(shapes)")
        #expect((a * b).data == product, "multiply \(shapes)")
    }

    @Test func scalarArithmetic() {
        let a = randomTensor([3, 4], seed: 3, in: 0.5...2)
        expectGradient("add scalar", [a]) { a + 1.5 }
        expectGradient("scalar subtract", [a]) { 2 - a }
        expectGradient("multiply scalar", [a]) { 3 * a }
        expectGradient("divide scalar", [a]) { a / 7 }
        expectGradient("scalar divide", [a]) { 2 / a }
        expectGradient("negate", [a]) { -a }
    }

    @Test func unaryFunctions() {
        let a = randomTensor([2, 5], seed: 4, in: -2...2), p = randomTensor([2, 5], seed: 5, in: 0.3...3)
        expectGradient("square", [a]) { a.square() }
        expectGradient("sqrt", [p]) { p.sqrt() }
        expectGradient("exp", [a]) { a.exp() }
        expectGradient("log", [p]) { p.log() }
        expectGradient("sin", [a]) { a.sin() }
        expectGradient("cos", [a]) { a.cos() }
        expectGradient("erf", [a]) { a.erf() }
        expectGradient("tanh", [a]) { a.tanh() }
        expectGradient("sigmoid", [a]) { a.sigmoid() }
        expectGradient("silu", [a]) { a.silu() }
    }

    @Test func clampHasZeroGradientOutside() {
        // Bounds ±0.5; no element sits on a kink (−0.55 and 0.8 are outside, the rest inside).
        let a = Tensor(shape: [6], data: [-0.9, -0.55, -0.2, 0.3, 0.45, 0.8])
        let r = expectGradient("clamp", [a]) { a.clamp(min: -0.5, max: 0.5) }
        a.setRequiresGrad(); a.clamp(min: -0.5, max: 0.5).sum().backward()
        #expect(a.gradValues == [0, 0, 1, 1, 1, 0], "clamp gradient: \(String(describing: a.gradValues)); \(r)")
    }

    @Test func sumsAndMeans() {
        let a = randomTensor([2, 3, 4], seed: 6)
        expectGradient("sum", [a]) { a.sum() }
        expectGradient("mean", [a]) { a.mean() }
        expectGradient("sum axes [1]", [a]) { a.sum(alongAxes: [1]) }
        expectGradient("sum axes [0, 2] keep", [a]) { a.sum(alongAxes: [0, 2], keepingDimensions: true) }
        expectGradient("mean axes [-1]", [a]) { a.mean(alongAxes: [-1]) }
        expectGradient("mean axes [1, 2]", [a]) { a.mean(alongAxes: [1, 2]) }
    }

    @Test func shapeOperations() {
        let a = randomTensor([2, 3, 4], seed: 7), b = randomTensor([2, 2, 4], seed: 8)
        expectGradient("reshape", [a]) { a.reshaped([6, 4]) * a.reshaped([6, 4]) }
        expectGradient("transpose", [a]) { a.transposedLastTwo() * Tensor(shape: [4, 3], data: (0..<12).map(Double.init)) }
        expectGradient("concatenate axis 1", [a, b]) { Tensor.concatenate([a, b], axis: 1).square() }
        expectGradient("split 2 chunks axis 2", [a]) {
            let parts = a.split(into: 2, axis: 2)
            return parts[0] * parts[1].exp()
        }
        expectGradient("split 3 chunks axis 1", [a]) {
            let p = a.split(into: 3, axis: 1)
            return p[0] - 2 * p[2]
        }
    }

    @Test func gatherScattersBack() {
        let table = randomTensor([5], seed: 9)
        expectGradient("gather", [table]) { table.gather([0, 4, 4, 2]).square() }
    }

    @Test func matrixProducts() {
        let a = randomTensor([2, 3, 4], seed: 10), b = randomTensor([2, 4, 5], seed: 11), w = randomTensor([4, 2], seed: 12)
        expectGradient("batched matmul", [a, b]) { a.matmul(b) }
        expectGradient("matmul with shared 2-D right operand", [a, w]) { a.matmul(w) }
        let at = randomTensor([2, 4, 3], seed: 19), bt = randomTensor([2, 5, 4], seed: 20), wt = randomTensor([2, 4], seed: 21)
        expectGradient("matmul Aᵀ B", [at, b]) { at.matmul(b, transposeA: true) }
        expectGradient("matmul A Bᵀ", [a, bt]) { a.matmul(bt, transposeB: true) }
        expectGradient("matmul Aᵀ Bᵀ", [at, bt]) { at.matmul(bt, transposeA: true, transposeB: true) }
        expectGradient("matmul Aᵀ with shared 2-D Bᵀ", [at, wt]) { at.matmul(wt, transposeA: true, transposeB: true) }
        let x = randomTensor([3, 4], seed: 13), lw = randomTensor([5, 4], seed: 14), lb = randomTensor([5], seed: 15)
        expectGradient("linear", [x, lw, lb]) { Tensor.linear(x, weight: lw, bias: lb) }
        expectGradient("linear without bias", [x, lw]) { Tensor.linear(x, weight: lw, bias: nil) }
    }

    @Test("conv2d", arguments: [(3, 1, 1), (3, 2, 1), (1, 1, 0), (3, 1, 0), (3, 2, 0), (1, 2, 0)])
    func convolution(_ geometry: (kernel: Int, stride: Int, padding: Int)) {
        let (k, s, p) = geometry
        let x = randomTensor([2, 3, 5, 5], seed: 16), w = randomTensor([4, 3, k, k], seed: 17), b = randomTensor([4], seed: 18)
        expectGradient("conv2d k\(k) s\(s) p\(p)", [x, w, b]) { Tensor.conv2d(x, weight: w, bias: b, stride: s, padding: p) }
    }

    @Test("group norm", arguments: [1, 2, 4])
    func groupNorm(_ groups: Int) {
        let x = randomTensor([2, 4, 3, 3], seed: 19, in: -2...2)
        let g = randomTensor([4], seed: 20, in: 0.5...1.5), b = randomTensor([4], seed: 21)
        expectGradient("groupNorm groups \(groups)", [x, g, b]) { Tensor.groupNorm(x, groups: groups, weight: g, bias: b, eps: 1e-5) }
    }

    @Test func softmaxLastAxis() {
        let a = randomTensor([2, 3, 5], seed: 22, in: -3...3)
        expectGradient("softmax", [a]) { a.softmax() }
    }

    @Test func channelDropout() {
        let x = randomTensor([3, 4, 2, 2], seed: 23)
        expectGradient("dropout2d p=0.5", [x]) {
            var rng = RandomGenerator(seed: 99)  // the same mask on every evaluation
            return x.dropout2d(probability: 0.5, training: true, generator: &rng)
        }
        var rng = RandomGenerator(seed: 99)
        let y = withoutGradients { x.dropout2d(probability: 0.5, training: true, generator: &rng) }
        // Each (n, c) plane is either all zero or exactly x / (1 − p).
        var zeroed = 0
        for q in 0..<12 {
            let plane = Array(y.data[(q * 4)..<(q * 4 + 4)]), src = Array(x.data[(q * 4)..<(q * 4 + 4)])
            if plane.allSatisfy({ $0 == 0 }) { zeroed += 1 } else { #expect(plane == src.map { $0 * 2 }) }
        }
        #expect(zeroed > 0 && zeroed < 12, "dropout zeroed \(zeroed) of 12 planes")
        var unused = RandomGenerator(seed: 1)
        #expect(x.dropout2d(probability: 0.5, training: false, generator: &unused) === x)
        #expect(unused == RandomGenerator(seed: 1), "evaluation mode must not draw random numbers")
    }

    @Test func nearestUpsampling() {
        let x = randomTensor([2, 2, 2, 3], seed: 24)
        expectGradient("upsampleNearest2x", [x]) { x.upsampleNearest2x() }
        let y = x.upsampleNearest2x()
        #expect(y.shape == [2, 2, 4, 6] && y.data[7] == x.data[0] && y.data[6 + 2] == x.data[1])
    }

    @Test func meanSquaredError() {
        let a = randomTensor([2, 3], seed: 25), b = randomTensor([2, 3], seed: 26)
        expectGradient("meanSquaredError", [a, b]) { Tensor.meanSquaredError(a, b) }
    }

    @Test func composedExpressionAccumulatesThroughSharedInputs() {
        let a = randomTensor([3], seed: 27, in: 0.5...1.5)
        expectGradient("a·a + exp(a)·sin(a)", [a]) { a * a + a.exp() * a.sin() }
    }
}

@Suite("The gradient checker itself")
struct GradientCheckerTests {
    /// A deliberately wrong derivative: the backward of `x²` off by a factor 1.001.
    func wrongSquare(_ x: Tensor, factor: Double) -> Tensor {
        let v = x.data
        return Tensor.operation("planted square", shape: x.shape, data: v.map { $0 * $0 }, parents: [x]) { g in
            [zip(g, v).map { $0 * 2 * $1 * factor }]
        }
    }

    @Test func rejectsPlantedWrongDerivative() {
        let x = randomTensor([4], seed: 30, in: 0.5...2)
        let bad = GradientCheck.check("planted", inputs: [x]) { wrongSquare(x, factor: 1.001) }
        #expect(!bad.passed, "the checker accepted a derivative off by 0.1 %: \(bad)")
        #expect(bad.worstRatio > 100, "worst ratio \(bad.worstRatio) should be far above 1")
        #expect(bad.description.contains("planted") && bad.description.contains("worst ratio"))
        let good = GradientCheck.check("correct", inputs: [x]) { wrongSquare(x, factor: 1) }
        #expect(good.passed, "\(good)")
    }

    @Test func directionalModeRejectsPlantedWrongDerivative() {
        let x = randomTensor([50], seed: 31, in: 0.5...2)
        let bad = GradientCheck.check("planted directional", inputs: [x], tolerance: .network,
                                      mode: .directional(seed: 5, sampledCoordinates: 3)) { wrongSquare(x, factor: 1.001) }
        #expect(!bad.passed, "\(bad)")
        let good = GradientCheck.check("correct directional", inputs: [x], tolerance: .network,
                                       mode: .directional(seed: 5, sampledCoordinates: 3)) { wrongSquare(x, factor: 1) }
        #expect(good.passed, "\(good)")
    }

    @Test func restoresInputsAndFlags() {
        let x = randomTensor([3], seed: 32)
        let before = x.data
        _ = GradientCheck.check("restore", inputs: [x]) { x.exp() }
        #expect(x.data == before && !x.requiresGrad && x.gradValues == nil)
    }

    @Test func toleranceRatio() {
        let t = Tolerance(rtol: 1e-6, atol: 1e-8)
        #expect(t.ratio(actual: 1 + 1e-6, expected: 1) > 0.98 && t.ratio(actual: 1 + 1e-6, expected: 1) < 1)
        #expect(t.ratio(actual: 1 + 2e-6, expected: 1) > 1)
        #expect(t.ratio(actual: .nan, expected: 1) == .infinity)
        #expect(ulpDistance(1, 1.0.nextUp) == 1 && ulpDistance(-0.0, 0.0) == 0 && ulpDistance(-Double.leastNonzeroMagnitude, .leastNonzeroMagnitude) == 2)
    }
}
