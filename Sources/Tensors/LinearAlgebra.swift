// Matrix products through BLAS: batched matmul and the linear layer.

import Kernels

extension Tensor {
    /// Batched matrix product `C_b = op(A_b) · op(B_b)` for `A: […, m, k]`, `B: […, k, n]` with equal
    /// leading axes (or a 2-D `B` shared by every batch); `transposeA`/`transposeB` read an operand's
    /// last two axes transposed (A stored `[…, k, m]`, B stored `[…, n, k]`) without copying it.
    /// Backward: `d op(A) = dC · op(B)ᵀ`, `d op(B) = op(A)ᵀ · dC`, so `dA = op(B) · dCᵀ` when A is
    /// read transposed and `dB = dCᵀ · op(A)` when B is.
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul: needs rank ≥ 2, got \(shape) and \(other.shape)")
        let (rowsA, colsA) = (shape[rank - 2], shape[rank - 1]), (rowsB, colsB) = (other.shape[other.rank - 2], other.shape[other.rank - 1])
        let (m, k) = transposeA ? (colsA, rowsA) : (rowsA, colsA)
        let (kB, n) = transposeB ? (colsB, rowsB) : (rowsB, colsB)
        let lead = Array(shape.dropLast(2))
        let shared = other.rank == 2
        precondition(kB == k && (shared || Array(other.shape.dropLast(2)) == lead),
                     "matmul: shapes \(shape)\(transposeA ? "ᵀ" : "") and \(other.shape)\(transposeB ? "ᵀ" : "") do not chain")
        let batch = lead.reduce(1, *)
        let a = self, b = other, av = data, bv = other.data
        let ta: Transpose = transposeA ? .transposed : .none, tb: Transpose = transposeB ? .transposed : .none
        // Gemm.blas with beta 0 writes every element of C (also when k = 0), so no zero-fill first.
        let out = uninitializedArray(batch * m * n) { pc in av.withUnsafeBufferPointer { pa in bv.withUnsafeBufferPointer { pb in
            Tensor.forEachProduct(batch, work: m * n * k) { i, split in
                Gemm.blas(GemmShape(m: m, n: n, k: k, transposeA: ta, transposeB: tb), pa.baseAddress! + i * m * k,
                          pb.baseAddress! + (shared ? 0 : i * k * n), pc + i * m * n, split: split)
            }
        } } }
        return Tensor.operation("matmul", shape: lead + [m, n], data: out, parents: [a, b]) { g in
            var ga: [Double]? = a.requiresGrad ? [Double](repeating: 0, count: av.count) : nil
            var gb: [Double]? = b.requiresGrad ? [Double](repeating: 0, count: bv.count) : nil
            av.withUnsafeBufferPointer { pa in bv.withUnsafeBufferPointer { pb in g.withUnsafeBufferPointer { pg in
                if ga != nil {
                    ga!.withUnsafeMutableBufferPointer { p in
                        let pga = p.baseAddress!
                        Tensor.forEachProduct(batch, work: m * n * k) { i, split in
                            let gi = pg.baseAddress! + i * m * n, bi = pb.baseAddress! + (shared ? 0 : i * k * n)
                            if transposeA {  // dA (k × m) = op(B) · dCᵀ
                                Gemm.blas(GemmShape(m: k, n: m, k: n, transposeA: tb, transposeB: .transposed), bi, gi, pga + i * m * k, split: split)
                            } else {         // dA (m × k) = dC · op(B)ᵀ
                                Gemm.blas(GemmShape(m: m, n: k, k: n, transposeB: transposeB ? .none : .transposed), gi, bi, pga + i * m * k, split: split)
                            }
                        }
                    }
                }
                if gb != nil {
                    gb!.withUnsafeMutableBufferPointer { p in
                        let pgb = p.baseAddress!
                        // A shared B sums every batch's contribution into one gradient: one product after another.
                        Tensor.forEachProduct(batch, work: shared ? 0 : m * n * k) { i, split in
                            let gi = pg.baseAddress! + i * m * n, ai = pa.baseAddress! + i * m * k
                            let beta: Double = shared ? 1 : 0, dst = pgb + (shared ? 0 : i * k * n)
                            if transposeB {  // dB (n × k) = dCᵀ · op(A)
                                Gemm.blas(GemmShape(m: n, n: k, k: m, transposeA: .transposed, transposeB: ta), gi, ai, beta: beta, dst, split: split)
                            } else {         // dB (k × n) = op(A)ᵀ · dC
                                Gemm.blas(GemmShape(m: k, n: n, k: m, transposeA: transposeA ? .none : .transposed), ai, gi, beta: beta, dst, split: split)
                            }
                        }
                    }
                }
            } } }
            return [ga, gb]
        }
    }

    /// Runs `body(i, split)` for the `count` products of a batch. Products too small to split
    /// (below `Gemm.minimumSplitWork`, `work` multiply–adds each) are spread over the cores whole
    /// (`split` false) when OpenBLAS runs single-threaded; otherwise they run in order, each split
    /// as `Gemm.blas` decides. `work` 0: always in order.
    static func forEachProduct(_ count: Int, work: Int, _ body: (_ i: Int, _ split: Bool) -> Void) {
        if work > 0 && work < Gemm.minimumSplitWork && count > 1 && BLASLibrary.shared.splitsProducts {
            Parallel.chunks(count, work: count * work) { r in for i in r { body(i, false) } }
        } else {
            for i in 0..<count { body(i, true) }
        }
    }

    /// The linear layer `y = x Wᵀ + b` for `x: [n, in]`, `W: [out, in]` (PyTorch layout), `b: [out]`.
    /// Backward: `dx = dy W`, `dW = dyᵀ x`, `db = Σ_rows dy`.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(x.rank == 2 && weight.rank == 2 && weight.shape[1] == x.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape) (expected [n, in] and [out, in])")
        let n = x.shape[0], fin = x.shape[1], fout = weight.shape[0]
        if let bias { precondition(bias.shape == [fout], "linear: bias \(bias.shape) does not match weight \(weight.shape)") }
        var out = [Double](repeating: 0, count: n * fout)
        let xv = x.data, wv = weight.data
        xv.withUnsafeBufferPointer { px in wv.withUnsafeBufferPointer { pw in out.withUnsafeMutableBufferPointer { py in
            Gemm.blas(GemmShape(m: n, n: fout, k: fin, transposeB: .transposed), px.baseAddress!, pw.baseAddress!, py.baseAddress!)
        } } }
        if let b = bias?.data { for i in 0..<n { for j in 0..<fout { out[i * fout + j] += b[j] } } }
        let parents = bias.map { [x, weight, $0] } ?? [x, weight]
        return operation("linear", shape: [n, fout], data: out, parents: parents) { g in
            var gx: [Double]? = nil, gw: [Double]? = nil, gb: [Double]? = nil
            g.withUnsafeBufferPointer { pg in
                if x.requiresGrad {
                    var d = [Double](repeating: 0, count: n * fin)
                    wv.withUnsafeBufferPointer { pw in d.withUnsafeMutableBufferPointer { pd in
                        Gemm.blas(GemmShape(m: n, n: fin, k: fout), pg.baseAddress!, pw.baseAddress!, pd.baseAddress!)
                    } }
                    gx = d
                }
                if weight.requiresGrad {
                    var d = [Double](repeating: 0, count: fout * fin)
                    xv.withUnsafeBufferPointer { px in d.withUnsafeMutableBufferPointer { pd in
                        Gemm.blas(GemmShape(m: fout, n: fin, k: n, transposeA: .transposed), pg.baseAddress!, px.baseAddress!, pd.baseAddress!)
                    } }
                    gw = d
                }
            }
            if let bias, bias.requiresGrad {
                var d = [Double](repeating: 0, count: fout)
                for i in 0..<n { for j in 0..<fout { d[j] += g[i * fout + j] } }
                gb = d
            }
            return bias == nil ? [gx, gw] : [gx, gw, gb]
        }
    }
}
