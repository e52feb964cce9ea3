// Per-module activations in golden files (schema version 3, optional): the output of every module of the
// network under its state-dict path, in execution order, and the gradient of the loss with respect to each
// output; and the check that names the first module whose output fails (Notes/09).
//
//     /activations/<module>            output of <module> (float64, its own shape); attributes
//                                      `index` (int64, position in execution order, 0 first) and `kind`
//                                      (Conv2d, Linear, GroupNorm, ResidualBlock, AttentionBlock, or
//                                      SinusoidalEmbedding for `time_embedding`, the parameter-free t ↦ [sin, cos])
//     /activation_gradients/<module>   ∂loss/∂(output of <module>), same shape; absent for outputs no parameter
//                                      feeds (`time_embedding`)
//
// Parameter-free modules of the PyTorch network (`time_mlp.1`, the SiLU; `upsample.k.0`, the nearest
// upsampling) are not recorded; the skip concatenation happens between recorded modules.

import HDF5
import UNet

extension GoldenFile {
    /// One recorded module output of a forward pass with its gradient (nil where none flows).
    public struct Activation: Sendable {
        public var name: String, kind: String, shape: [Int], value: [Double], gradient: [Double]?
    }

    /// The golden outputs of ``outputs(config:network:inputs:names:)`` (all of them) and every module's
    /// output and output gradient from the same forward and backward pass, in execution order.
    public static func outputsWithActivations(config: ModelConfiguration, network net: UNet, inputs: Inputs,
                                              names: Set<String>? = nil) throws -> (outputs: [(String, Tensor)], activations: [Activation]) {
        var result: [(String, Tensor)] = []
        var wanted = names
        // The gradients of the activations need the backward pass even when no parameter gradient is asked for.
        if wanted != nil, !wanted!.contains(where: { $0.hasPrefix("grad/") }), let first = net.namedParameters().first {
            wanted!.insert("grad/" + first.name)
        }
        let recorder = try ActivationTap.record(names: net.namedModules()) {
            result = try outputs(config: config, network: net, inputs: inputs, names: wanted)
        }
        if let names { result = result.filter { names.contains($0.0) } }
        let activations = recorder.outputs.map { e in
            Activation(name: e.name, kind: e.kind, shape: e.value.shape, value: e.value.data, gradient: recorder.gradients[e.name])
        }
        return (result, activations)
    }

    /// Writes `/activations` and `/activation_gradients`.
    static func writeActivations(_ activations: [Activation], to w: HDF5Writer) throws {
        for (i, a) in activations.enumerated() {
            let path = "/activations/" + a.name
            try w.write(a.value, shape: a.shape, to: path)
            try w.setAttribute("index", Int64(i), on: path)
            try w.setAttribute("kind", a.kind, on: path)
            if let g = a.gradient { try w.write(g, shape: a.shape, to: "/activation_gradients/" + a.name) }
        }
    }

    /// A file's stored activations (nil when it has none): name, kind and values in execution order, and
    /// the stored gradients by name.
    static func readActivations(_ file: HDF5File) throws -> (outputs: [(name: String, kind: String, values: HDF5Array<Double>)], gradients: [String: HDF5Array<Double>])? {
        guard file.exists("/activations") else { return nil }
        var outputs: [(index: Int64, name: String, kind: String, values: HDF5Array<Double>)] = []
        for m in try file.members(ofGroup: "/activations") {
            let path = "/activations/" + m
            outputs.append((try file.int64Attribute("index", of: path), m, try file.stringAttribute("kind", of: path), try file.readDoubles(path)))
        }
        outputs.sort { $0.index < $1.index }
        var gradients: [String: HDF5Array<Double>] = [:]
        if file.exists("/activation_gradients") {
            for m in try file.members(ofGroup: "/activation_gradients") { gradients[m] = try file.readDoubles("/activation_gradients/" + m) }
        }
        return (outputs.map { ($0.name, $0.kind, $0.values) }, gradients)
    }
}

