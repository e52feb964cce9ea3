// Small layers with stored parameters, named as PyTorch names them. They know nothing of diffusion.

import Foundation
import Tensors

/// PyTorch's default initialisation for conv and linear layers: Kaiming-uniform with a = √5 for the
/// weight, which is uniform on ±1/√fan_in, and the bias uniform on ±1/√fan_in too.
func pytorchDefault(_ shape: [Int], fanIn: Int, generator: inout RandomGenerator) -> Tensor {
    let bound = 1 / Double(fanIn).squareRoot()
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { _ in (2 * generator.nextUniform() - 1) * bound }, requiresGrad: true)
}

/// A square-kernel 2-D convolution, weight `[out, in, k, k]`, bias `[out]`.
public final class Conv2d {
    public let weight: Tensor, bias: Tensor
    public let stride: Int, padding: Int
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, generator: inout RandomGenerator) {
        let fanIn = inChannels * kernel * kernel
        weight = pytorchDefault([outChannels, inChannels, kernel, kernel], fanIn: fanIn, generator: &generator)
        bias = pytorchDefault([outChannels], fanIn: fanIn, generator: &generator)
        self.stride = stride; self.padding = padding
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding) }
    func named(_ prefix: String) -> [(name: String, tensor: Tensor)] { [(prefix + ".weight", weight), (prefix + ".bias", bias)] }
}

/// A linear layer, weight `[out, in]`, bias `[out]`: `y = x Wᵀ + b`.
public final class Linear {
    public let weight: Tensor, bias: Tensor
    public init(_ inFeatures: Int, _ outFeatures: Int, generator: inout RandomGenerator) {
        weight = pytorchDefault([outFeatures, inFeatures], fanIn: inFeatures, generator: &generator)
        bias = pytorchDefault([outFeatures], fanIn: inFeatures, generator: &generator)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight: weight, bias: bias) }
    func named(_ prefix: String) -> [(name: String, tensor: Tensor)] { [(prefix + ".weight", weight), (prefix + ".bias", bias)] }
}

/// Group normalisation with a per-channel affine transform (weight 1, bias 0 at initialisation).
public final class GroupNorm {
    public let weight: Tensor, bias: Tensor
    public let groups: Int, eps: Double
    public init(groups: Int, channels: Int, eps: Double = 1e-5) {
        weight = Tensor(shape: [channels], data: [Double](repeating: 1, count: channels), requiresGrad: true)
        bias = Tensor.zeros([channels], requiresGrad: true)
        self.groups = groups; self.eps = eps
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps) }
    func named(_ prefix: String) -> [(name: String, tensor: Tensor)] { [(prefix + ".weight", weight), (prefix + ".bias", bias)] }
}
