// Group normalisation's C kernels (`GroupNormKernels`, every build) against the plain Swift loops
// they replace: the same operations in the same order, so every element must be equal bit for bit.
import TestSupport
import Testing
import Foundation
import Kernels
import Tensors

/// nil when `a` and `b` hold the same bits in every element (for values that are not NaN, the
/// same as `==` on every element with the signs of zeros compared too); otherwise how many
/// elements differ and the largest difference.
func bitDifference(_ a: [Double], _ b: [Double]) -> String? {
    guard a.count == b.count else { return "\(a.count) against \(b.count) elements" }
    let differing = a.indices.filter { a[$0].bitPattern != b[$0].bitPattern }
    guard let first = differing.first else { return nil }
    let worst = differing.max { Swift.abs(a[$0] - b[$0]) < Swift.abs(a[$1] - b[$1]) } ?? first
    return "\(differing.count) of \(a.count) elements differ; worst at element \(worst): \(a[worst]) against \(b[worst])"
        + " (difference \(Swift.abs(a[worst] - b[worst])))"
}

@Suite("Group normalisation kernels against the plain loops, bit for bit")
struct GroupNormKernelTests {
    static let builds: [Exponential.Build] = [.baseline, .avx2, .avx512]

    /// One group of (channels, spatial): planes of 1, 3 and 5×5 elements (all or part of them in
    /// the one-at-a-time tail; the fused SiLU then runs over the whole group), 4 and 12 (whole
    /// four-lane groups but not eight-lane ones), 8×8 and 16×16 (whole groups in every build:
    /// normalised and passed through σ in registers); one and several channels.
    static let groups: [(Int, Int)] = [(1, 1), (3, 1), (1, 3), (4, 3), (2, 4), (2, 12), (1, 25), (3, 25), (1, 64), (3, 64), (4, 256)]

    /// Reports and expects bit-identical arrays.
    func expectSame(_ name: String, _ fast: [Double], _ reference: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
        let d = bitDifference(fast, reference)
        print("\(name): \(d ?? "bit-identical (\(fast.count) values)")")
        #expect(d == nil, "\(name): \(d ?? "")", sourceLocation: sourceLocation)
    }

    @Test("per-group kernels vs the Swift loops", arguments: groups)
    func perGroupKernels(_ g: (Int, Int)) {
        let (channels, spatial) = g, m = channels * spatial
        var rng = RandomGenerator(seed: UInt64(100 * channels + spatial))
        func uniform(_ n: Int, _ lo: Double, _ hi: Double) -> [Double] { (0..<n).map { _ in lo + (hi - lo) * rng.nextUniform() } }
        let x = uniform(m, -1.5, 2.5), gamma = uniform(channels, 0.5, 1.5), beta = uniform(channels, -1, 1), dy = uniform(m, -1, 1)
        let mean = x.reduce(0, +) / Double(m)
        let inv = 1 / (x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(m) + 1e-5).squareRoot()
        let meanD = uniform(1, -0.5, 0.5)[0], meanDX = uniform(1, -0.5, 0.5)[0]

        // Forward: GN alone, GN + SiLU keeping σ, GN + SiLU without σ.
        func forward(_ path: GroupNormKernels.Path, silu: Bool, keepSigma: Bool) -> (y: [Double], sigma: [Double]) {
            var y = [Double](repeating: .nan, count: m), sigma = [Double](repeating: .nan, count: m)
            x.withUnsafeBufferPointer { px in gamma.withUnsafeBufferPointer { pg in beta.withUnsafeBufferPointer { pb in
                y.withUnsafeMutableBufferPointer { py in sigma.withUnsafeMutableBufferPointer { ps in
                    GroupNormKernels.normalize(px.baseAddress!, py.baseAddress!, channels: channels, spatial: spatial,
                                               gamma: pg.baseAddress!, beta: pb.baseAddress!, mean: mean, inv: inv,
                                               silu: silu, sigma: keepSigma ? ps.baseAddress! : nil, path: path)
                } }
            } } }
            return (y, sigma)
        }
        let sigma = forward(.reference, silu: true, keepSigma: true).sigma
        func backward(_ path: GroupNormKernels.Path) -> (da: [Double], dx: [Double]) {
            var da = [Double](repeating: .nan, count: m), dx = da
            x.withUnsafeBufferPointer { px in gamma.withUnsafeBufferPointer { pg in beta.withUnsafeBufferPointer { pb in
                dy.withUnsafeBufferPointer { pdy in sigma.withUnsafeBufferPointer { ps in
                    da.withUnsafeMutableBufferPointer { pda in dx.withUnsafeMutableBufferPointer { pdx in
                        GroupNormKernels.siluBackward(x: px.baseAddress!, dy: pdy.baseAddress!, sigma: ps.baseAddress!, da: pda.baseAddress!,
                                                      channels: channels, spatial: spatial, gamma: pg.baseAddress!, beta: pb.baseAddress!,
                                                      mean: mean, inv: inv, path: path)
                        GroupNormKernels.inputGradient(x: px.baseAddress!, d: pdy.baseAddress!, dx: pdx.baseAddress!,
                                                       channels: channels, spatial: spatial, gamma: pg.baseAddress!,
                                                       mean: mean, inv: inv, meanD: meanD, meanDX: meanDX, path: path)
                    } }
                } }
            } } }
            return (da, dx)
        }

        let plain = forward(.reference, silu: false, keepSigma: false), fused = forward(.reference, silu: true, keepSigma: true)
        let fusedNoSigma = forward(.reference, silu: true, keepSigma: false), grads = backward(.reference)
        for build in Self.builds {
            let name = "\(channels)×\(spatial) \(build)"
            expectSame("\(name) normalize", forward(.kernels(build), silu: false, keepSigma: false).y, plain.y)
            let f = forward(.kernels(build), silu: true, keepSigma: true)
            expectSame("\(name) normalize + SiLU", f.y, fused.y)
            expectSame("\(name) normalize + SiLU, σ", f.sigma, fused.sigma)
            expectSame("\(name) normalize + SiLU without σ", forward(.kernels(build), silu: true, keepSigma: false).y, fusedNoSigma.y)
            let b = backward(.kernels(build))
            expectSame("\(name) SiLU backward", b.da, grads.da)
            expectSame("\(name) dx", b.dx, grads.dx)
        }
    }

