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
    /// One line per trajectory (its first failing step and worst ratio, or its pass) and per failing σ table.
    public var lines: [String] {
        var out: [String] = []
        for t in trajectories {
            let worst = t.steps.max { $0.stateError < $1.stateError }
            let growth = t.growth.map { ", growth ×\(formatRatio($0)) over the chain" } ?? ""
            if let k = t.firstFailingStep, let r = t.steps.first(where: { $0.step == k }) {
                let (which, error) = r.state.passed ? (r.predictedStart, r.predictedStartError) : (r.state, r.stateError)
                out.append("FAIL trajectory \(t.name): first step beyond tolerance \(k) of \(t.steps.count) (t = \(r.timestep)), "
                           + "\(which.name) normwise error \(sci(error)), worst element ratio \(formatRatio(which.worstRatio))\(growth)")
            } else {
                out.append("trajectory \(t.name): \(t.steps.count) steps pass, largest state error \(sci(worst?.stateError ?? 0))\(growth)")
            }
        }
        for s in sigmaTables where !s.passed { out.append("FAIL \(s.name): worst element ratio \(formatRatio(s.worstRatio))") }
        if trajectories.isEmpty { out.append("'/trajectories' holds no trajectory: nothing was checked") }
        return out
    }

    /// The trajectories as Markdown: per trajectory, a row per step with the normwise errors (the growth along the chain).
    public func markdown() -> String {
        var md = "\n## Trajectories (our free run from the file's x_T and noises; |ours − file| ≤ \(tolerance.atol) + \(tolerance.rtol)·|file|)\n"
        for t in trajectories {
            md += "\n### \(t.name): \(t.passed ? "pass" : "**FAIL** at step \(t.firstFailingStep.map(String.init) ?? "–")")\n\n\(t.sampler)\n\n"
            md += "| step | t | ‖x − ours‖/‖ours‖ | ‖x̂_0 − ours‖/‖ours‖ | worst ratio | result |\n|---|---|---|---|---|---|\n"
            for r in t.steps {
                md += "| \(r.step) | \(r.timestep) | \(sci(r.stateError)) | \(sci(r.predictedStartError)) | "
                    + "\(formatRatio(max(r.state.worstRatio, r.predictedStart.worstRatio))) | \(r.passed ? "pass" : "**FAIL**") |\n"
            }
        }
        if !sigmaTables.isEmpty {
            md += "\n### σ tables\n\n| table | values | max abs | result |\n|---|---|---|---|\n"
            for s in sigmaTables { md += "| \(s.name) | \(s.count) | \(sci(s.maxAbsoluteError)) | \(s.passed ? "pass" : "**FAIL**") |\n" }
        }
        return md
    }
}
