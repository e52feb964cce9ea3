import DDPM
import Foundation

/// The training-loss figure (`ddpm train`'s `--loss-figure`, the demo's loss.svg): the loss of every step,
/// its running mean over 50 steps and, when there are any, the held-out losses at the steps they were
/// taken (circles), against the step, log scale.
enum LossCurve {
    /// Window of the running mean (steps).
    static let window = 50

    /// The running mean of the last ``window`` values at each step (fewer at the start).
    static func runningMean(_ v: [Double]) -> [Double] {
        var out: [Double] = [], sum = 0.0
        for (i, x) in v.enumerated() {
            sum += x
            if i >= window { sum -= v[i - window] }
            out.append(sum / Double(min(i + 1, window)))
        }
        return out
    }

    /// The figure of a trainer's histories: x is the step (the loss of step s at x = s; a step with no
    /// record, such as step 0 or the steps before a checkpoint that had no history, is a gap), one point per
    /// recorded step in the "loss of each step" line, one circle per held-out record.
    static func svg(_ losses: [LossRecord], heldOut: [LossRecord] = [], title: String) -> String {
        let last = max(losses.last?.step ?? 0, heldOut.last?.step ?? 0)
        var each = [Double](repeating: .nan, count: last + 1), mean = each
        for (r, m) in zip(losses, runningMean(losses.map(\.loss))) { each[r.step] = r.loss; mean[r.step] = m }
        var chart = LogChart(title: title, xLabel: "step", series: [
            ("loss of each step", "#aec7e8", each), ("running mean over \(window) steps", "#1f77b4", mean)])
        if !heldOut.isEmpty { chart.points = [("held-out loss", "#d62728", heldOut.map { ($0.step, $0.loss) })] }
        return chart.svg()
    }
}