/// The per-module part of a golden check: every module's output judged by the check's rule (in execution
/// order), every stored output gradient likewise, the first module whose output fails and the modules after it.
public struct ActivationCheck: Sendable {
    /// Module name → kind, in execution order.
    public var modules: [(name: String, kind: String)]
    /// One row per module output, in execution order (named by the module).
    public var outputs: [TierRow]
    /// One row per stored output gradient, in execution order.
    public var gradients: [TierRow]

    /// A row's error over its bound: the larger of the elementwise and normwise ratios.
    public static func ratio(_ r: TierRow) -> Double { max(r.comparison.worstRatio, r.normwiseRatio) }

    public func kind(of name: String) -> String { modules.first { $0.name == name }?.kind ?? "?" }

    /// The recorded module that contains `name` (`down_attn.1` for `down_attn.1.proj`), if any.
    public func parent(of name: String) -> String? {
        var parts = name.split(separator: ".")
        while parts.count > 1 {
            parts.removeLast()
            let p = parts.joined(separator: ".")
            if modules.contains(where: { $0.name == p }) { return p }
        }
        return nil
    }

    /// Where the fault lies, read off the order: inside `parent` between the last passing output and this
    /// one; or, when the failing module is the first recorded one of its block, in the block's input.
    func whereLine(_ i: Int) -> String? {
        let name = outputs[i].name
        guard let p = parent(of: name) else { return nil }
        let firstOfBlock = i == 0 || !outputs[i - 1].name.hasPrefix(p + ".")
        return firstOfBlock
            ? "  it is the first module run inside \(p) (\(kind(of: p))): the fault is in that block's input (formed between recorded modules, e.g. a concatenation) or in \(name) itself"
            : "  inside \(p) (\(kind(of: p))): the fault lies between \(outputs[i - 1].name), which passes, and the output of \(name)"
    }

    /// The first module in execution order whose output fails.
    public var firstFailingOutput: TierRow? { outputs.first { !$0.passed } }
    /// Walking the backward pass (reverse execution order), the first module whose output gradient fails:
    /// the gradient that leaves the module after it, i.e. that module's input gradient.
    public var firstFailingGradientBackwards: TierRow? { gradients.reversed().first { !$0.passed } }
    public var passed: Bool { outputs.allSatisfy(\.passed) && gradients.allSatisfy(\.passed) }

    /// Terminal lines: the first failing module and what follows it, or that every module passed.
    public var lines: [String] {
        var out: [String] = []
        if let f = firstFailingOutput, let i = outputs.firstIndex(where: { $0.name == f.name }) {
            let after = outputs[(i + 1)...]
            let failingAfter = after.filter { !$0.passed }
            out.append("first failing module (execution order): \(f.name) (\(kind(of: f.name))), error/bound \(fmt(Self.ratio(f)))"
                       + (i > 0 ? "; the module before it, \(outputs[i - 1].name), passes (error/bound \(fmt(Self.ratio(outputs[i - 1]))))" : ""))
            if let w = whereLine(i) { out.append(w) }
            out.append("  after it: \(failingAfter.count) of \(after.count) modules fail"
                       + (failingAfter.isEmpty ? "" : ": " + failingAfter.prefix(6).map { "\($0.name) \(fmt(Self.ratio($0)))" }.joined(separator: ", ")
                          + (failingAfter.count > 6 ? ", …" : "")))
        } else {
            out.append("every module output passes (\(outputs.count) modules; largest error/bound \(fmt(outputs.map(Self.ratio).max() ?? 0)))")
        }
        if let g = firstFailingGradientBackwards {
            out.append("first failing gradient walking backwards: ∂loss/∂(output of \(g.name)) (\(kind(of: g.name))), error/bound \(fmt(Self.ratio(g)))")
        } else if !gradients.isEmpty {
            out.append("every module output gradient passes (\(gradients.count); largest error/bound \(fmt(gradients.map(Self.ratio).max() ?? 0)))")
        }
        return out
    }

