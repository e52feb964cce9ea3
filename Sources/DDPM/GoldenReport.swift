// The golden check's words: a short terminal summary (one line per failing output and a summary line)
// and the whole table as Markdown.

import Foundation

func sci(_ x: Double) -> String {
    if x == 0 { return "0" }
    if x.isInfinite { return "∞" }
    if x.isNaN { return "NaN" }
    return String(format: "%.2e", x)
}

extension GoldenCheckResult {
    /// The rule in words.
    public var ruleDescription: String {
        if let tier { return "tier \(tier.storage.rawValue) (\(tier))" }
        return "tier float64 (elementwise \(elementTolerance.map { "\($0)" } ?? ""))"
    }

    /// One line for a failing output: which test failed, by how much, and the worst element.
    public func failureLine(_ r: TierRow) -> String {
        let c = r.comparison
        var parts: [String] = []
        if let b = r.normwiseBound, r.normwiseError > b {
            parts.append("normwise error \(sci(r.normwiseError)) > bound \(sci(b)) (×\(formatRatio(r.normwiseError / b)))")
        }
        if let s = c.shapeMismatch { parts.append(s) }
        if c.countBeyondTolerance > 0 {
            let (file, ours) = tier == nil ? (c.worstExpected, c.worstActual) : (c.worstActual, c.worstExpected)
            parts.append("\(c.countBeyondTolerance) of \(c.count) elements beyond tolerance, worst at index \(c.worstIndex ?? 0): file \(file), ours \(ours)")
        }
        return "FAIL \(r.name) \(r.shape): " + parts.joined(separator: "; ")
    }

    /// The summary line: counts, the rule, zero-in-exact-arithmetic gradients and the first failing layer.
    public var summaryLine: String {
        let failed = failedRows.count
        var s = "\(rows.count - failed) passed, \(failed) failed (\(ruleDescription))"
        if rows.isEmpty { s += "; the file has no outputs: nothing was checked" }
        let zeros = rows.filter(\.zeroInExactArithmetic).count
        if zeros > 0 {
            s += tier == nil ? "; \(zeros) gradient(s) zero in exact arithmetic (their values are rounding noise, compared through atol only)"
                : "; \(zeros) gradient(s) zero in exact arithmetic, judged against the network's gradient floor"
        }
        if tier != nil, let worst = rows.max(by: { $0.normwiseRatio < $1.normwiseRatio }) {
            s += "; largest normwise error/bound \(formatRatio(worst.normwiseRatio)) (\(worst.name))"
        }
        if let layer = firstFailingLayerInBackwardOrder { s += "; first failing layer in backward order: \(layer)" }
        return s
    }

