// Broadcasting of size-1 axes (numpy rules): shapes are aligned on the right; an axis of extent 1
// stretches to the other operand's extent.

import Kernels

enum Broadcast {
    /// The broadcast result shape, or a precondition failure naming `op` and both shapes.
    static func shape(_ a: [Int], _ b: [Int], op: String) -> [Int] {
        let r = max(a.count, b.count)
        let pa = Array(repeating: 1, count: r - a.count) + a
        let pb = Array(repeating: 1, count: r - b.count) + b
        return (0..<r).map { i in
            precondition(pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1,
                         "\(op): shapes \(a) and \(b) cannot be broadcast (axis \(i): \(pa[i]) vs \(pb[i]))")
            return max(pa[i], pb[i])
        }
    }

    /// Strides of `shape` viewed inside `outShape`: 0 on broadcast (size-1 or missing) axes.
    static func strides(of shape: [Int], in outShape: [Int]) -> [Int] {
        let padded = Array(repeating: 1, count: outShape.count - shape.count) + shape
        var strides = [Int](repeating: 0, count: outShape.count)
        var s = 1
        for i in stride(from: outShape.count - 1, through: 0, by: -1) {
            strides[i] = (padded[i] == 1 && outShape[i] != 1) ? 0 : s
            s *= padded[i]
        }
        return strides
    }

    /// When `shape`, aligned on the right, is the leading axes of `outShape` followed by ones (a
    /// bias `[N, C, 1, 1]` against `[N, C, H, W]`), each of its elements covers one contiguous block of
    /// the output: returns the block length (H·W there); nil for any other broadcast.
    static func trailingBlock(of shape: [Int], in outShape: [Int]) -> Int? {
        let padded = Array(repeating: 1, count: outShape.count - shape.count) + shape
        var k = outShape.count
        while k > 0 && padded[k - 1] == 1 { k -= 1 }
        guard k < outShape.count, Array(padded[..<k]) == Array(outShape[..<k]) else { return nil }
        return outShape[k...].reduce(1, *)
    }

    /// Calls `body(outIndex, offsetA, offsetB)` for every element of `outShape` in row-major order,
    /// with the matching offsets into two broadcast operands.
    @inline(__always)
    static func forEach(_ outShape: [Int], _ sa: [Int], _ sb: [Int], _ body: (Int, Int, Int) -> Void) {
        let total = outShape.reduce(1, *)
        if total == 0 { return }
        let r = outShape.count
        if r == 0 { body(0, 0, 0); return }
        let inner = outShape[r - 1], ia = sa[r - 1], ib = sb[r - 1]
        var index = [Int](repeating: 0, count: r)
        var oa = 0, ob = 0, out = 0
        while out < total {
            for j in 0..<inner { body(out + j, oa + j * ia, ob + j * ib) }
            out += inner
            // advance the multi-index over the outer axes
            var axis = r - 2
            while axis >= 0 {
                index[axis] += 1; oa += sa[axis]; ob += sb[axis]
                if index[axis] < outShape[axis] { break }
                oa -= sa[axis] * index[axis]; ob -= sb[axis] * index[axis]; index[axis] = 0
                axis -= 1
            }
        }
    }

    /// Sums `grad` (of shape `outShape`) over the axes on which `shape` was broadcast: the adjoint
    /// of broadcasting, ∂L/∂a_j = Σ_{i ↦ j} ∂L/∂out_i.
    static func reduce(_ grad: [Double], from outShape: [Int], to shape: [Int]) -> [Double] {
        if outShape == shape { return grad }
        if let block = trailingBlock(of: shape, in: outShape), block > 0 {  // one sum per block
            let count = shape.reduce(1, *)
            return uninitializedArray(count) { r in grad.withUnsafeBufferPointer { g in
                Parallel.chunks(count, work: grad.count) { range in
                    Sums.sums(g.baseAddress! + range.lowerBound * block, stride: block, count: range.count, length: block, into: r + range.lowerBound)
                }
            } }
        }
        var result = [Double](repeating: 0, count: shape.reduce(1, *))
        let s = strides(of: shape, in: outShape), zero = [Int](repeating: 0, count: outShape.count)
        result.withUnsafeMutableBufferPointer { r in grad.withUnsafeBufferPointer { g in
            forEach(outShape, s, zero) { i, o, _ in r[o] += g[i] }
        } }
        return result
    }

    /// Expands `values` of `shape` to `outShape` (the forward of broadcasting).
    static func expand(_ values: [Double], from shape: [Int], to outShape: [Int]) -> [Double] {
        if outShape == shape { return values }
        var result = [Double](repeating: 0, count: outShape.reduce(1, *))
        let s = strides(of: shape, in: outShape), zero = [Int](repeating: 0, count: outShape.count)
        result.withUnsafeMutableBufferPointer { r in values.withUnsafeBufferPointer { v in
            forEach(outShape, s, zero) { i, o, _ in r[i] = v[o] }
        } }
        return result
    }
}