    /// Whole operations: `groupNorm` and `groupNormSiLU` forward and backward through the kernels of
    /// each build against the same operations through the Swift loops. [3, 4] has planes of one
    /// element; [4, 32, 16, 16] (groups of one channel) and [2, 64, 8, 8] are split over the cores.
    static let shapes: [([Int], Int)] = [
        ([3, 4], 2), ([2, 6, 3], 3), ([2, 4, 5, 5], 4), ([2, 6, 5, 5], 2), ([2, 8, 8, 8], 2),
        ([2, 8, 16, 16], 8), ([4, 32, 16, 16], 32), ([2, 64, 8, 8], 32),
    ]

    @Test("groupNorm and groupNormSiLU: kernels vs Swift loops", arguments: shapes, [false, true])
    func wholeOperation(_ c: ([Int], Int), silu: Bool) {
        let (shape, groups) = c, channels = shape[1]
        let seed = UInt64(shape.reduce(0, +) * 10 + groups)
        let x = randomTensor(shape, seed: seed, in: -1.5...2.5), gamma = randomTensor([channels], seed: seed + 1, in: 0.5...1.5)
        let beta = randomTensor([channels], seed: seed + 2), dy = randomTensor(shape, seed: seed + 3).data
        func op(_ x: Tensor, _ g: Tensor, _ b: Tensor) -> Tensor {
            silu ? Tensor.groupNormSiLU(x, groups: groups, weight: g, bias: b) : Tensor.groupNorm(x, groups: groups, weight: g, bias: b)
        }
        // Values without recording (no σ kept), then values and gradients with fresh leaves.
        func run(_ path: GroupNormKernels.Path) -> [[Double]] {
            GroupNormKernels.withPath(path) {
                let values = op(x, gamma, beta).data
                let leaves = [x, gamma, beta].map { Tensor(shape: $0.shape, data: $0.data, requiresGrad: true) }
                let y = op(leaves[0], leaves[1], leaves[2])
                y.backward(seed: dy)
                return [values, y.data] + leaves.map { $0.gradValues ?? [] }
            }
        }
        #expect(GroupNormKernels.path == .kernels(Exponential.active))
        let reference = run(.reference)
        for build in Self.builds {
            let fast = run(.kernels(build))
            for (k, name) in ["y without gradients", "y", "dx", "dγ", "dβ"].enumerated() {
                expectSame("\(silu ? "groupNormSiLU" : "groupNorm") \(shape) groups \(groups) \(build) \(name)", fast[k], reference[k])
            }
        }
    }
}
