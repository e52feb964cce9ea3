// Sums and means, over the whole tensor or along axes.

extension Tensor {
    /// `Σ_i a_i`, a scalar; ∂/∂a_i = 1.
    public func sum() -> Tensor {
        var s = 0.0
        data.withUnsafeBufferPointer { p in for v in p { s += v } }
        let n = count
        return Tensor.operation("sum", shape: [], data: [s], parents: [self]) { g in
            [[Double](repeating: g[0], count: n)]
        }
    }

    /// `(1/n) Σ_i a_i`, a scalar; ∂/∂a_i = 1/n.
    public func mean() -> Tensor {
        precondition(count > 0, "mean: empty tensor of shape \(shape)")
        return sum() / Double(count)
    }

    /// Sum along `axes` (negative axes count from the end). With `keepingDimensions` the reduced axes
    /// stay as extent 1. Backward: the output gradient is broadcast back over the reduced axes.
    public func sum(alongAxes axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        let normalized = Set(axes.map { ax -> Int in
            let a = ax < 0 ? ax + rank : ax
            precondition(a >= 0 && a < rank, "sum: axis \(ax) out of range for shape \(shape)")
            return a
        })
        let kept = shape.enumerated().map { normalized.contains($0.offset) ? 1 : $0.element }
        let reduced = Broadcast.reduce(data, from: shape, to: kept)
        let outShape = keepingDimensions ? kept : shape.enumerated().filter { !normalized.contains($0.offset) }.map(\.element)
        let inShape = shape
        return Tensor.operation("sum along axes", shape: outShape, data: reduced, parents: [self]) { g in
            [Broadcast.expand(g, from: kept, to: inShape)]
        }
    }

    /// Mean along `axes`: the sum divided by the number of reduced elements.
    public func mean(alongAxes axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        let n = Set(axes.map { $0 < 0 ? $0 + rank : $0 }).reduce(1) { $0 * shape[$1] }
        precondition(n > 0, "mean: no elements along axes \(axes) of shape \(shape)")
        return sum(alongAxes: axes, keepingDimensions: keepingDimensions) / Double(n)
    }
}
