// Fused operations against the operations they fuse (bit for bit: the same arithmetic in the same
// order) and against plain loops written from the formulas (within a tolerance: the loops round differently).
import TestSupport
import Testing
import Foundation
import Kernels
import Tensors

/// `SiLU(GN(x))` and its gradients by plain loops, straight from the formulas (Wu & He 2018 for the
/// normalisation, σ(a) = 1/(1 + e^{−a}) by Foundation.exp): the oracle for `Tensor.groupNormSiLU`.
func referenceGroupNormSiLU(_ x: [Double], shape: [Int], groups: Int, gamma: [Double], beta: [Double], eps: Double, dy: [Double])
    -> (y: [Double], dx: [Double], dGamma: [Double], dBeta: [Double]) {
    let n = shape[0], c = shape[1], spatial = shape[2...].reduce(1, *), per = c / groups, m = Double(per * spatial)
    var y = [Double](repeating: 0, count: x.count), dx = y
    var dGamma = [Double](repeating: 0, count: c), dBeta = dGamma
    for s in 0..<n { for g in 0..<groups {
        let elements = (g * per..<(g + 1) * per).flatMap { ch in (0..<spatial).map { (s * c + ch) * spatial + $0 } }
        let mean = elements.reduce(0) { $0 + x[$1] } / m
        let variance = elements.reduce(0) { $0 + (x[$1] - mean) * (x[$1] - mean) } / m
        let inv = 1 / (variance + eps).squareRoot()
        var dHat = [Double](), xHat = [Double]()
        for k in elements {
            let ch = (k / spatial) % c, h = (x[k] - mean) * inv, a = gamma[ch] * h + beta[ch]
            let sigma = 1 / (1 + Foundation.exp(-a))
            y[k] = a * sigma
            let da = dy[k] * (sigma + a * sigma * (1 - sigma))   // d(a σ(a))/da = σ + a σ (1 − σ)
            dGamma[ch] += da * h; dBeta[ch] += da
            dHat.append(da * gamma[ch]); xHat.append(h)
        }
        let meanD = dHat.reduce(0, +) / m, meanDX = zip(dHat, xHat).reduce(0) { $0 + $1.0 * $1.1 } / m
        for (q, k) in elements.enumerated() { dx[k] = inv * (dHat[q] - meanD - xHat[q] * meanDX) }
    } }
    return (y, dx, dGamma, dBeta)
}

@Suite("Fused kernels against the operations they fuse and against plain loops")
struct FusedKernelTests {
    /// Shapes: groups of one and of several channels, planes with and without a four-lane tail, and
    /// 4×32×16×16 (65,536 elements: split over the cores).
    static let shapes: [([Int], Int)] = [([2, 4, 3, 3], 1), ([2, 4, 3, 3], 2), ([3, 8, 5, 5], 4), ([4, 32, 16, 16], 32), ([2, 64, 8, 8], 32)]

    func inputs(_ shape: [Int], seed: UInt64) -> (x: Tensor, gamma: Tensor, beta: Tensor, dy: [Double]) {
        let c = shape[1]
        return (randomTensor(shape, seed: seed, in: -2...2), randomTensor([c], seed: seed + 1, in: 0.5...1.5),
                randomTensor([c], seed: seed + 2), randomTensor(shape, seed: seed + 3).data)
    }

    /// Values and gradients (x, γ, β) of `f`, with fresh leaves.
    func run(_ i: (x: Tensor, gamma: Tensor, beta: Tensor, dy: [Double]), _ f: (Tensor, Tensor, Tensor) -> Tensor) -> [[Double]] {
        let leaves = [i.x, i.gamma, i.beta].map { Tensor(shape: $0.shape, data: $0.data, requiresGrad: true) }
        let y = f(leaves[0], leaves[1], leaves[2])
        y.backward(seed: i.dy)
        return [y.data] + leaves.map { $0.gradValues ?? [] }
    }

    @Test("group norm + SiLU: bit for bit the two operations", arguments: shapes)
    func groupNormSiLU(_ c: ([Int], Int)) {
        let (shape, groups) = c
        let i = inputs(shape, seed: UInt64(shape.reduce(0, +) + groups))
        let fused = run(i) { Tensor.groupNormSiLU($0, groups: groups, weight: $1, bias: $2) }
        let separate = run(i) { Tensor.groupNorm($0, groups: groups, weight: $1, bias: $2).silu() }
        for (k, name) in ["y", "dx", "dγ", "dβ"].enumerated() {
            let (a, b) = (fused[k], separate[k])
            let d = firstDifference(a, b)
            print("groupNormSiLU \(shape) groups \(groups) \(name): \(d ?? "bit-identical to groupNorm + silu")")
            #expect(d == nil, "groupNormSiLU \(shape) groups \(groups) \(name): \(d ?? "")")
        }
    }