    /// The whole check as Markdown: the rule, the budgets, one row per output, one row per layer.
    public func markdown() -> String {
        var md = "# Golden check of `\(URL(fileURLWithPath: path).lastPathComponent)`\n\n"
        md += "Result: **\(passed ? "pass" : "FAIL")** — \(summaryLine).\n\n"
        if let tier {
            md += "| kind | depth L | reduction n | normwise bound τ = λ√(L·u_s² + n·u_a²) |\n|---|---|---|---|\n"
            for k in [GoldenOutputKind.elementwise, .network, .gradient] {
                let b = budgets[k]
                md += "| \(k.rawValue) | \(b.depth) | \(b.reduction) | \(sci(tier.normwiseBound(b))) |\n"
            }
            md += "\nNormwise error ‖file − ours‖/s ≤ τ; elementwise |file − ours| ≤ λ_m·τ·(|ours| + s/√m), λ_m = √(2 ln 2m); "
                + "s = ‖ours‖, for a gradient max(‖ours‖, \(sci(gradientRMS))·√m) (the network's gradient RMS times √m). "
                + "Errors below are of the file against our float64 recomputation.\n\n"
        } else {
            md += "Elementwise: |ours − file| ≤ atol + rtol·|file|. Errors below are of our float64 recomputation against the file.\n\n"
        }
        md += "## Outputs\n\n"
        md += "| output | shape | kind | normwise error | bound | max abs | max rel | 99th pct abs | mean abs | beyond | worst index | file | ours | result |\n"
        md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let c = r.comparison
            let (file, ours) = tier == nil ? (c.worstExpected, c.worstActual) : (c.worstActual, c.worstExpected)
            let kind = r.kind.rawValue + (r.zeroInExactArithmetic ? " (zero in exact arithmetic)" : "")
            md += "| \(r.name) | \(r.shape) | \(kind) | \(sci(r.normwiseError)) | \(r.normwiseBound.map(sci) ?? "–") | "
                + "\(sci(c.maxAbsoluteError)) | \(sci(c.maxRelativeError)) | \(sci(c.absoluteError99)) | \(sci(c.meanAbsoluteError)) | "
                + "\(c.countBeyondTolerance) | \(c.worstIndex.map(String.init) ?? "–") | \(file) | \(ours) | \(r.passed ? "pass" : "**FAIL**") |\n"
        }
        if !layers.isEmpty {
            md += "\n## Gradients per layer (state-dict order; the backward pass meets them bottom-up)\n\n"
            md += "| layer | tensors | elements | normwise error | worst tensor | worst error/bound | failed | result |\n|---|---|---|---|---|---|---|---|\n"
            for l in layers {
                md += "| \(l.layer) | \(l.tensors) | \(l.elements) | \(sci(l.normwiseError)) | \(l.worstTensor) | \(formatRatio(l.worstRatio)) | \(l.failed) | \(l.passed ? "pass" : "**FAIL**") |\n"
            }
        }
        return md
    }
}

private func formatRatio(_ r: Double) -> String {
    r == 0 ? "0" : r.isInfinite ? "∞" : String(format: "%.3g", r)
}

extension GoldenTrajectories.Check {
    /// The rule in words: the float64 tolerance, or the tier and where its amplification comes from.
    public var ruleDescription: String {
        if let tier { return "tier \(tier.storage.rawValue) (\(tier)): step k within τ_net·A_k, A_k the chain's measured amplification" }
        return "float64 tolerance |ours − file| ≤ \(tolerance.atol) + \(tolerance.rtol)·|file|"
    }

    /// One line per trajectory (its first failing step and worst ratio, or its pass) and per failing σ table.
    public var lines: [String] {
        var out: [String] = []
        let level = tier.map { "its \($0.storage.rawValue) tier" } ?? "tolerance"
        for t in trajectories {
            let worst = t.steps.max { $0.stateError < $1.stateError }
            let growth = t.growth.map { ", growth ×\(formatRatio($0)) over the chain" } ?? ""
            if !t.judged, let tier {
                out.append("trajectory \(t.name): no measured amplification (no honest float32 run of this chain), not judged at \(tier.storage.rawValue); "
                           + "largest state error \(sci(worst?.stateError ?? 0))\(growth)")
            } else if let k = t.firstFailingStep, let r = t.steps.first(where: { $0.step == k }) {
                let stateFails = !r.state.passed || r.stateError > (r.stateBound ?? .infinity)
                let (which, error, bound) = stateFails ? (r.state, r.stateError, r.stateBound) : (r.predictedStart, r.predictedStartError, r.predictedStartBound)
                out.append("FAIL trajectory \(t.name): first step beyond \(level) \(k) of \(t.steps.count) (t = \(r.timestep)), "
                           + "\(which.name) normwise error \(sci(error))\(bound.map { " (bound \(sci($0)))" } ?? ""), worst ratio \(formatRatio(r.worstRatio))\(growth)")
            } else {
                let ratio = tier == nil ? "" : ", largest error/bound \(formatRatio(t.steps.map(\.worstRatio).max() ?? 0))"
                out.append("trajectory \(t.name): \(t.steps.count) steps pass\(tier.map { " at \($0.storage.rawValue)" } ?? ""), largest state error \(sci(worst?.stateError ?? 0))\(ratio)\(growth)")
            }
        }
        for s in sigmaTables where !s.passed { out.append("FAIL \(s.name): worst element ratio \(formatRatio(s.worstRatio))") }
        if trajectories.isEmpty { out.append("'/trajectories' holds no trajectory: nothing was checked") }
        return out
    }

