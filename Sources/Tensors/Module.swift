// What a trainable network exposes: its parameters, by name, in a fixed order.

@_exported import Errors

/// A container of named parameters (PyTorch's `state_dict` keys, e.g. `init_conv.weight`).
public protocol ParameterContainer: AnyObject {
    /// Every parameter with its state-dict key, in registration order.
    func namedParameters() -> [(name: String, tensor: Tensor)]
}

extension ParameterContainer {
    public var parameters: [Tensor] { namedParameters().map(\.tensor) }
    /// Total number of scalar parameters: the sum over tensors of their element counts.
    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.tensor.count } }
    /// Clears every parameter's accumulated gradient.
    public func zeroGradients() { for (_, p) in namedParameters() { p.zeroGrad() } }
}