    @Test("group norm + SiLU against plain loops", arguments: shapes)
    func groupNormSiLUReference(_ c: ([Int], Int)) {
        let (shape, groups) = c
        let i = inputs(shape, seed: UInt64(shape.reduce(0, +) + groups))
        let fused = run(i) { Tensor.groupNormSiLU($0, groups: groups, weight: $1, bias: $2) }
        let r = referenceGroupNormSiLU(i.x.data, shape: shape, groups: groups, gamma: i.gamma.data, beta: i.beta.data, eps: 1e-5, dy: i.dy)
        for (name, a, e) in [("y", fused[0], r.y), ("dx", fused[1], r.dx), ("dγ", fused[2], r.dGamma), ("dβ", fused[3], r.dBeta)] {
            let cmp = Comparison("groupNormSiLU \(shape) groups \(groups) \(name) vs loops", actual: a, expected: e, tolerance: .independentImplementation)
            print(cmp)
            #expect(cmp.passed, "\(cmp)")
        }
    }

    @Test func groupNormSiLUGradient() {
        let x = randomTensor([2, 4, 3, 3], seed: 19, in: -2...2)
        let g = randomTensor([4], seed: 20, in: 0.5...1.5), b = randomTensor([4], seed: 21)
        expectGradient("groupNormSiLU", [x, g, b]) { Tensor.groupNormSiLU(x, groups: 2, weight: g, bias: b) }
    }

    /// `conv2d(…, addingPerChannel: c, adding: r)` against `conv2d(…) + c.reshaped([N, O, 1, 1])` followed by
    /// `+ r` (what the residual block and the attention block wrote before): output and the gradients of x,
    /// w, b, c and r bit for bit. Cases: a 3×3 same convolution on 8-wide planes (the direct kernels where the
    /// CPU has them: the sums are added by each one-sample piece; with `withDirect(false)` the im2col path, one
    /// pass at the end), a 1×1 convolution (samples lowered four at a time), a stride-2 convolution; c only,
    /// r only, both. A sum dropped, added twice, or added to another sample's plane is O(1) off.
    @Test("conv2d with the sums after it: bit for bit the separate operations", arguments: [
        (3, 8, 8, 16, 3, 1, 1, true, false), (3, 8, 8, 16, 3, 1, 1, false, true), (3, 8, 8, 16, 3, 1, 1, true, true),
        (5, 8, 8, 16, 1, 1, 0, false, true), (2, 4, 7, 6, 3, 2, 1, true, true),
    ])
    func convolutionAdding(_ c: (batch: Int, inChannels: Int, size: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, perChannel: Bool, elementwise: Bool)) {
        let seed = UInt64(c.batch * 100 + c.size * 10 + c.kernel + (c.perChannel ? 1000 : 0) + (c.elementwise ? 2000 : 0))
        let x0 = randomTensor([c.batch, c.inChannels, c.size, c.size], seed: seed)
        let w0 = randomTensor([c.outChannels, c.inChannels, c.kernel, c.kernel], seed: seed + 1)
        let b0 = randomTensor([c.outChannels], seed: seed + 2)
        let side = (c.size + 2 * c.padding - c.kernel) / c.stride + 1, outShape = [c.batch, c.outChannels, side, side]
        let c0 = randomTensor([c.batch, c.outChannels], seed: seed + 3), r0 = randomTensor(outShape, seed: seed + 4)
        let dy = randomTensor(outShape, seed: seed + 5).data
        func run(fused: Bool) -> [[Double]] {
            let leaves = [x0, w0, b0, c0, r0].map { Tensor(shape: $0.shape, data: $0.data, requiresGrad: true) }
            let (pc, pr) = (c.perChannel ? leaves[3] : nil, c.elementwise ? leaves[4] : nil)
            var y: Tensor
            if fused {
                y = Tensor.conv2d(leaves[0], weight: leaves[1], bias: leaves[2], stride: c.stride, padding: c.padding, addingPerChannel: pc, adding: pr)
            } else {
                y = Tensor.conv2d(leaves[0], weight: leaves[1], bias: leaves[2], stride: c.stride, padding: c.padding)
                if let pc { y = y + pc.reshaped([c.batch, c.outChannels, 1, 1]) }
                if let pr { y = y + pr }
            }
            y.backward(seed: dy)
            return [y.data] + leaves.map { $0.gradValues ?? [] }
        }
        for direct in [true, false] {
            ConvolutionKernels.withDirect(direct) {
                let (fused, separate) = (run(fused: true), run(fused: false))
                for (k, name) in ["y", "dx", "dw", "db", "dc", "dr"].enumerated() {
                    let difference = firstDifference(fused[k], separate[k])
                    #expect(difference == nil, "\(name) \(c) direct \(direct): \(difference ?? "")")
                }
                print("conv2d adding \(c) direct \(direct && ConvolutionKernels.runsDirect(ConvGeometry(batch: c.batch, inChannels: c.inChannels, height: c.size, width: c.size, outChannels: c.outChannels, kernel: c.kernel, stride: c.stride, padding: c.padding))): bit-identical: \(fused.indices.allSatisfy { firstDifference(fused[$0], separate[$0]) == nil })")
            }
        }
    }
}