    /// The first step beyond each lower tier, per judged trajectory: "first failing step per tier: float32 none; …".
    public var tierLine: String? {
        guard !perTier.isEmpty, perTier.contains(where: { !$0.steps.isEmpty }) else { return nil }
        let parts = perTier.map { p -> String in
            let failing = p.steps.compactMap { s in s.step.map { "\(s.name) at step \($0)" } }
            return "\(p.tier.rawValue) " + (failing.isEmpty ? "none" : failing.joined(separator: ", "))
        }
        return "trajectories, first step beyond each tier: " + parts.joined(separator: "; ")
    }

    /// The trajectories as Markdown: per trajectory, a row per step with the normwise errors (the growth along the
    /// chain) and, at a tier, their bounds; `figure` is the file name of the growth figure to reference.
    public func markdown(figure: String? = nil) -> String {
        var md = "\n## Trajectories (our free run from the file's x_T and noises; \(ruleDescription))\n"
        if tier != nil { md += "\nτ_net = λ√(L·u_s² + n·u_a²) of the network budget; A_k measured on \(GoldenTrajectories.amplificationSource).\n" }
        if let figure { md += "\n![Error growth along each trajectory against its tier bounds](\(figure))\n" }
        if let line = tierLine { md += "\n\(line)\n" }
        for t in trajectories {
            let verdict = !t.judged && tier != nil ? "not judged (no measured amplification)" : t.passed ? "pass" : "**FAIL** at step \(t.firstFailingStep.map(String.init) ?? "–")"
            md += "\n### \(t.name): \(verdict)\n\n\(t.sampler)\n\n"
            md += "| step | t | ‖x − ours‖/‖ours‖ | bound | ‖x̂_0 − ours‖/‖ours‖ | bound | worst ratio | result |\n|---|---|---|---|---|---|---|---|\n"
            for r in t.steps {
                md += "| \(r.step) | \(r.timestep) | \(sci(r.stateError)) | \(r.stateBound.map(sci) ?? "–") | \(sci(r.predictedStartError)) | "
                    + "\(r.predictedStartBound.map(sci) ?? "–") | \(formatRatio(r.worstRatio)) | \(r.passed ? "pass" : "**FAIL**") |\n"
            }
        }
        if !sigmaTables.isEmpty {
            md += "\n### σ tables\n\n| table | values | max abs | result |\n|---|---|---|---|\n"
            for s in sigmaTables { md += "| \(s.name) | \(s.count) | \(sci(s.maxAbsoluteError)) | \(s.passed ? "pass" : "**FAIL**") |\n" }
        }
        return md
    }

    /// Per trajectory, the series of the growth figure: the state and x̂_0 errors per step and the state bound
    /// τ_net·A_k at float32, bfloat16 and float16 (empty for a trajectory without a measured amplification).
    public var figureSeries: [(name: String, stateErrors: [Double], predictedStartErrors: [Double], bounds: [(tier: Precision, values: [Double])])] {
        trajectories.map { t in
            let n = t.steps.count
            let bounds = [Precision.float32, .bfloat16, .float16].compactMap { p -> (tier: Precision, values: [Double])? in
                let v = (0..<n).compactMap { GoldenTrajectories.stepBounds(trajectory: t.name, step: $0, of: n, tier: GoldenTier(storage: p), budget: t.budget)?.state }
                return v.count == n && n > 0 ? (p, v) : nil
            }
            return (t.name, t.steps.map(\.stateError), t.steps.map(\.predictedStartError), bounds)
        }
    }
}