    /// The Markdown table of every module.
    public func markdown() -> String {
        var md = "\n## Module outputs in execution order\n\n"
        md += lines.map { "- " + $0 }.joined(separator: "\n") + "\n\n"
        let grads = Dictionary(uniqueKeysWithValues: gradients.map { ($0.name, $0) })
        md += "| # | module | kind | shape | output error/bound | output | gradient error/bound | gradient |\n|---|---|---|---|---|---|---|---|\n"
        for (i, r) in outputs.enumerated() {
            let g = grads[r.name]
            md += "| \(i) | \(r.name) | \(kind(of: r.name)) | \(r.shape) | \(fmt(Self.ratio(r))) | \(r.passed ? "pass" : "**FAIL**") | "
                + "\(g.map { fmt(Self.ratio($0)) } ?? "–") | \(g.map { $0.passed ? "pass" : "**FAIL**" } ?? "–") |\n"
        }
        return md
    }
}

extension GoldenCheckResult {
    /// One line: the first failing module at each precision tier (or that all pass).
    public var activationTierLine: String? {
        guard !activationsByTier.isEmpty else { return nil }
        return "first failing module per tier: " + activationsByTier.map { tier, c in
            c.firstFailingOutput.map { "\(tier.rawValue) \($0.name) (\(fmt(ActivationCheck.ratio($0))))" } ?? "\(tier.rawValue) none"
        }.joined(separator: "; ")
    }
}

private func fmt(_ r: Double) -> String { r == 0 ? "0" : r.isInfinite ? "∞" : String(format: "%.3g", r) }

extension GoldenFile {
    /// Judges recomputed activations against stored ones by `rule`: outputs with the network's budget,
    /// gradients with the gradient budget (scale max(‖g‖, RMS·√m) over the activation gradients).
    public static func judgeActivations(ours: [Activation], stored: [(name: String, kind: String, values: HDF5Array<Double>)],
                                 storedGradients: [String: HDF5Array<Double>], path: String, configuration: ModelConfiguration,
                                 batch: Int, parameterKeys: [String], rule: GoldenCheckRule) throws -> ActivationCheck {
        let byName = Dictionary(ours.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var outs: [RecomputedOutput] = [], grads: [RecomputedOutput] = []
        for s in stored {
            guard let a = byName[s.name] else {
                throw DDPMError(.unknownName, "\(path) '/activations/\(s.name)': no module of the network has that name (expected one of \(ours.prefix(4).map(\.name).joined(separator: ", ")), …)")
            }
            guard s.values.shape == a.shape else {
                throw DDPMError(.shapeMismatch, "\(path) '/activations/\(s.name)': expected shape \(a.shape), found \(s.values.shape)")
            }
            outs.append(RecomputedOutput(name: s.name, shape: a.shape, ours: a.value, stored: s.values.values))
            if let g = storedGradients[s.name] {
                guard let ag = a.gradient else {
                    throw DDPMError(.invalidData, "\(path) '/activation_gradients/\(s.name)': no gradient flows to this module's output")
                }
                guard g.shape == a.shape else {
                    throw DDPMError(.shapeMismatch, "\(path) '/activation_gradients/\(s.name)': expected shape \(a.shape), found \(g.shape)")
                }
                grads.append(RecomputedOutput(name: "grad/" + s.name, shape: a.shape, ours: ag, stored: g.values))
            }
        }
        // Reuse the tier machinery: outputs are judged as network outputs, gradients (named grad/…) as gradients.
        let fwd = judge(Recomputed(configuration: configuration, batch: batch, parameterKeys: parameterKeys, outputs: outs), path: path, rule: rule)
        let bwd = judge(Recomputed(configuration: configuration, batch: batch, parameterKeys: parameterKeys, outputs: grads), path: path, rule: rule)
        let position = Dictionary(uniqueKeysWithValues: stored.enumerated().map { ($1.name, $0) })
        var gradientRows = bwd.rows.map { r -> TierRow in var r = r; r.name = String(r.name.dropFirst(5)); return r }
        gradientRows.sort { (position[$0.name] ?? .max) < (position[$1.name] ?? .max) }
        let outputRows = fwd.rows.sorted { (position[$0.name] ?? .max) < (position[$1.name] ?? .max) }
        return ActivationCheck(modules: stored.map { ($0.name, $0.kind) }, outputs: outputRows, gradients: gradientRows)
    }
}
