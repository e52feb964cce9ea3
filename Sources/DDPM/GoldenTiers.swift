// Precision tiers of the golden check: how far a float32, bfloat16 or float16 backend's outputs may
// honestly lie from our float64 ones. The model and its calibration are in Notes/09-golden-files.md.

import Foundation
import UNet

/// A floating-point format, by its unit roundoff u = 2^−p (p significand bits, the implicit bit included).
public enum Precision: String, CaseIterable, Sendable {
    case float64, float32, bfloat16, float16

    /// u = 2^−53, 2^−24, 2^−8, 2^−11: the largest relative error of rounding one real number to nearest.
    public var unitRoundoff: Double {
        switch self {
        case .float64: return 0x1p-53
        case .float32: return 0x1p-24
        case .bfloat16: return 0x1p-8
        case .float16: return 0x1p-11
        }
    }
}

/// What an output is, for the error model: a few elementwise operations, the network (and what is
/// computed from its output), or a parameter gradient (the network forward and backward).
public enum GoldenOutputKind: String, Sendable {
    case elementwise, network, gradient

    /// `x_t`, `posterior_mean`, `posterior_variance` need no network; `grad/<key>` is a gradient; every
    /// other output (`eps_pred`, `loss`, `pred_x0`, `x_prev`, and outputs added to the schema later) is
    /// treated as computed from the network output.
    public init(output name: String) {
        if name.hasPrefix("grad/") { self = .gradient } else if ["x_t", "posterior_mean", "posterior_variance"].contains(name) { self = .elementwise } else { self = .network }
    }
}

/// The rounding budget of one kind of output: `depth` L storage roundings along its longest path and the
/// longest reduction n (the most terms summed into one value).
public struct RoundingBudget: Sendable, Equatable {
    public var depth: Int, reduction: Int
    public init(depth: Int, reduction: Int) { self.depth = depth; self.reduction = reduction }
}

/// A tier: the precision values are stored in and the precision reductions accumulate in.
///
/// Normwise bound of an output with budget (L, n), in the spirit of Higham & Mary (2019), "A new approach
/// to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5):
///
///     τ = λ · √(L · u_s² + n · u_a²)
///
/// Each of the L storage roundings adds an independent relative error of size ≤ u_s, so they add in
/// quadrature (√L · u_s, not L · u_s); a reduction of n terms accumulated in precision u_a has a
/// relative error below λ√n · u_a with high probability (their Theorem 3.1), not the worst case n · u_a.
/// λ is the confidence parameter. The elementwise check allows each element
/// `|a − e| ≤ λ_m · τ · (|e| + s/√m)` over the m elements, s the output's norm (for a gradient at least the
/// floor RMS·√m, RMS the root mean square of every parameter gradient of the network),
/// λ_m = √(2 ln 2m) the size of the largest of m Gaussian errors in units of their RMS.
public struct GoldenTier: Sendable, Equatable, CustomStringConvertible {
    public var storage: Precision, accumulation: Precision
    /// λ = 3. Calibrated, not derived: Notes/09 shows the observed errors of PyTorch runs beside τ.
    public var confidence = 3.0

    public init(storage: Precision, accumulation: Precision? = nil) {
        self.storage = storage
        // GPU backends (and PyTorch's CPU kernels) store float16/bfloat16 and accumulate in float32.
        self.accumulation = accumulation ?? (storage == .float64 ? .float64 : .float32)
    }

    public var description: String { "storage \(storage.rawValue), accumulation \(accumulation.rawValue), λ \(confidence)" }

    /// τ for a rounding budget.
    public func normwiseBound(_ b: RoundingBudget) -> Double {
        let us = storage.unitRoundoff, ua = accumulation.unitRoundoff
        return confidence * (Double(b.depth) * us * us + Double(b.reduction) * ua * ua).squareRoot()
    }

