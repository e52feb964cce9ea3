// The fast kernels against their plain-loop or scalar definitions: BLAS paths at rtol 1e-12, lane sums
// at 1e-13, softmax at 1e-14, e^x and SiLU within a bound in ULPs.
import TestSupport
import CKernels
import Testing
import Foundation
import Kernels
import Tensors

@Suite("BLAS kernels against plain-loop references")
struct KernelTests {
    static let tolerance = Tolerance(rtol: 1e-12, atol: 0)

    /// `n` draws from [0.5, 1]: sums of products of these never cancel, so a relative tolerance bounds
    /// their rounding and any misplaced term shows at O(1).
    static func positive(_ n: Int, _ rng: inout RandomGenerator) -> [Double] { (0..<n).map { _ in 0.5 + 0.5 * rng.nextUniform() } }

    @Test("dgemm", arguments: [
        GemmShape(m: 7, n: 5, k: 3), GemmShape(m: 64, n: 33, k: 129),
        GemmShape(m: 8, n: 9, k: 10, transposeA: .transposed), GemmShape(m: 8, n: 9, k: 10, transposeB: .transposed),
        GemmShape(m: 17, n: 4, k: 6, transposeA: .transposed, transposeB: .transposed),
    ])
    func gemm(_ s: GemmShape) {
        var rng = RandomGenerator(seed: UInt64(s.m * 1000 + s.n))
        let a = rng.normals(s.m * s.k), b = rng.normals(s.k * s.n)
        let c = Comparison("gemm \(s)", actual: Gemm.product(s, a, b), expected: Gemm.product(s, a, b, useBLAS: false), tolerance: Self.tolerance)
        print(c)
        #expect(c.passed, "\(c)")
    }

    /// Above Gemm.minimumSplitWork (2^20 multiply–adds) a product is split into row blocks (m ≥ n)
    /// or column blocks (n > m), `Gemm.blocks` of them (4 here), spread over the cores. Entries in [0.5, 1] keep every sum free of
    /// cancellation, so rtol 1e-12 bounds rounding (k·ε ≈ 1.3e-14) while a misplaced block is O(1) off.
    @Test("dgemm split over cores", arguments: [
        GemmShape(m: 131, n: 70, k: 120), GemmShape(m: 131, n: 70, k: 120, transposeA: .transposed),
        GemmShape(m: 70, n: 133, k: 120, transposeB: .transposed),
        GemmShape(m: 70, n: 133, k: 120, transposeA: .transposed, transposeB: .transposed),
    ])
    func splitGemm(_ s: GemmShape) {
        var rng = RandomGenerator(seed: UInt64(s.m * 1000 + s.n))
        let a = Self.positive(s.m * s.k, &rng), b = Self.positive(s.k * s.n, &rng)
        let c = Comparison("split gemm \(s)", actual: Gemm.product(s, a, b), expected: Gemm.product(s, a, b, useBLAS: false), tolerance: Self.tolerance)
        print(c)
        #expect(c.passed, "\(c)")
    }

    @Test func referenceGemmIsTheDefinition() {
        // [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]], computed by hand.
        #expect(Gemm.product(GemmShape(m: 2, n: 2, k: 2), [1, 2, 3, 4], [5, 6, 7, 8], useBLAS: false) == [19, 22, 43, 50])
    }

    @Test("conv2d im2col+dgemm vs direct loops", arguments: [
        (1, 1, 0), (1, 2, 0), (3, 1, 0), (3, 1, 1), (3, 2, 0), (3, 2, 1), (1, 1, 1), (5, 1, 2),
    ])
    func convolution(_ geometry: (kernel: Int, stride: Int, padding: Int)) {
        let g = ConvGeometry(batch: 3, inChannels: 4, height: 7, width: 6, outChannels: 5,
                             kernel: geometry.kernel, stride: geometry.stride, padding: geometry.padding)
        var rng = RandomGenerator(seed: 42)
        let x = rng.normals(3 * 4 * 7 * 6), w = rng.normals(5 * 4 * geometry.kernel * geometry.kernel), b = rng.normals(5)
        let c = Comparison("conv \(geometry)", actual: ConvolutionKernels.forward(g, x: x, weight: w, bias: b),
                           expected: ConvolutionKernels.referenceForward(g, x: x, weight: w, bias: b), tolerance: Self.tolerance)
        print(c)
        #expect(c.passed, "\(c)")
    }

