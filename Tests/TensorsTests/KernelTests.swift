// The BLAS path against the plain-loop reference kernels, at rtol 1e-12.
import TestSupport
import Testing
import Kernels
import Tensors

@Suite("BLAS kernels against plain-loop references")
struct KernelTests {
    static let tolerance = Tolerance(rtol: 1e-12, atol: 0)

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
    /// or column blocks (n > m), one per core. Entries in [0.5, 1] keep every sum free of
    /// cancellation, so rtol 1e-12 bounds rounding (k·ε ≈ 1.3e-14) while a misplaced block is O(1) off.
    @Test("dgemm split over cores", arguments: [
        GemmShape(m: 131, n: 70, k: 120), GemmShape(m: 131, n: 70, k: 120, transposeA: .transposed),
        GemmShape(m: 70, n: 133, k: 120, transposeB: .transposed),
        GemmShape(m: 70, n: 133, k: 120, transposeA: .transposed, transposeB: .transposed),
    ])
    func splitGemm(_ s: GemmShape) {
        var rng = RandomGenerator(seed: UInt64(s.m * 1000 + s.n))
        let a = (0..<(s.m * s.k)).map { _ in 0.5 + 0.5 * rng.nextUniform() }
        let b = (0..<(s.k * s.n)).map { _ in 0.5 + 0.5 * rng.nextUniform() }
        let c = Comparison("split gemm \(s)", actual: Gemm.product(s, a, b), expected: Gemm.product(s, a, b, useBLAS: false), tolerance: Self.tolerance)
        print(c)
        #expect(c.passed, "\(c)")
    }

    @Test func referenceGemmIsTheDefinition() {
        // [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]], computed by hand.
        #expect(Gemm.product(GemmShape(m: 2, n: 2, k: 2), [1, 2, 3, 4], [5, 6, 7, 8], useBLAS: false) == [19, 22, 43, 50])
    }

    @Test("conv2d im2col+dgemm vs direct loops", arguments: [
        (1, 1, 0), (1, 2, 0), (3, 1, 0), (3, 1, 1), (3, 2, 0), (3, 2, 1), (1, 1, 1),
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

    /// A size at which im2col and the output transposition run split over the cores.
    @Test func convolutionSplitOverCores() {
        let g = ConvGeometry(batch: 2, inChannels: 8, height: 16, width: 15, outChannels: 6, kernel: 3, stride: 1, padding: 1)
        var rng = RandomGenerator(seed: 43)
        let x = rng.normals(2 * 8 * 16 * 15), w = rng.normals(6 * 8 * 9), b = rng.normals(6)
        let c = Comparison("conv split over cores", actual: ConvolutionKernels.forward(g, x: x, weight: w, bias: b),
                           expected: ConvolutionKernels.referenceForward(g, x: x, weight: w, bias: b), tolerance: Self.tolerance)
        print(c)
        #expect(c.passed, "\(c)")
    }

    /// col2im must be the adjoint of im2col: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for any x and c. Sizes
    /// large enough that both run split over the cores.
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
