// The tensor: float64 values, a shape, and (when derivatives are wanted) its place in the graph.
//
// Reverse mode in one paragraph: every operation that has an input requiring gradients records
// its inputs and a closure that maps the gradient of its output to gradients of its inputs.
// `backward()` visits the recorded graph in reverse topological order, calling each closure once
// and adding the results into the inputs' gradients. Leaves keep their `.grad`; the graph itself
// is released after the pass, as in PyTorch.

import Kernels

/// A dense, row-major, float64 tensor with optional reverse-mode derivative tracking.
public final class Tensor {
    /// Extent of each axis, outermost first (NCHW for images). A scalar has shape `[]`.
    public let shape: [Int]
    /// The values, row-major; `data.count == shape.reduce(1, *)`.
    public internal(set) var data: [Double]
    /// Whether gradients flow to (and, for a leaf, accumulate in) this tensor.
    public internal(set) var requiresGrad: Bool
    /// The operation that produced this tensor ("leaf" for user-created ones); used in messages.
    public let op: String

    var gradStorage: [Double]?
    var parents: [Tensor]
    var backwardClosure: ((_ outputGrad: [Double]) -> [[Double]?])?

    /// A tensor with the given shape and row-major values.
    public init(shape: [Int], data: [Double], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative extent in shape \(shape)")
        precondition(shape.reduce(1, *) == data.count, "Tensor: shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
        self.shape = shape; self.data = data; self.requiresGrad = requiresGrad
        self.op = "leaf"; self.parents = []; self.backwardClosure = nil
    }

    init(op: String, shape: [Int], data: [Double], parents: [Tensor], backward: (([Double]) -> [[Double]?])?) {
        self.shape = shape; self.data = data; self.op = op
        self.requiresGrad = backward != nil
        self.parents = backward != nil ? parents : []
        self.backwardClosure = backward
    }

    /// A rank-0 tensor holding one value.
    public convenience init(_ scalar: Double, requiresGrad: Bool = false) {
        self.init(shape: [], data: [scalar], requiresGrad: requiresGrad)
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, data: [Double](repeating: 0, count: shape.reduce(1, *)), requiresGrad: requiresGrad)
    }
    public static func full(_ shape: [Int], _ value: Double) -> Tensor {
        Tensor(shape: shape, data: [Double](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
    /// The single value of a one-element tensor.
    public var scalar: Double {
        precondition(data.count == 1, "scalar: tensor of shape \(shape) has \(data.count) elements, expected 1")
        return data[0]
    }
    /// The accumulated gradient of a leaf after `backward()`, same shape as the tensor; nil before.
    public var grad: Tensor? { gradStorage.map { Tensor(shape: shape, data: $0) } }
    /// The raw accumulated gradient values (row-major), nil before any backward pass reached them.
    public var gradValues: [Double]? { gradStorage }
    /// Whether this tensor was produced by an operation that recorded a graph.
    public var isLeaf: Bool { backwardClosure == nil && parents.isEmpty }

    /// Marks a leaf as a parameter (or input) whose gradient is wanted.
    public func setRequiresGrad(_ flag: Bool = true) {
        precondition(isLeaf, "setRequiresGrad: only leaves can change; \(op) output of shape \(shape) is not a leaf")
        requiresGrad = flag
    }
    /// Clears the accumulated gradient.
    public func zeroGrad() { gradStorage = nil }
    /// Multiplies the accumulated gradient in place (gradient clipping).
    public func scaleGradient(by factor: Double) {
        guard var g = gradStorage else { return }
        gradStorage = nil
        for i in 0..<g.count { g[i] *= factor }
        gradStorage = g
    }
    /// A leaf with the same values and no graph.
    public func detached() -> Tensor { Tensor(shape: shape, data: data) }

    /// Overwrites the values of a leaf in place (optimisers, weight loading). Shapes must agree.
    public func assign(_ values: [Double]) {
        precondition(isLeaf, "assign: \(op) output is not a leaf")
        precondition(values.count == data.count, "assign: tensor of shape \(shape) has \(data.count) elements, got \(values.count)")
        data = values
    }
    /// Gives mutable access to a leaf's values in place.
    public func withMutableValues<R>(_ body: (inout [Double]) throws -> R) rethrows -> R {
        precondition(isLeaf, "withMutableValues: \(op) output is not a leaf")
        let n = data.count
        defer { precondition(data.count == n, "withMutableValues: the body changed the element count") }
        return try body(&data)
    }

    func accumulate(_ g: [Double]) {
        if var existing = gradStorage {
            gradStorage = nil  // keep the buffer uniquely referenced so the add is in place
            existing.withUnsafeMutableBufferPointer { e in g.withUnsafeBufferPointer { gg in
                let (e, gg, n) = (e.baseAddress!, gg.baseAddress!, e.count)
                Parallel.chunks(n, work: n) { r in for i in r { e[i] += gg[i] } }
            } }
            gradStorage = existing
        } else {
            gradStorage = g
        }
    }

    /// Back-propagates from this scalar: ∂self/∂leaf is added into every leaf's `.grad`.
    public func backward() {
        precondition(data.count == 1, "backward: called on a tensor of shape \(shape); use backward(seed:) for non-scalars")
        backward(seed: [1])
    }

    /// Back-propagates a given output gradient (a vector–Jacobian product with `seed`).
    public func backward(seed: [Double]) {
        precondition(seed.count == data.count, "backward: seed has \(seed.count) values, tensor \(shape) has \(data.count)")
        precondition(requiresGrad, "backward: tensor from \(op) does not require gradients (no input required them, or recording was off)")
        // Reverse topological order by an explicit depth-first search (graphs can be deep).
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            if !visited.insert(ObjectIdentifier(node)).inserted { continue }
            stack.append((node, true))
            for p in node.parents where p.requiresGrad && !visited.contains(ObjectIdentifier(p)) { stack.append((p, false)) }
        }
        accumulate(seed)
        for node in order.reversed() {
            guard let closure = node.backwardClosure, let g = node.gradStorage else { continue }
            let grads = closure(g)
            for (p, pg) in zip(node.parents, grads) where p.requiresGrad {
                if let pg { p.accumulate(pg) }
            }
            // Release the graph as we go: intermediate gradients and closures are not needed again.
            node.gradStorage = nil
            node.backwardClosure = nil
            node.parents = []
        }
    }
}

// MARK: - Recording scope

/// Whether operations record a graph. Off inside ``withoutGradients(_:)`` (sampling, evaluation).
public enum GradientRecording {
    @TaskLocal public static var isEnabled = true
}

/// Runs `body` with graph recording off, like `torch.no_grad()`: results have no history.
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    try GradientRecording.$isEnabled.withValue(false) { try body() }
}

extension Tensor {
    /// Creates the output of an operation. When recording is on and any parent requires gradients,
    /// `backward` is kept: it receives ∂L/∂output and returns ∂L/∂parent for each parent (nil where
    /// a parent needs none). Public so that users can add their own differentiable operations.
    public static func operation(_ op: String, shape: [Int], data: [Double], parents: [Tensor],
                                 backward: @escaping (_ outputGrad: [Double]) -> [[Double]?]) -> Tensor {
        precondition(shape.reduce(1, *) == data.count, "\(op): shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
        let record = GradientRecording.isEnabled && parents.contains { $0.requiresGrad }
        return Tensor(op: op, shape: shape, data: data, parents: parents, backward: record ? backward : nil)
    }
}

/// An array of `count` doubles written by `body`, which must set every element: no zero-fill
/// first (a fill is a whole extra pass over memory, and for fresh pages the one that faults them in).
@inline(__always)
func uninitializedArray(_ count: Int, _ body: (UnsafeMutablePointer<Double>) -> Void) -> [Double] {
    [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { body(buffer.baseAddress!) }
        initialized = count
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = data.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), op: \(op), data: [\(shown)\(data.count > 8 ? ", …" : "")])"
    }
}