    /// "Same" convolutions (stride 1, k = 2·pad + 1) are lowered by shifting whole planes
    /// (`ConvolutionKernels.lowerSame`); on images narrower or shorter than the kernel's reach every
    /// shift wraps round an edge or leaves the image.
    @Test("same convolution on narrow images", arguments: [(1, 1), (2, 1), (1, 3), (2, 2), (3, 5)])
    func sameConvolutionNarrow(_ size: (height: Int, width: Int)) {
        let g = ConvGeometry(batch: 2, inChannels: 3, height: size.height, width: size.width, outChannels: 2, kernel: 5, stride: 1, padding: 2)
        var rng = RandomGenerator(seed: UInt64(size.height * 10 + size.width))
        let x = rng.normals(2 * 3 * size.height * size.width), w = rng.normals(2 * 3 * 25), b = rng.normals(2)
        let c = Comparison("same conv \(size)", actual: ConvolutionKernels.forward(g, x: x, weight: w, bias: b),
                           expected: ConvolutionKernels.referenceForward(g, x: x, weight: w, bias: b), tolerance: Self.tolerance)
        print(c)
        #expect(c.passed, "\(c)")
    }

    /// The direct 3×3 kernel (`ddpm_conv3x3_packed`, which `ConvolutionKernels.forward` runs in release builds
    /// on AVX-512 CPUs; here switched on with `withDirect`) against the direct seven-fold loops: batch 9
    /// runs nine one-sample pieces sharing the weights packed once (`ddpm_conv3x3_pack`); planes 16 wide (one row
    /// a 16-pixel strip: heights 16, 20 and 33) and 8 wide (two rows a strip: heights 8 and 10), 1–48
    /// input channels (24 and 48: K = 216 and 432 rows, more than one of the kernel's 192-row chunks),
    /// 8 and 16 output channels (one and two panels of the 8 × 16 tile), with and without bias. A column
    /// shifted the wrong way, a row, strip, chunk, panel or sample skipped, or the bias dropped is O(1)
    /// off. Skipped (with a note) on CPUs without AVX-512.
    @Test("direct 3×3 convolution kernel vs direct loops", arguments: [
        (16, 16, 8, 16), (16, 16, 4, 16), (16, 16, 1, 8), (20, 16, 3, 8), (33, 16, 2, 16), (8, 8, 8, 16), (10, 8, 3, 8),
        (16, 16, 24, 8), (8, 8, 48, 16),
    ])
    func directConvolution(_ c: (height: Int, width: Int, inChannels: Int, outChannels: Int)) {
        guard ConvolutionKernels.directOnThisCPU else { print("direct convolution: this CPU has no AVX-512, not run"); return }
        let g = ConvGeometry(batch: 9, inChannels: c.inChannels, height: c.height, width: c.width, outChannels: c.outChannels,
                             kernel: 3, stride: 1, padding: 1)
        var rng = RandomGenerator(seed: UInt64(31 + c.height * 100 + c.inChannels * 10 + c.outChannels))
        // Entries in [0.5, 1], as in `convolutionBackward`: no cancellation, so rtol 1e-12 bounds the rounding of a sum in another order.
        let x = Self.positive(9 * c.inChannels * c.height * c.width, &rng), w = Self.positive(c.outChannels * c.inChannels * 9, &rng)
        let b = Self.positive(c.outChannels, &rng)
        ConvolutionKernels.withDirect(true) {
            #expect(ConvolutionKernels.runsDirect(g), "the direct kernel does not run for \(g)")
            for bias in [b, nil] {
                let cmp = Comparison("direct conv \(c)\(bias == nil ? " no bias" : "")",
                                     actual: ConvolutionKernels.forward(g, x: x, weight: w, bias: bias),
                                     expected: ConvolutionKernels.referenceForward(g, x: x, weight: w, bias: bias), tolerance: Self.tolerance)
                print(cmp)
                #expect(cmp.passed, "\(cmp)")
            }
        }
    }

