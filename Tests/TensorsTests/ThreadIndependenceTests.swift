// Results must not depend on the number of cores or threads (issue 22, item 15): the same computation
// run as if the machine had 1, 2 or 3 cores (`Parallel.withCores`) gives the same bits. This compares
// runs with each other on purpose: the property under test is that the core count changes nothing.
// The values themselves are pinned elsewhere (KernelTests against the plain loops, the fixtures).
import TestSupport
import Testing
import Kernels
import Tensors

/// The first element where two runs differ, for the message; nil when they are bit-identical.
func firstDifference(_ a: [Double], _ b: [Double]) -> String? {
    guard a.count == b.count else { return "\(a.count) against \(b.count) elements" }
    let differing = a.indices.filter { a[$0].bitPattern != b[$0].bitPattern }
    guard let i = differing.first else { return nil }
    return "element \(i): \(a[i]) against \(b[i]) (\(differing.count) of \(a.count) elements differ)"
}

/// Runs `body` with 1, 2 and 3 cores and expects every array it returns to be bit-identical to the 1-core run's.
func expectSameOnAnyCoreCount(_ name: String, _ body: () -> [(String, [Double])], sourceLocation: SourceLocation = #_sourceLocation) {
    let one = Parallel.withCores(1, body)
    for cores in [2, 3] {
        let other = Parallel.withCores(cores, body)
        for ((label, a), (_, b)) in zip(one, other) {
            let d = firstDifference(a, b)
            print("\(name) \(label), 1 core against \(cores): \(d ?? "bit-identical (\(a.count) values)")")
            #expect(d == nil, "\(name) \(label): 1 core against \(cores): \(d ?? "")", sourceLocation: sourceLocation)
        }
    }
}

@Suite("Results do not depend on the core count")
struct ThreadIndependenceTests {
    /// 300×200×40 = 2.4 M multiply–adds: above `Gemm.minimumSplitWork`, cut into `Parallel.lanes` row blocks.
    @Test func largeProduct() {
        var rng = RandomGenerator(seed: 5)
        let s = GemmShape(m: 300, n: 200, k: 40)
        let a = rng.normals(s.m * s.k), b = rng.normals(s.k * s.n)
        #expect(Gemm.blocks(s) == Parallel.lanes)
        expectSameOnAnyCoreCount("gemm \(s)") { [("C", Gemm.product(s, a, b))] }
    }

    /// Batch 8 at 16×16 (2.4 M multiply–adds): `Parallel.lanes` lanes of two samples, each summing its
    /// own share of dW; batch 1 runs one lane with its products split. Normal draws make every sum's
    /// rounding depend on its order, so a split that moved with the cores would show in dW.
    @Test("convolution forward and backward", arguments: [8, 1])
    func convolution(batch: Int) {
        let g = ConvGeometry(batch: batch, inChannels: 8, height: 16, width: 16, outChannels: 16, kernel: 3, stride: 1, padding: 1)
        var rng = RandomGenerator(seed: 6)
        let x = rng.normals(batch * 8 * 256), w = rng.normals(16 * 8 * 9), b = rng.normals(16), dy = rng.normals(batch * 16 * 256)
        expectSameOnAnyCoreCount("conv batch \(batch)") {
            let grads = ConvolutionKernels.backward(g, x: x, weight: w, dy: dy)
            return [("y", ConvolutionKernels.forward(g, x: x, weight: w, bias: b)), ("dx", grads.dx), ("dW", grads.dWeight), ("db", grads.dBias)]
        }
    }

    /// The same convolution through the direct 3×3 kernels (forward, input and weight gradient all direct):
    /// the forward pass and dx sample by sample and dW lane by lane, whichever thread claims each piece, and the
    /// lanes' dW shares are added in lane order. Skipped (with a note) on CPUs without AVX-512.
    @Test func directConvolution() {
        guard ConvolutionKernels.directOnThisCPU else { print("direct convolution on any core count: this CPU has no AVX-512, not run"); return }
        let g = ConvGeometry(batch: 8, inChannels: 8, height: 16, width: 16, outChannels: 16, kernel: 3, stride: 1, padding: 1)
        var rng = RandomGenerator(seed: 6)
        let x = rng.normals(8 * 8 * 256), w = rng.normals(16 * 8 * 9), b = rng.normals(16), dy = rng.normals(8 * 16 * 256)
        ConvolutionKernels.withDirect(true) {
            #expect(ConvolutionKernels.runsDirect(g) && ConvolutionKernels.runsDirectInputGradient(g) && ConvolutionKernels.runsDirectWeightGradient(g))
            expectSameOnAnyCoreCount("direct conv batch 8") {
                let grads = ConvolutionKernels.backward(g, x: x, weight: w, dy: dy)
                return [("y", ConvolutionKernels.forward(g, x: x, weight: w, bias: b)), ("dx", grads.dx), ("dW", grads.dWeight), ("db", grads.dBias)]
            }
        }
    }

    /// Group normalisation, SiLU, a broadcast add, softmax and a batched product, forward and backward.
    @Test func elementwiseAndAttentionOps() {
        let x = randomTensor([4, 16, 16, 16], seed: 7), t = randomTensor([4, 16, 1, 1], seed: 8)
        let gamma = randomTensor([16], seed: 9), beta = randomTensor([16], seed: 10)
        expectSameOnAnyCoreCount("ops") {
            let leaves = [x, t, gamma, beta].map { Tensor(shape: $0.shape, data: $0.data, requiresGrad: true) }
            let h = Tensor.groupNorm(leaves[0], groups: 4, weight: leaves[2], bias: leaves[3]).silu() + leaves[1]
            let q = h.reshaped([4, 16, 256])
            let a = q.matmul(q, transposeA: true).softmax()
            let y = q.matmul(a, transposeB: true)
            (y * y).sum().backward()
            return [("y", y.data)] + leaves.enumerated().map { ("grad \($0.offset)", $0.element.gradValues ?? []) }
        }
    }
}