    /// λ_m = √(2 ln 2m), at least 1.
    public static func extremeValueFactor(count m: Int) -> Double {
        max(1, (2 * log(2 * Double(max(m, 1)))).squareRoot())
    }
}

/// The rounding budgets of a U-Net configuration and batch size, read off the architecture.
public struct RoundingBudgets: Sendable, Equatable {
    public var elementwise: RoundingBudget, network: RoundingBudget, gradient: RoundingBudget

    public subscript(kind: GoldenOutputKind) -> RoundingBudget {
        switch kind { case .elementwise: return elementwise; case .network: return network; case .gradient: return gradient }
    }

    /// - elementwise (x_t = a·x0 + b·ε, the posterior mean and variance): L = 4 roundings (table entry,
    ///   two products, the sum), n = 1.
    /// - network: L = the number of parameterised layers (weight tensors with their biases: convolutions,
    ///   linear maps, group norms), n = the longest reduction of the forward pass — a 3×3 convolution sums
    ///   9·C_in terms, a group norm (C/G)·H·W, attention C (scores) and H·W (the weighted sum of values),
    ///   the time MLP 4·d, the loss N·C·H·W.
    /// - gradient: L doubled (the backward pass retraces every layer), n also covering the weight
    ///   gradients' sums over the batch and every position, N·H·W.
    public init(network c: UNetConfiguration, batch: Int, parameterCount: Int) {
        let res = c.resolutions, g = max(c.normGroups, 1)
        var n = [4 * c.timeEmbeddingDim, batch * c.channels * c.imageSize * c.imageSize, 9 * c.channels]
        var cur = c.baseChannels
        func visit(width: Int, inWidth: Int, resolution r: Int) {
            n += [9 * inWidth, 9 * width, (inWidth / g) * r * r, (width / g) * r * r]
        }
        for (i, m) in c.channelMultipliers.enumerated() {
            visit(width: c.baseChannels * m, inWidth: cur, resolution: res[i]); cur = c.baseChannels * m
            if c.attentionResolutions.contains(res[i]) { n += [cur, res[i] * res[i]] }
        }
        n += [cur, (res.last ?? 1) * (res.last ?? 1)]   // the middle attention
        for (i, m) in c.channelMultipliers.reversed().enumerated() {
            let r = res[res.count - 1 - i]
            visit(width: c.baseChannels * m, inWidth: cur + c.baseChannels * m, resolution: r); cur = c.baseChannels * m
            if c.attentionResolutions.contains(r) { n += [cur, r * r] }
        }
        let layers = max(1, parameterCount / 2)
        let forward = n.max()!
        elementwise = RoundingBudget(depth: 4, reduction: 1)
        network = RoundingBudget(depth: layers, reduction: forward)
        gradient = RoundingBudget(depth: 2 * layers, reduction: max(forward, batch * c.imageSize * c.imageSize))
    }
}

/// One output judged at a tier: elementwise statistics (file values in the `actual` slot, our float64
/// recomputation as the reference in the `expected` slot), the normwise error and its bound.
public struct TierRow: Sendable {
    public var name: String, shape: [Int], kind: GoldenOutputKind
    public var comparison: Comparison
    /// ‖file − ours‖ / s, s = ‖ours‖, or for a gradient max(‖ours‖, RMS·√m) with RMS the network's gradient RMS.
    public var normwiseError: Double
    /// τ of the tier for this output's kind, or nil when the rule is elementwise only (float64 tier).
    public var normwiseBound: Double?
    /// The scale s the normwise error is relative to.
    public var scale: Double
    /// A gradient whose float64 value is rounding noise: ‖ours‖ ≤ 10⁻⁹ of the network's gradient RMS scaled to
    /// this tensor's size (a bias feeding a group norm with one channel per group, for instance).
    public var zeroInExactArithmetic: Bool
    public var passed: Bool { comparison.passed && normwiseError <= (normwiseBound ?? .infinity) }
    /// The normwise error over its bound (0 without one).
    public var normwiseRatio: Double { normwiseBound.map { normwiseError / $0 } ?? 0 }
}