    /// The direct kernels in ``ConvolutionKernels/backward``: the input gradient as `ddpm_conv3x3_packed` of dY
    /// with the flipped weights, the weight gradient by `ddpm_conv3x3_weight_gradient`, against the
    /// direct loops. The gradients start from random values (they are added into, and `dx` is also
    /// written over NaN), so a kernel that stores instead of adding is O(1) off, as is a tap or
    /// channel flipped the wrong way, a sample summed twice or dropped. Cases: both gradients direct on a
    /// 16-wide plane; 8-wide planes (batch 5: four dW lanes, the last of two samples; dx sample by sample);
    /// 4 input channels (dx through col2im, dW direct); 8 output channels (dW through BLAS); 12-wide
    /// planes (dW only); 32 output channels, batch 9 (dx's K = 288 rows: two of the kernel's 192-row chunks;
    /// lanes of two and three samples). Each case says which parts run direct, so a condition that stopped holding fails too.
    @Test("direct 3×3 backward kernels vs direct loops", arguments: [
        (3, 8, 16, 16, 16, true, true), (5, 16, 8, 8, 32, true, true), (3, 8, 10, 8, 16, true, true),
        (3, 4, 16, 16, 16, false, true), (3, 8, 16, 16, 8, true, false), (3, 8, 12, 12, 16, false, true),
        (9, 24, 16, 16, 32, true, true),
    ])
    func directConvolutionBackward(_ c: (batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int, dx: Bool, dW: Bool)) {
        guard ConvolutionKernels.directOnThisCPU else { print("direct convolution backward: this CPU has no AVX-512, not run"); return }
        let g = ConvGeometry(batch: c.batch, inChannels: c.inChannels, height: c.height, width: c.width, outChannels: c.outChannels,
                             kernel: 3, stride: 1, padding: 1)
        var rng = RandomGenerator(seed: UInt64(57 + c.height * 100 + c.inChannels * 10 + c.outChannels))
        let x = Self.positive(g.batch * c.inChannels * c.height * c.width, &rng), w = Self.positive(c.outChannels * c.inChannels * 9, &rng)
        let dy = Self.positive(g.batch * c.outChannels * g.outPixels, &rng)
        let dx0 = Self.positive(x.count, &rng), dW0 = Self.positive(w.count, &rng)
        let reference = ConvolutionKernels.referenceBackward(g, x: x, weight: w, dy: dy)
        ConvolutionKernels.withDirect(true) {
            #expect(ConvolutionKernels.runsDirectInputGradient(g) == c.dx && ConvolutionKernels.runsDirectWeightGradient(g) == c.dW,
                    "direct input / weight gradient for \(g): expected \(c.dx) / \(c.dW)")
            for overwriting in [false, true] {
                var dx = overwriting ? [Double](repeating: .nan, count: x.count) : dx0, dW = dW0
                x.withUnsafeBufferPointer { px in w.withUnsafeBufferPointer { pw in dy.withUnsafeBufferPointer { pd in
                    dx.withUnsafeMutableBufferPointer { pdx in dW.withUnsafeMutableBufferPointer { pdw in
                        ConvolutionKernels.backward(g, x: px.baseAddress!, weight: pw.baseAddress!, dy: pd.baseAddress!, dx: pdx.baseAddress!,
                                                    dWeight: pdw.baseAddress!, dBias: nil, overwritingDx: overwriting)
                    } }
                } } }
                let expectedDx = overwriting ? reference.dx : zip(dx0, reference.dx).map { $0 + $1 }
                for (name, actual, expected) in [("dx", dx, expectedDx), ("dW", dW, zip(dW0, reference.dWeight).map { $0 + $1 })] {
                    let cmp = Comparison("direct backward \(name)\(overwriting ? " written over NaN" : " added") \(c)", actual: actual,
                                         expected: expected, tolerance: Self.tolerance)
                    print(cmp)
                    #expect(cmp.passed, "\(cmp)")
                }
            }
        }
    }

    /// The direct kernels stop at ``ConvolutionKernels/directWeightLimit`` (2¹⁷ doubles): the demo's
    /// largest layer (128 → 64 channels at 8×8, 73,728 weights) runs direct, the default network's 256 →
    /// 256 at 16×16 (589,824) and a layer one input channel over the limit (114 → 128: 131,328) do not.
    @Test func directKernelsStopAtTheWeightLimit() {
        func geometry(_ c: Int, _ o: Int, _ side: Int) -> ConvGeometry {
            ConvGeometry(batch: 8, inChannels: c, height: side, width: side, outChannels: o, kernel: 3, stride: 1, padding: 1)
        }
        ConvolutionKernels.withDirect(true) {
            guard ConvolutionKernels.directOnThisCPU else { print("direct kernels: this CPU has no AVX-512, not run"); return }
            #expect(ConvolutionKernels.directWeightLimit == 131_072)
            // (113 input channels: not a multiple of 8, so its input gradient goes through col2im anyway.)
            for (g, expected) in [(geometry(128, 64, 8), [true, true, true]), (geometry(256, 256, 16), [false, false, false]),
                                  (geometry(113, 128, 8), [true, false, true]), (geometry(114, 128, 8), [false, false, false])] {
                let runs = [ConvolutionKernels.runsDirect(g), ConvolutionKernels.runsDirectInputGradient(g), ConvolutionKernels.runsDirectWeightGradient(g)]
                #expect(runs == expected, "\(g): direct forward / dx / dW \(runs), expected \(expected)")
            }
        }
    }

    /// A size at which the samples run concurrently: batch 2 is two lanes of one sample (`ConvolutionKernels.sampleLanes`).
    @Test func convolutionSplitOverCores() {
        let g = ConvGeometry(batch: 2, inChannels: 8, height: 16, width: 15, outChannels: 6, kernel: 3, stride: 1, padding: 1)
        var rng = RandomGenerator(seed: 43)
        let x = rng.normals(2 * 8 * 16 * 15), w = rng.normals(6 * 8 * 9), b = rng.normals(6)
        let c = Comparison("conv split over cores", actual: ConvolutionKernels.forward(g, x: x, weight: w, bias: b),
                           expected: ConvolutionKernels.referenceForward(g, x: x, weight: w, bias: b), tolerance: Self.tolerance)
        print(c)
        #expect(c.passed, "\(c)")
    }

    /// The forward and backward kernels against the direct loops: batch 3 at 16×15 runs three lanes
    /// of one sample (spread over the cores, each summing its own share of dW); batch 1 splits
    /// its products instead; 4×3 images run inline,
    /// both samples lowered as one group; 6×5 and stride-2 8×7 images run groups of several samples
    /// per lane (`ConvolutionKernels.groupSize`), batch 5 in four lanes of one or two samples. Entries in [0.5, 1]
    /// keep the sums free of cancellation, so rtol 1e-12 bounds rounding while a sample summed
    /// twice, dropped, or written to the wrong place is O(1) off.
    @Test("conv2d forward and backward vs direct loops", arguments: [
        (3, 3, 1, 1, 16), (1, 3, 1, 1, 16), (3, 1, 1, 0, 16), (3, 3, 2, 1, 16), (2, 3, 1, 1, 4), (4, 1, 1, 0, 12),
        (8, 3, 1, 1, 6), (5, 3, 2, 1, 8), (8, 1, 1, 0, 6),
    ])
    func convolutionBackward(_ c: (batch: Int, kernel: Int, stride: Int, padding: Int, size: Int)) {
        let g = ConvGeometry(batch: c.batch, inChannels: 8, height: c.size, width: c.size - 1, outChannels: 6,
                             kernel: c.kernel, stride: c.stride, padding: c.padding)
        var rng = RandomGenerator(seed: UInt64(17 + c.batch * 10 + c.kernel))
        func positive(_ n: Int) -> [Double] { Self.positive(n, &rng) }
        let x = positive(g.batch * 8 * g.height * g.width), w = positive(6 * 8 * g.kernel * g.kernel)
        let dy = positive(g.batch * 6 * g.outPixels)
        let b = positive(6)
        let fast = ConvolutionKernels.backward(g, x: x, weight: w, dy: dy)
        let overwritten = ConvolutionKernels.backward(g, x: x, weight: w, dy: dy, overwritingDx: true)  // dx starts as NaN
        let reference = ConvolutionKernels.referenceBackward(g, x: x, weight: w, dy: dy)
        for (name, actual, expected) in [("y", ConvolutionKernels.forward(g, x: x, weight: w, bias: b), ConvolutionKernels.referenceForward(g, x: x, weight: w, bias: b)),
                                         ("dx", fast.dx, reference.dx), ("dW", fast.dWeight, reference.dWeight), ("db", fast.dBias, reference.dBias),
                                         ("dx written over NaN", overwritten.dx, reference.dx)] {
            let cmp = Comparison("conv \(name) \(c)", actual: actual, expected: expected, tolerance: Self.tolerance)
            print(cmp)
            #expect(cmp.passed, "\(cmp)")
        }
    }

    @Test func referenceBackwardByHand() {
        // 1 channel 3×3 image 1…9, 2×2 kernel [1, 2; 3, 4], no padding, dY = ones (2×2):
        // dW[i,j] = sum of the 2×2 window of x starting at (i, j); db = 4;
        // dx[y,x] = sum of the weights that touch pixel (y, x): corners 1, 2, 3, 4, edges 3, 4, 6, 7, centre 10.
        let g = ConvGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 2, stride: 1, padding: 0)
        let r = ConvolutionKernels.referenceBackward(g, x: (1...9).map(Double.init), weight: [1, 2, 3, 4], dy: [1, 1, 1, 1])
        #expect(r.dWeight == [12, 16, 24, 28])
        #expect(r.dBias == [4])
        #expect(r.dx == [1, 3, 2, 4, 10, 6, 3, 7, 4])
    }

    /// col2im must be the adjoint of im2col: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for any x and c. The
    /// 3×3 stride-1 case runs split over the cores (and lowers by shifted planes), the others inline.
    @Test("col2im is the adjoint of im2col", arguments: [(3, 1, 1), (3, 2, 1), (1, 1, 0), (2, 2, 0)])
    func col2imIsTheAdjoint(_ geometry: (kernel: Int, stride: Int, padding: Int)) {
        let g = ConvGeometry(batch: 2, inChannels: 8, height: 16, width: 15, outChannels: 1,
                             kernel: geometry.kernel, stride: geometry.stride, padding: geometry.padding)
        var rng = RandomGenerator(seed: 7)
        let x = rng.normals(2 * 8 * 16 * 15), c = rng.normals(g.patch * g.batch * g.outPixels)
        var cols = [Double](repeating: .nan, count: c.count), back = [Double](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { px in cols.withUnsafeMutableBufferPointer { ConvolutionKernels.im2col(g, px.baseAddress!, $0.baseAddress!) } }
        c.withUnsafeBufferPointer { pc in back.withUnsafeMutableBufferPointer { ConvolutionKernels.col2im(g, pc.baseAddress!, $0.baseAddress!) } }
        let lhs = zip(cols, c).reduce(0) { $0 + $1.0 * $1.1 }, rhs = zip(x, back).reduce(0) { $0 + $1.0 * $1.1 }
        let cmp = Comparison("⟨im2col x, c⟩ vs ⟨x, col2im c⟩ \(geometry)", actual: [lhs], expected: [rhs], tolerance: Self.tolerance)
        print(cmp)
        #expect(cmp.passed, "\(cmp)")
    }

    /// col2im of a same convolution by shifted planes (`ConvolutionKernels.raiseSame`) against the
    /// generic walk it replaces (`col2im(…, generic: true)`), with exact equality: the same terms in
    /// the same order give the same doubles. `cols` is random everywhere, so an entry that `lowerSame`
    /// zeroes (a row outside the image, a wrapped column) and is added back anyway shows. Adding into
    /// random dx, and overwriting dx that starts as NaN (against zeroing, then adding); planes from
    /// 1×1 (every tap but the centre leaves the image) to 16×15 (split over the cores at k = 5, batch 3).
    @Test("col2im of same convolutions by shifted planes vs the generic walk",
          arguments: [0, 1, 2], [(1, 1), (2, 1), (1, 3), (2, 2), (3, 5), (8, 8), (16, 15)])
    func raiseSameIsTheGenericWalk(_ pad: Int, _ size: (height: Int, width: Int)) {
        for batch in 1...3 { for overwriting in [false, true] {
            let g = ConvGeometry(batch: batch, inChannels: 3, height: size.height, width: size.width, outChannels: 1,
                                 kernel: 2 * pad + 1, stride: 1, padding: pad)
            var rng = RandomGenerator(seed: UInt64(1000 * batch + 100 * pad + 10 * size.height + size.width))
            let cols = rng.normals(g.patch * batch * g.outPixels), start = rng.normals(batch * 3 * size.height * size.width)
            func run(generic: Bool) -> [Double] {
                var dx = overwriting ? [Double](repeating: .nan, count: start.count) : start
                cols.withUnsafeBufferPointer { pc in dx.withUnsafeMutableBufferPointer {
                    ConvolutionKernels.col2im(g, pc.baseAddress!, $0.baseAddress!, overwriting: overwriting, generic: generic)
                } }
                return dx
            }
            let fast = run(generic: false), reference = run(generic: true)
            let differing = zip(fast, reference).filter { $0 != $1 }.count  // NaN differs from everything, −0 equals +0
            let cmp = Comparison("raiseSame k \(g.kernel) \(size) batch \(batch)\(overwriting ? " over NaN" : " adding")",
                                 actual: fast, expected: reference, tolerance: Self.tolerance)
            if differing > 0 || batch == 3 { print("\(cmp); \(differing) elements differ") }
            #expect(differing == 0, "\(differing) of \(fast.count) elements differ: \(cmp)")
        } }
    }

    /// The four-lane sums against left-to-right loops, for lengths around the lane width (the tail
    /// loop) and one long one. Entries in [0.5, 1]: no cancellation, so rtol 1e-13 bounds reordering.
    @Test("four-lane sums vs left-to-right loops", arguments: [0, 1, 3, 4, 5, 7, 8, 9, 1000])
    func laneSums(_ n: Int) {
        var rng = RandomGenerator(seed: UInt64(n + 5))
        let a = Self.positive(n, &rng), b = Self.positive(n, &rng)
        let c = 0.25
        var plain = (0.0, 0.0, 0.0)
        for i in 0..<n { plain.0 += a[i]; plain.1 += (a[i] - c) * (a[i] - c); plain.2 += a[i] * (b[i] - c) }
        let lanes = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
            (Sums.sum(pa.baseAddress!, n), Sums.squaredDeviations(pa.baseAddress!, n, from: c),
             Sums.dotDeviations(pa.baseAddress!, pb.baseAddress!, n, from: c))
        } }
        let cmp = Comparison("lane sums n = \(n)", actual: [lanes.0, lanes.1, lanes.2], expected: [plain.0, plain.1, plain.2],
                             tolerance: Tolerance(rtol: 1e-13, atol: 0))
        print(cmp)
        #expect(cmp.passed, "\(cmp)")
        if n == 9 { #expect(Sums.sum([1, 2, 3, 4, 5, 6, 7, 8, 9.5], 9) == 45.5) }  // by hand
    }

    /// Several sums at once (`Sums.sums`, `Sums.squaredDeviations(_:stride:count:length:from:into:)`: four
    /// interleaved, then one at a time) are, bit for bit, the one-at-a-time sums they stand for: counts 1–9
    /// (whole groups of four and the rest), lengths around the lane width, rows with gaps between them
    /// (stride > length), each row with its own centre.
    @Test("several lane sums at once vs one at a time", arguments: [(1, 5), (4, 4), (5, 3), (7, 64), (9, 1000)])
    func laneSumsAtOnce(_ c: (count: Int, length: Int)) {
        let stride = c.length + 3
        var rng = RandomGenerator(seed: UInt64(c.count * 10 + c.length))
        let a = (0..<(c.count * stride)).map { _ in 2 * rng.nextUniform() - 1 }, centres = (0..<c.count).map { _ in rng.nextUniform() - 0.5 }
        var sums = [Double](repeating: .nan, count: c.count), deviations = sums
        a.withUnsafeBufferPointer { pa in centres.withUnsafeBufferPointer { pc in
            sums.withUnsafeMutableBufferPointer { ps in deviations.withUnsafeMutableBufferPointer { pd in
                Sums.sums(pa.baseAddress!, stride: stride, count: c.count, length: c.length, into: ps.baseAddress!)
                Sums.squaredDeviations(pa.baseAddress!, stride: stride, count: c.count, length: c.length, from: pc.baseAddress!, into: pd.baseAddress!)
            } }
        } }
        let one = a.withUnsafeBufferPointer { pa in (0..<c.count).map { j in
            (Sums.sum(pa.baseAddress! + j * stride, c.length), Sums.squaredDeviations(pa.baseAddress! + j * stride, c.length, from: centres[j]))
        } }
        let d = firstDifference(sums + deviations, one.map(\.0) + one.map(\.1))
        print("lane sums at once \(c): \(d ?? "bit-identical")")
        #expect(d == nil, "\(c): \(d ?? "")")
    }

    /// Batched products with operands read transposed, against the definition written out: 8
    /// products of 16×20·20×16 (40,960 multiply–adds in all: whole products spread over the cores) and
    /// one product above the split threshold (split over the cores). Entries in [0.5, 1]: no cancellation.
    @Test("batched matmul with transposes vs loops", arguments: [(8, 16, 20, 16), (1, 130, 90, 100)])
    func transposedProducts(_ size: (batch: Int, m: Int, k: Int, n: Int)) {
        let (batch, m, k, n) = size
        var rng = RandomGenerator(seed: UInt64(batch * 100 + m))
        func positive(_ c: Int) -> [Double] { Self.positive(c, &rng) }
        let a = positive(batch * m * k), b = positive(batch * k * n)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            // Stored layouts: A as [m, k] or [k, m], B as [k, n] or [n, k].
            let A = Tensor(shape: ta ? [batch, k, m] : [batch, m, k], data: a), B = Tensor(shape: tb ? [batch, n, k] : [batch, k, n], data: b)
            var expected = [Double](repeating: 0, count: batch * m * n)
            for q in 0..<batch { for i in 0..<m { for j in 0..<n {
                var acc = 0.0
                for l in 0..<k {
                    acc += a[q * m * k + (ta ? l * m + i : i * k + l)] * b[q * k * n + (tb ? j * k + l : l * n + j)]
                }
                expected[(q * m + i) * n + j] = acc
            } } }
            let cmp = Comparison("matmul \(size) transposeA \(ta) transposeB \(tb)", actual: A.matmul(B, transposeA: ta, transposeB: tb).data,
                                 expected: expected, tolerance: Self.tolerance)
            print(cmp)
            #expect(cmp.passed, "\(cmp)")
        }
    }

    /// The four-lane exp against Foundation.exp (glibc's, within half an ULP of e^x): a sweep of
    /// the whole finite range, dense random points on [−20, 0] (where SiLU and softmax call it), the
    /// edges of the vector path (±708) and the special values, which go to Foundation.exp and must
    /// agree exactly. Bound: 1 ULP (dropping the r¹³ term of the series already breaks it).
    @Test func vectorExponential() {
        var rng = RandomGenerator(seed: 99)
        var xs = (0...200_000).map { -745.5 + 1455.0 * Double($0) / 200_000 }
        xs += (0..<200_000).map { _ in -20 * rng.nextUniform() }
        xs += (0..<1000).map { Double($0) * 0.6931471805599453 / 2 - 300 }  // half-way between multiples of ln 2
        xs += [0, -0.0, -708, 708, -708.0000001, 708.0000001, 709.78, -745.1, -746, 1e-300, -1e-300]
        var ys = [Double](repeating: .nan, count: xs.count)
        xs.withUnsafeBufferPointer { px in ys.withUnsafeMutableBufferPointer { py in
            Exponential.exp(px.baseAddress!, py.baseAddress!, count: xs.count)
        } }
        expectULP(ys, xs.map { Foundation.exp($0) }, "four-lane exp", bound: 1)
        var specials: [Double] = [.infinity, -.infinity, .nan, 0, -1, 5]  // six: one full group and a padded one
        specials.withUnsafeMutableBufferPointer { p in Exponential.exp(p.baseAddress!, p.baseAddress!, count: 6) }
        #expect(specials[0] == .infinity && specials[1] == 0 && specials[2].isNaN && specials[3] == 1)
        expectULP([specials[4], specials[5]], [Foundation.exp(-1), Foundation.exp(5)], "four-lane exp, padded group", bound: 1)
    }

    /// The baseline (SSE2), AVX2 and AVX-512 builds of the C kernels do the same operations in the same
    /// order: their results must be identical bit for bit (a build the CPU lacks runs the widest it has
    /// below it, so on a CPU without AVX-512 two of the calls run the same build).
    @Test func vectorKernelBuildsAgree() {
        var rng = RandomGenerator(seed: 321)
        let x = (0..<10_003).map { _ in -30 + 60 * rng.nextUniform() } + [800, -800, .nan, .infinity, -.infinity, 0]
        func run(_ build: Exponential.Build) -> ([Double], [Double], [Double]) {
            var e = [Double](repeating: 0, count: x.count), y = e, s = e
            x.withUnsafeBufferPointer { px in
                e.withUnsafeMutableBufferPointer { Exponential.exp(px.baseAddress!, $0.baseAddress!, count: x.count, build: build) }
                y.withUnsafeMutableBufferPointer { py in s.withUnsafeMutableBufferPointer { ps in
                    Exponential.silu(px.baseAddress!, py.baseAddress!, sigma: ps.baseAddress!, count: x.count, build: build)
                } }
            }
            return (e, y, s)
        }
        let a = run(.baseline)
        print("vector kernels: this CPU runs the \(Exponential.active) build")
        for build in [Exponential.Build.avx2, .avx512] {
            let b = run(build)
            for (name, u, v) in [("exp", a.0, b.0), ("silu", a.1, b.1), ("sigma", a.2, b.2)] {
                let differing = zip(u, v).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(name): \(differing) of \(u.count) values differ between the baseline and \(build) builds")
            }
        }
    }

    /// SiLU and softmax, which call the four-lane exp, against their scalar definitions with
    /// Foundation.exp: a · σ(a) with σ = 1/(1 + e^{−a}) (e^{a}/(1 + e^{a}) for a < 0), and
    /// e^{a_i − max}/Σ_j e^{a_j − max}. SiLU on 8198 elements: split over two cores into halves of
    /// 4099, each ending in a padded group of three; softmax rows of 5 and 333 (padded groups of 1).
    @Test func siluAndSoftmaxAgainstScalarDefinitions() {
        var rng = RandomGenerator(seed: 123)
        let a = (0..<8193).map { _ in -40 + 80 * rng.nextUniform() } + [0, -0.0, Double.leastNormalMagnitude / 4, -800, 800]
        let silu = Tensor(shape: [a.count], data: a).silu().data
        let expected = a.map { x in x * (x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))) }
        expectULP(silu, expected, "silu (four-lane σ) vs scalar", bound: 2)
        let rows = (0..<3).map { r in (0..<(r == 0 ? 5 : 333)).map { _ in -10 + 20 * rng.nextUniform() } }
        for row in rows {
            let mx = row.max()!
            let e = row.map { Foundation.exp($0 - mx) }, total = e.reduce(0, +)
            let c = Comparison("softmax of \(row.count)", actual: Tensor(shape: [row.count], data: row).softmax().data,
                               expected: e.map { $0 / total }, tolerance: Tolerance(rtol: 1e-14, atol: 0))
            print(c)
            #expect(c.passed, "\(c)")
        }
    }

    @Test func directConvolutionByHand() {
        // 1 channel 3×3 image 1…9, 2×2 kernel of ones, stride 1, no padding: sums of 2×2 windows.
        let g = ConvGeometry(batch: 1, inChannels: 1, height: 3, width: 3, outChannels: 1, kernel: 2, stride: 1, padding: 0)
        #expect(ConvolutionKernels.referenceForward(g, x: (1...9).map(Double.init), weight: [1, 1, 1, 1], bias: [0.5]) == [12.5, 16.5, 24.5, 28.5])
    }

    @Test func comparisonReportsTheWorstElement() {
        let c = Comparison("planted", actual: [1, 2, 3.001], expected: [1, 2, 3], tolerance: Self.tolerance)
        #expect(!c.passed && c.worstIndex == 2)
        #expect(c.description.contains("worst ratio") && c.description.contains("element 2"))
    }
}
