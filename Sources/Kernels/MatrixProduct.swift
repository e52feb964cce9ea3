// Matrix products: the one place that calls BLAS, and its plain-loop twin.
import CBLAS
import Dispatch

/// Which operand of a matrix product is read transposed.
public enum Transpose: Sendable {
    case none, transposed
}

/// The shape of one row-major matrix product `C = alpha · op(A) · op(B) + beta · C`.
///
/// `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`; all storage is row-major and dense,
/// so the leading dimension of each operand is its stored number of columns.
public struct GemmShape: Sendable, Equatable {
    public var m: Int, n: Int, k: Int
    public var transposeA: Transpose, transposeB: Transpose
    public init(m: Int, n: Int, k: Int, transposeA: Transpose = .none, transposeB: Transpose = .none) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
        self.m = m; self.n = n; self.k = k; self.transposeA = transposeA; self.transposeB = transposeB
    }
    /// Stored column count of A: `k` when untransposed (A is m×k), else `m` (A is k×m).
    var lda: Int { transposeA == .none ? k : m }
    var ldb: Int { transposeB == .none ? n : k }
}

/// The matrix-product kernels. `blas` is what every layer uses; `reference` is the plain triple
/// loop that tests hold it against.
public enum Gemm {
    /// Products with fewer multiply–adds than this run on one thread (≈ 20 µs of work).
    public static let minimumSplitWork = 1 << 20

    /// `C ← alpha · op(A) · op(B) + beta · C` through OpenBLAS's `cblas_dgemm` (row-major), loaded by ``BLASLibrary``.
    /// `split` false keeps the product whole, on the calling thread (for callers that already run
    /// products side by side; whether they do must depend on the shapes only, as ``blocks(_:)`` does).
    @inline(__always)
    public static func blas(_ s: GemmShape, alpha: Double = 1, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                            beta: Double = 0, _ c: UnsafeMutablePointer<Double>, split: Bool = true) {
        if s.m == 0 || s.n == 0 { return }
        if s.k == 0 {  // BLAS would be fine too; being explicit keeps the beta semantics obvious
            for i in 0..<(s.m * s.n) { c[i] = beta == 0 ? 0 : beta * c[i] }
            return
        }
        let threads = BLASLibrary.shared.splitsProducts ? Parallel.parts : 1  // the first access loads OpenBLAS
        let ta: Int32 = s.transposeA == .none ? 0 : 1, tb: Int32 = s.transposeB == .none ? 0 : 1
        let parts = split ? blocks(s) : 1
        if parts < 2 {
            ddpm_dgemm(ta, tb, Int32(s.m), Int32(s.n), Int32(s.k), alpha, a, Int32(s.lda), b, Int32(s.ldb), beta, c, Int32(s.n))
            return
        }
        // `parts` blocks along the longer side of C, each block a product of its own: rows
        // i0..<i1 of C take rows i0..<i1 of op(A); columns j0..<j1 take columns j0..<j1 of op(B).
        // Blocks start on multiples of 8 (the width of the AVX-512 kernels' register tiles). They are
        // spread over the cores, or run in order when OpenBLAS runs its own threads.
        let alongRows = s.m >= s.n
        let length = alongRows ? s.m : s.n
        let operands = UncheckedSendable((a, b, c))  // blocks write disjoint rows/columns of C
        Parallel.forEachLane(parts, threads: threads) { part in
            let (a, b, c) = operands.value
            let lo = (length * part / parts) & ~7, hi = part == parts - 1 ? length : (length * (part + 1) / parts) & ~7
            if hi <= lo { return }
            if alongRows {
                let aBlock = s.transposeA == .none ? a + lo * s.k : a + lo
                ddpm_dgemm(ta, tb, Int32(hi - lo), Int32(s.n), Int32(s.k), alpha, aBlock, Int32(s.lda), b, Int32(s.ldb),
                           beta, c + lo * s.n, Int32(s.n))
            } else {
                let bBlock = s.transposeB == .none ? b + lo : b + lo * s.k
                ddpm_dgemm(ta, tb, Int32(s.m), Int32(hi - lo), Int32(s.k), alpha, a, Int32(s.lda), bBlock, Int32(s.ldb),
                           beta, c + lo, Int32(s.n))
            }
        }
    }

    /// The blocks ``blas(_:alpha:_:_:beta:_:split:)`` cuts a product into: one below
    /// ``minimumSplitWork`` multiply–adds, else ``Parallel/lanes`` (fewer when the longer side of C
    /// has under 16 rows or columns per block). A function of the shape alone, never of the core
    /// count: OpenBLAS may compute an element differently in a product of another shape (its
    /// small-matrix kernels are chosen by m·n·k), so the cut must not move with the threads.
    public static func blocks(_ s: GemmShape) -> Int {
        if s.m * s.n * s.k < minimumSplitWork { return 1 }
        return max(1, min(Parallel.lanes, max(s.m, s.n) / 16))
    }

    /// The same product by the textbook triple loop, `C_ij = alpha Σ_l op(A)_il op(B)_lj + beta C_ij`.
    public static func reference(_ s: GemmShape, alpha: Double = 1, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>,
                                 beta: Double = 0, _ c: UnsafeMutablePointer<Double>) {
        for i in 0..<s.m {
            for j in 0..<s.n {
                var acc = 0.0
                for l in 0..<s.k {
                    let aij = s.transposeA == .none ? a[i * s.k + l] : a[l * s.m + i]
                    let blj = s.transposeB == .none ? b[l * s.n + j] : b[j * s.k + l]
                    acc += aij * blj
                }
                c[i * s.n + j] = alpha * acc + (beta == 0 ? 0 : beta * c[i * s.n + j])
            }
        }
    }

    /// Convenience over arrays for tests and small callers.
    public static func product(_ s: GemmShape, _ a: [Double], _ b: [Double], useBLAS: Bool = true) -> [Double] {
        precondition(a.count == s.m * s.k && b.count == s.k * s.n,
                     "gemm: A has \(a.count) elements, expected \(s.m * s.k); B has \(b.count), expected \(s.k * s.n)")
        var c = [Double](repeating: 0, count: s.m * s.n)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            if useBLAS { blas(s, pa.baseAddress!, pb.baseAddress!, pc.baseAddress!) }
            else { reference(s, pa.baseAddress!, pb.baseAddress!, pc.baseAddress!) }
        } } }
        return c
    }
}
