import Foundation

/// The training-loss figure: the loss of every step and its running mean over 50 steps, log scale.
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

    static func svg(_ losses: [Double], title: String) -> String {
        LogChart(title: title, xLabel: "step", series: [
            ("loss of each step", "#aec7e8", losses), ("running mean over \(window) steps", "#1f77b4", runningMean(losses))]).svg()
    }
}