/// The gradients of one layer (keys sharing everything before the last dot), summarised.
public struct LayerSummary: Sendable {
    public var layer: String
    public var tensors: Int, elements: Int
    /// √Σ‖file − ours‖² / √Σ s² over the layer's tensors.
    public var normwiseError: Double
    public var worstTensor: String, worstRatio: Double
    public var failed: Int
    public var passed: Bool { failed == 0 }
}

/// The whole check of one golden file.
public struct GoldenCheckResult: Sendable {
    public var path: String
    /// nil for the float64 tier (today's elementwise rule).
    public var tier: GoldenTier?
    public var elementTolerance: Tolerance?
    public var budgets: RoundingBudgets
    public var rows: [TierRow]
    public var layers: [LayerSummary]
    /// The network's gradient RMS (√Σ‖g‖² / √Σ m over every gradient in the file), the floor's unit.
    public var gradientRMS: Double
    /// Per-module outputs and gradients (version-3 files that hold them; GoldenActivations.swift).
    public var activations: ActivationCheck? = nil
    /// The same module outputs judged at each precision tier (float32, bfloat16, float16), for the per-tier summary.
    public var activationsByTier: [(tier: Precision, check: ActivationCheck)] = []
    public var failedRows: [TierRow] { rows.filter { !$0.passed } }
    /// An empty check is a failure: a file with no outputs checks nothing.
    public var passed: Bool { !rows.isEmpty && failedRows.isEmpty }
    /// The first layer whose gradient fails, in the order the backward pass reaches them (the reverse of
    /// the state-dict order).
    public var firstFailingLayerInBackwardOrder: String? { layers.reversed().first { !$0.passed }?.layer }
}

public enum GoldenCheckRule: Sendable {
    /// Today's rule: |ours − file| ≤ atol + rtol·|file| elementwise, the file's value as reference.
    case elementwise(Tolerance)
    /// A precision tier: normwise and elementwise, our float64 value as reference.
    case tier(GoldenTier)
}

extension GoldenFile {
    /// Recomputes every output of the file and judges it by `rule`.
    public static func check(path: String, rule: GoldenCheckRule) throws -> GoldenCheckResult {
        let r = try recompute(path: path)
        var result = judge(r, path: path, rule: rule)
        if let a = r.activations {
            result.activations = try judgeActivations(ours: a.ours, stored: a.stored, storedGradients: a.storedGradients, path: path,
                                                      configuration: r.configuration, batch: r.batch, parameterKeys: r.parameterKeys, rule: rule)
            result.activationsByTier = try [Precision.float32, .bfloat16, .float16].map { p in
                (p, try judgeActivations(ours: a.ours, stored: a.stored, storedGradients: a.storedGradients, path: path, configuration: r.configuration,
                                         batch: r.batch, parameterKeys: r.parameterKeys, rule: .tier(GoldenTier(storage: p))))
            }
        }
        return result
    }

