// Small layers with stored parameters, named as PyTorch names them. They know nothing of diffusion.
// Each is a `Module`: it lists its own parameters once, and the state-dict names follow.

import Foundation
import Tensors

/// PyTorch's default initialisation for conv and linear layers: Kaiming-uniform with a = √5 for the
/// weight, which is uniform on ±1/√fan_in, and the bias uniform on ±1/√fan_in too.
func pytorchDefault(_ shape: [Int], fanIn: Int, generator: inout RandomGenerator) -> Tensor {
    let bound = 1 / Double(fanIn).squareRoot()
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { _ in (2 * generator.nextUniform() - 1) * bound }, requiresGrad: true)
}

/// A square-kernel 2-D convolution layer (PyTorch's `nn.Conv2d`), weight `[out, in, k, k]`, bias `[out]`.
public final class Conv2d: Module {
    public let weight: Tensor, bias: Tensor
    public let stride: Int, padding: Int
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, generator: inout RandomGenerator) {
        let fanIn = inChannels * kernel * kernel
        weight = pytorchDefault([outChannels, inChannels, kernel, kernel], fanIn: fanIn, generator: &generator)
        bias = pytorchDefault([outChannels], fanIn: fanIn, generator: &generator)
        self.stride = stride; self.padding = padding
    }
    public var localParameters: [(name: String, tensor: Tensor)] { [("weight", weight), ("bias", bias)] }
    /// `conv(x)`, or with `c` and `r`, `conv(x) + c.reshaped([N, O, 1, 1])` then `+ r` as one operation
    /// (``Tensors/Tensor/conv2d(_:weight:bias:stride:padding:addingPerChannel:adding:)``): the same values, bit for bit,
    /// without the sums' passes and arrays. While an ``ActivationTap`` records, the sums run after the layer, so that
    /// its own output (and its gradient) is recorded.
    public func callAsFunction(_ x: Tensor, addingPerChannel c: Tensor? = nil, adding r: Tensor? = nil) -> Tensor {
        let fused = c != nil || r != nil
        if fused && ActivationTap.isRecording {
            var y = self(x)
            if let c { y = y + c.reshaped([c.shape[0], c.shape[1], 1, 1]) }
            if let r { y = y + r }
            return y
        }
        let y = Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, addingPerChannel: c, adding: r)
        // Multiply–adds: N·O·P_out·C·k² (counted only inside `MultiplyAddCounter.counting`).
        MultiplyAddCounter.add(y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] * weight.shape[1] * weight.shape[2] * weight.shape[3])
        return fused ? y : ActivationTap.output(of: self, y)
    }
}

/// A linear layer (PyTorch's `nn.Linear`), weight `[out, in]`, bias `[out]`: `y = x Wᵀ + b`.
public final class Linear: Module {
    public let weight: Tensor, bias: Tensor
    public init(_ inFeatures: Int, _ outFeatures: Int, generator: inout RandomGenerator) {
        weight = pytorchDefault([outFeatures, inFeatures], fanIn: inFeatures, generator: &generator)
        bias = pytorchDefault([outFeatures], fanIn: inFeatures, generator: &generator)
    }
    public var localParameters: [(name: String, tensor: Tensor)] { [("weight", weight), ("bias", bias)] }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        MultiplyAddCounter.add(x.shape[0] * weight.count)
        return ActivationTap.output(of: self, Tensor.linear(x, weight: weight, bias: bias))
    }
}

/// An embedding table (PyTorch's `nn.Embedding`), weight `[rows, width]`, initialised 𝒩(0, 1) as PyTorch
/// does: `table(labels)` is the N × width matrix of rows `labels[n]`. The backward adds each output row's
/// gradient into the row it was read from (through ``Tensors/Tensor/gather(_:)`` on the flattened table).
public final class Embedding: Module {
    public let weight: Tensor
    public init(_ rows: Int, _ width: Int, generator: inout RandomGenerator) {
        weight = Tensor.randomNormal([rows, width], generator: &generator)
        weight.setRequiresGrad(true)
    }
    public var localParameters: [(name: String, tensor: Tensor)] { [("weight", weight)] }
    public func callAsFunction(_ labels: [Int]) -> Tensor {
        let (rows, width) = (weight.shape[0], weight.shape[1])
        for y in labels { precondition(y >= 0 && y < rows, "Embedding: label \(y) outside the table of \(rows) rows") }
        let indices = labels.flatMap { y in (0..<width).map { y * width + $0 } }
        return ActivationTap.output(of: self, weight.reshaped([rows * width]).gather(indices).reshaped([labels.count, width]))
    }
}

/// Group normalisation with a per-channel affine transform (weight 1, bias 0 at initialisation).
public final class GroupNorm: Module {
    public let weight: Tensor, bias: Tensor
    public let groups: Int, eps: Double
    public init(groups: Int, channels: Int, eps: Double = 1e-5) {
        weight = Tensor(shape: [channels], data: [Double](repeating: 1, count: channels), requiresGrad: true)
        bias = Tensor.zeros([channels], requiresGrad: true)
        self.groups = groups; self.eps = eps
    }
    public var localParameters: [(name: String, tensor: Tensor)] { [("weight", weight), ("bias", bias)] }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        ActivationTap.output(of: self, Tensor.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps))
    }
    /// `SiLU(GN(x))` as one operation (``Tensor/groupNormSiLU(_:groups:weight:bias:eps:)``): the same values
    /// as `self(x).silu()`, bit for bit, with one pass and one activation-sized array fewer. While an
    /// ``ActivationTap`` records, the two operations run one after the other, so that the normalisation's
    /// output (and its gradient) is recorded as that of this module.
    public func normalizedSiLU(_ x: Tensor) -> Tensor {
        if ActivationTap.isRecording { return self(x).silu() }
        return Tensor.groupNormSiLU(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// Counts the multiply–adds of the matrix products a forward pass performs (convolutions, linear layers,
/// attention products), so that the cost of a network is read off the network itself rather than
/// described a second time. Counting is on only inside ``counting(_:)``, for the task that called it.
public enum MultiplyAddCounter {
    final class Tally: @unchecked Sendable {   // one task writes it at a time: the forward pass is sequential
        var total = 0
    }
    @TaskLocal static var current: Tally?

    /// Runs `body` and returns the multiply–adds counted during it.
    public static func counting(_ body: () throws -> Void) rethrows -> Int {
        let tally = Tally()
        try $current.withValue(tally) { try body() }
        return tally.total
    }

    static func add(_ n: Int) { current?.total += n }
}
