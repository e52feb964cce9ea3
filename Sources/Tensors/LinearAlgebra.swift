// Matrix products through BLAS: batched matmul and the linear layer.

import Kernels

extension Tensor {
    /// Batched matrix product `C_b = A_b · B_b` for `A: […, m, k]`, `B: […, k, n]` with equal leading
    /// axes (or a 2-D `B` shared by every batch). Backward: `dA = dC · Bᵀ`, `dB = Aᵀ · dC`.
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul: needs rank ≥ 2, got \(shape) and \(other.shape)")
        let m = shape[rank - 2], k = shape[rank - 1], n = other.shape[other.rank - 1]
        let lead = Array(shape.dropLast(2))
        let shared = other.rank == 2
        precondition(other.shape[other.rank - 2] == k && (shared || Array(other.shape.dropLast(2)) == lead),
                     "matmul: shapes \(shape) and \(other.shape) do not chain")
        let batch = lead.reduce(1, *)
        let a = self, b = other, av = data, bv = other.data
        // Gemm.blas with beta 0 writes every element of C (also when k = 0), so no zero-fill first.
        let out = uninitializedArray(batch * m * n) { pc in av.withUnsafeBufferPointer { pa in bv.withUnsafeBufferPointer { pb in
            for i in 0..<batch {
                Gemm.blas(GemmShape(m: m, n: n, k: k), pa.baseAddress! + i * m * k,
                          pb.baseAddress! + (shared ? 0 : i * k * n), pc + i * m * n)
            }
        } } }
        return Tensor.operation("matmul", shape: lead + [m, n], data: out, parents: [a, b]) { g in
            var ga: [Double]? = a.requiresGrad ? [Double](repeating: 0, count: av.count) : nil
            var gb: [Double]? = b.requiresGrad ? [Double](repeating: 0, count: bv.count) : nil
            av.withUnsafeBufferPointer { pa in bv.withUnsafeBufferPointer { pb in g.withUnsafeBufferPointer { pg in
                for i in 0..<batch {
                    let gi = pg.baseAddress! + i * m * n
                    if ga != nil {
                        ga!.withUnsafeMutableBufferPointer { p in
                            Gemm.blas(GemmShape(m: m, n: k, k: n, transposeB: .transposed), gi,
                                      pb.baseAddress! + (shared ? 0 : i * k * n), p.baseAddress! + i * m * k)
                        }
                    }
                    if gb != nil {
                        gb!.withUnsafeMutableBufferPointer { p in
                            Gemm.blas(GemmShape(m: k, n: n, k: m, transposeA: .transposed), pa.baseAddress! + i * m * k, gi,
                                      beta: shared ? 1 : 0, p.baseAddress! + (shared ? 0 : i * k * n))
                        }
                    }
                }
            } } }
            return [ga, gb]
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
