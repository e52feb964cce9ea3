// Operations that move values without arithmetic: reshape, transpose, concatenate, split, gather.

import Kernels

/// Copies `outer` blocks of `count` doubles, block o from `src + o·srcStride` to `dst + o·dstStride`, the blocks
/// split over the cores (they write disjoint memory; a copy is the same whichever thread makes it).
func copyBlocks(_ outer: Int, of count: Int, from src: UnsafePointer<Double>, stride srcStride: Int,
                to dst: UnsafeMutablePointer<Double>, stride dstStride: Int) {
    Parallel.chunks(outer, work: outer * count) { blocks in
        for o in blocks { (dst + o * dstStride).update(from: src + o * srcStride, count: count) }
    }
}

extension Tensor {
    /// The same values with a new shape of equal element count; the gradient is reshaped back.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "reshape: cannot view shape \(shape) (\(count) elements) as \(newShape)")
        return Tensor.operation("reshape", shape: newShape, data: data, parents: [self]) { g in [g] }
    }

    /// Swaps the last two axes: `[…, m, n] → […, n, m]`; the gradient is swapped back.
    public func transposedLastTwo() -> Tensor {
        precondition(rank >= 2, "transpose: needs rank ≥ 2, got shape \(shape)")
        let m = shape[rank - 2], n = shape[rank - 1], batch = count / max(m * n, 1)
        var outShape = shape; outShape[rank - 2] = n; outShape[rank - 1] = m
        func swap(_ v: [Double], _ rows: Int, _ cols: Int) -> [Double] {
            uninitializedArray(v.count) { o in v.withUnsafeBufferPointer { p in
                for b in 0..<batch { let base = b * rows * cols
                    for i in 0..<rows { for j in 0..<cols { o[base + j * rows + i] = p[base + i * cols + j] } }
                }
            } }
        }
        return Tensor.operation("transpose", shape: outShape, data: swap(data, m, n), parents: [self]) { g in [swap(g, n, m)] }
    }

    /// Joins tensors along `axis`; all other extents must agree. The gradient is cut back into pieces.
    public static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concatenate: no tensors")
        let r = parts[0].rank, ax = axis < 0 ? axis + r : axis
        precondition(ax >= 0 && ax < r, "concatenate: axis \(axis) out of range for rank \(r)")
        for p in parts {
            precondition(p.rank == r && (0..<r).allSatisfy { $0 == ax || p.shape[$0] == parts[0].shape[$0] },
                         "concatenate: shapes \(parts[0].shape) and \(p.shape) differ off axis \(ax)")
        }
        let outer = parts[0].shape[..<ax].reduce(1, *), inner = parts[0].shape[(ax + 1)...].reduce(1, *)
        let widths = parts.map { $0.shape[ax] * inner }, total = widths.reduce(0, +)
        var outShape = parts[0].shape; outShape[ax] = parts.reduce(0) { $0 + $1.shape[ax] }
        let out = uninitializedArray(outer * total) { dst in
            var offset = 0
            for (p, w) in zip(parts, widths) {
                p.data.withUnsafeBufferPointer { src in copyBlocks(outer, of: w, from: src.baseAddress!, stride: w, to: dst + offset, stride: total) }
                offset += w
            }
        }
        return operation("concatenate", shape: outShape, data: out, parents: parts) { g in
            var grads: [[Double]?] = []
            var off = 0
            for (p, w) in zip(parts, widths) {
                if p.requiresGrad {
                    grads.append(uninitializedArray(outer * w) { gp in g.withUnsafeBufferPointer { pg in
                        copyBlocks(outer, of: w, from: pg.baseAddress! + off, stride: total, to: gp, stride: w)
                    } })
                } else { grads.append(nil) }
                off += w
            }
            return grads
        }
    }

    /// Splits into `chunks` equal pieces along `axis` (the extent must divide evenly).
    public func split(into chunks: Int, axis: Int) -> [Tensor] {
        let ax = axis < 0 ? axis + rank : axis
        precondition(ax >= 0 && ax < rank, "split: axis \(axis) out of range for shape \(shape)")
        precondition(chunks > 0 && shape[ax] % chunks == 0, "split: extent \(shape[ax]) of axis \(ax) in shape \(shape) is not divisible into \(chunks) chunks")
        let piece = shape[ax] / chunks
        return (0..<chunks).map { slice(axis: ax, start: $0 * piece, length: piece) }
    }

    /// The sub-tensor `start ..< start+length` along `axis`; the gradient is zero outside it.
    public func slice(axis: Int, start: Int, length: Int) -> Tensor {
        precondition(start >= 0 && length >= 0 && start + length <= shape[axis], "slice: \(start)..<\(start + length) outside axis \(axis) of shape \(shape)")
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        let full = shape[axis] * inner, w = length * inner, off = start * inner
        var outShape = shape; outShape[axis] = length
        let out = uninitializedArray(outer * w) { dst in data.withUnsafeBufferPointer { src in
            copyBlocks(outer, of: w, from: src.baseAddress! + off, stride: full, to: dst, stride: w)
        } }
        let n = count
        return Tensor.operation("slice", shape: outShape, data: out, parents: [self]) { g in
            var gi = [Double](repeating: 0, count: n)
            gi.withUnsafeMutableBufferPointer { d in g.withUnsafeBufferPointer { pg in
                copyBlocks(outer, of: w, from: pg.baseAddress!, stride: w, to: d.baseAddress! + off, stride: full)
            } }
            return [gi]
        }
    }

    /// `out_i = table[indices_i]` for a 1-D table (per-timestep coefficients); the backward adds
    /// each output gradient into the table entry it was read from.
    public func gather(_ indices: [Int]) -> Tensor {
        precondition(rank == 1, "gather: table must be 1-D, got shape \(shape)")
        let n = count
        for i in indices { precondition(i >= 0 && i < n, "gather: index \(i) outside table of \(n) entries") }
        let out = indices.map { data[$0] }
        return Tensor.operation("gather", shape: [indices.count], data: out, parents: [self]) { g in
            var gt = [Double](repeating: 0, count: n)
            for (k, i) in indices.enumerated() { gt[i] += g[k] }
            return [gt]
        }
    }
}
