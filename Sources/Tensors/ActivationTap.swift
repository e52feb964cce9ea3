// Recording every module's output (and the loss's gradient with respect to it) during one forward and
// backward pass: what a golden file's per-module activations are made of. Off unless a recorder is set.

/// A tap on module outputs. A module's forward pass ends with `return ActivationTap.output(of: self, y)`;
/// outside ``record(names:_:)`` that returns `y` itself (one task-local read). Inside, the output is kept
/// (in execution order) under the module's state-dict path, and when `y` is on a graph it is passed through
/// an identity operation whose backward keeps ∂L/∂y, so that after `loss.backward()` the recorder holds the
/// gradient of the loss with respect to every recorded output.
public enum ActivationTap {
    /// One recorded output: the module's state-dict path, its kind (the Swift type's name) and its values.
    public struct Entry {
        public var name: String, kind: String, value: Tensor
    }

    /// What one recording collected.
    public final class Recorder: @unchecked Sendable {   // one task writes it: the passes are sequential
        let names: [ObjectIdentifier: String]
        /// Outputs in execution order (a module run twice appears twice, under the same name).
        public private(set) var outputs: [Entry] = []
        /// ∂L/∂output by module name, after the backward pass (summed over repeated calls).
        public private(set) var gradients: [String: [Double]] = [:]

        init(names: [ObjectIdentifier: String]) { self.names = names }

        func record(_ module: AnyObject, _ y: Tensor) -> Tensor {
            guard let name = names[ObjectIdentifier(module)] else { return y }
            return record(name: name, kind: String(describing: type(of: module)), y)
        }

        func record(name: String, kind: String, _ y: Tensor) -> Tensor {
            outputs.append(Entry(name: name, kind: kind, value: y.detached()))
            guard y.requiresGrad else { return y }
            return Tensor.operation("tap", shape: y.shape, data: y.data, parents: [y]) { [self] g in
                if var existing = gradients[name] {
                    for i in existing.indices { existing[i] += g[i] }
                    gradients[name] = existing
                } else {
                    gradients[name] = g
                }
                return [g]
            }
        }
    }

    @TaskLocal static var current: Recorder?

    /// Whether a recording is on for the calling task (fused operations then run as their parts, so
    /// that every module's own output is seen).
    public static var isRecording: Bool { current != nil }

    /// Runs `body` with a recorder for the modules named in `names` (a module's dotted state-dict path,
    /// as `Module/namedModules()` gives it, keyed by the module object) and returns the recorder.
    public static func record(names: [(name: String, module: any Module)], _ body: () throws -> Void) rethrows -> Recorder {
        var byObject: [ObjectIdentifier: String] = [:]
        for (name, module) in names where !name.isEmpty { byObject[ObjectIdentifier(module)] = name }
        let recorder = Recorder(names: byObject)
        try $current.withValue(recorder) { try body() }
        return recorder
    }

    /// `y`, recorded as the output of `module` when a recording is on.
    @inline(__always)
    public static func output(of module: AnyObject, _ y: Tensor) -> Tensor {
        guard let r = current else { return y }
        return r.record(module, y)
    }

    /// `y`, recorded under an explicit name and kind (an output that belongs to no module object, such as
    /// the parameter-free sinusoidal time embedding).
    @inline(__always)
    public static func output(named name: String, kind: String, _ y: Tensor) -> Tensor {
        guard let r = current else { return y }
        return r.record(name: name, kind: kind, y)
    }
}
