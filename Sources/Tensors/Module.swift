// What a trainable network exposes: its parameters by name, its sub-modules by name, and its mode.

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
    /// (name, shape, count) for every parameter, in state-dict order: the parameter ledger.
    public var ledger: [(name: String, shape: [Int], count: Int)] {
        namedParameters().map { ($0.name, $0.tensor.shape, $0.tensor.count) }
    }

    /// Runs `body` and then puts every parameter's accumulated gradient back as it was before, so that a
    /// computation that needs its own gradients (a golden file's) leaves the caller's untouched.
    public func preservingGradients<R>(_ body: () throws -> R) rethrows -> R {
        let saved = namedParameters().map { ($0.tensor, $0.tensor.gradValues) }
        defer { for (p, g) in saved { p.gradStorage = g } }
        return try body()
    }
}

/// A layer in the spirit of PyTorch's `nn.Module`: it lists its own parameters and its direct children
/// once, by the names PyTorch gives them, and everything else follows from that — the full state-dict
/// names (`child.grandchild.weight`), the parameter list and count, and the ledger.
public protocol Module: ParameterContainer {
    /// This module's own parameters (not its children's) by local name, in registration order.
    var localParameters: [(name: String, tensor: Tensor)] { get }
    /// Direct sub-modules by local name (PyTorch's attribute names, or "0", "1", … in a list), in
    /// registration order.
    var children: [(name: String, module: any Module)] { get }
}

extension Module {
    public var localParameters: [(name: String, tensor: Tensor)] { [] }
    public var children: [(name: String, module: any Module)] { [] }

    /// Own parameters first, then each child's under `child.` — PyTorch's `named_parameters()` order.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        localParameters + children.flatMap { child in
            child.module.namedParameters().map { (child.name + "." + $0.name, $0.tensor) }
        }
    }

    /// Every module below this one with its dotted name (this one is ""), depth first.
    public func namedModules() -> [(name: String, module: any Module)] {
        [("", self)] + children.flatMap { child in
            child.module.namedModules().map { (($0.name.isEmpty ? child.name : child.name + "." + $0.name), $0.module) }
        }
    }
}

/// A list of modules named "0", "1", … (PyTorch's `nn.ModuleList`, and `nn.Sequential` for naming).
public final class ModuleList: Module {
    public let modules: [any Module]
    public init(_ modules: [any Module]) { self.modules = modules }
    public var children: [(name: String, module: any Module)] { modules.enumerated().map { (String($0.offset), $0.element) } }
}

/// A model with a training and an evaluation mode (dropout on or off).
public protocol ModeSwitching: AnyObject {
    var isTraining: Bool { get set }
}

extension ModeSwitching {
    /// Runs `body` in the given mode and restores the previous mode afterwards, also when `body` throws.
    public func withMode<R>(training: Bool, _ body: () throws -> R) rethrows -> R {
        let was = isTraining
        isTraining = training
        defer { isTraining = was }
        return try body()
    }
}

/// Modules under explicit names (PyTorch's `nn.ModuleDict`, or an `nn.Sequential` whose parameter-free
/// entries are skipped, such as `time_mlp.1`, the SiLU between `time_mlp.0` and `time_mlp.2`).
public final class ModuleDict: Module {
    public let children: [(name: String, module: any Module)]
    public init(_ children: [(name: String, module: any Module)]) { self.children = children }
}