    /// Judges recomputed outputs by `rule` (separate from reading, so that tests can judge edited values).
    public static func judge(_ r: Recomputed, path: String, rule: GoldenCheckRule) -> GoldenCheckResult {
        let budgets = RoundingBudgets(network: r.configuration.network, batch: r.batch, parameterCount: r.parameterKeys.count)
        let grads = r.outputs.filter { $0.name.hasPrefix("grad/") }
        let gradSquares = grads.reduce(0.0) { $0 + $1.ours.reduce(0) { $0 + $1 * $1 } }
        let gradCount = grads.reduce(0) { $0 + $1.ours.count }
        let gradientRMS = gradCount == 0 ? 0 : (gradSquares / Double(gradCount)).squareRoot()
        var rows: [TierRow] = []
        for o in r.outputs {
            let kind = GoldenOutputKind(output: o.name)
            let m = o.ours.count
            let norm = o.ours.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let floor = gradientRMS * Double(m).squareRoot()
            // Gradients: relative to max(‖g‖, floor), the floor the size a gradient of the network's RMS would have.
            // A gradient far below it is a sum that cancels (a group norm's affine weight, a bias feeding a
            // group norm), whose rounding errors scale with the terms, not with the small result.
            let zero = kind == .gradient && norm <= 1e-9 * floor
            let scale = kind == .gradient ? max(norm, floor) : norm
            let diff = zip(o.stored, o.ours).reduce(0.0) { let d = $1.0 - $1.1; return $0 + d * d }.squareRoot()
            let normwise = diff == 0 ? 0 : (scale == 0 ? .infinity : diff / scale)
            switch rule {
            case .elementwise(let tol):
                let c = Comparison(o.name, actual: o.ours, expected: o.stored, tolerance: tol)
                rows.append(TierRow(name: o.name, shape: o.shape, kind: kind, comparison: c, normwiseError: normwise,
                                    normwiseBound: nil, scale: scale, zeroInExactArithmetic: zero))
            case .tier(let tier):
                let tau = tier.normwiseBound(budgets[kind])
                let lm = GoldenTier.extremeValueFactor(count: m) * tau
                let atol = lm * scale / Double(max(m, 1)).squareRoot()
                let tol = Tolerance(rtol: lm, atol: atol > 0 ? atol : 0x1p-1074)
                let c = Comparison(o.name, actual: o.stored, expected: o.ours, tolerance: tol)
                rows.append(TierRow(name: o.name, shape: o.shape, kind: kind, comparison: c, normwiseError: normwise,
                                    normwiseBound: tau, scale: scale, zeroInExactArithmetic: zero))
            }
        }
        // Rows: the outputs in file order, then the gradients in state-dict order (the forward order of the layers).
        let order = Dictionary(uniqueKeysWithValues: r.parameterKeys.enumerated().map { ("grad/" + $1, $0) })
        rows = rows.filter { $0.kind != .gradient } + rows.filter { $0.kind == .gradient }.sorted { (order[$0.name] ?? .max) < (order[$1.name] ?? .max) }
        // Per layer, in state-dict order.
        var layers: [LayerSummary] = []
        let byName = Dictionary(rows.filter { $0.kind == .gradient }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var seen: [String: Int] = [:]
        var sums: [(d: Double, s: Double)] = []
        for key in r.parameterKeys {
            guard let row = byName["grad/" + key] else { continue }
            let layer = key.split(separator: ".").dropLast().joined(separator: ".")
            let ratio = max(row.comparison.worstRatio, row.normwiseRatio)
            let d = row.normwiseError.isFinite ? row.normwiseError * row.scale : .infinity
            if let i = seen[layer] {
                layers[i].tensors += 1; layers[i].elements += row.comparison.count
                sums[i].d += d * d; sums[i].s += row.scale * row.scale
                if ratio > layers[i].worstRatio { layers[i].worstRatio = ratio; layers[i].worstTensor = key }
                if !row.passed { layers[i].failed += 1 }
            } else {
                seen[layer] = layers.count
                layers.append(LayerSummary(layer: layer, tensors: 1, elements: row.comparison.count, normwiseError: 0,
                                           worstTensor: key, worstRatio: ratio, failed: row.passed ? 0 : 1))
                sums.append((d * d, row.scale * row.scale))
            }
        }
        for i in layers.indices {
            let d = sums[i].d.squareRoot(), s = sums[i].s.squareRoot()
            layers[i].normwiseError = d == 0 ? 0 : (s == 0 ? .infinity : d / s)
        }
        var tier: GoldenTier? = nil, tol: Tolerance? = nil
        switch rule { case .tier(let t): tier = t; case .elementwise(let t): tol = t }
        return GoldenCheckResult(path: path, tier: tier, elementTolerance: tol, budgets: budgets, rows: rows, layers: layers, gradientRMS: gradientRMS)
    }
}
