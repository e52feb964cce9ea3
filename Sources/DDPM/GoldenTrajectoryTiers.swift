// Precision tiers of whole trajectories: the per-step bound of the tiers (GoldenTiers.swift) times the
// amplification the chain itself applies to an error, measured on an honest float32 run (Notes/09,
// "Tiers for trajectories").

import Foundation

/// How much a chain amplifies the rounding error of its steps: per step k, the largest normwise error of a
/// float32 run so far over its first step's, A_k = max_{j ≤ k} e_j / e_0 (1 at step 0), for the states and
/// for x̂_0. Measured, not derived: `Fixtures/backends/torch_trajectories.py --measure` runs the independent
/// PyTorch port in float32 and float64 along each stored chain and appends e_k to
/// `Fixtures/backends/trajectory-growth.json`; the profiles below are the per-step maxima over its runs
/// (`GoldenTrajectoryTierTests.tableIsTheMeasurement` recomputes them from that file).
public struct TrajectoryAmplification: Sendable, Equatable {
    /// A_k of the states x and of x̂_0, one value per step of the measured chain.
    public var states: [Double], predictedStarts: [Double]

    /// A_k for step `k` of a chain of `steps` steps: the measured profile when the chain has as many steps
    /// as the measured one, otherwise the profile's largest value at every step (a chain of another length
    /// is not the measured chain step for step, only of the same kind).
    public func state(step k: Int, of steps: Int) -> Double { Self.at(states, k, steps) }
    public func predictedStart(step k: Int, of steps: Int) -> Double { Self.at(predictedStarts, k, steps) }

    static func at(_ p: [Double], _ k: Int, _ steps: Int) -> Double {
        steps == p.count && p.indices.contains(k) ? p[k] : (p.max() ?? 1)
    }
}

extension GoldenTrajectories {
    /// The kind of a stored trajectory, by its name (``specs(for:)``): `ancestral_full`, `ancestral_respaced`
    /// (`ancestral_<N>`), `ddim_eta0`, `ddim_eta0.5`, or the name itself for the σ-view solvers.
    public static func kind(ofTrajectory name: String) -> String {
        if name == "ancestral_full" { return name }
        if name.hasPrefix("ancestral_") { return "ancestral_respaced" }
        if name.hasPrefix("ddim_eta"), let cut = name.lastIndex(of: "_") { return String(name[..<cut]) }
        return name
    }

    /// Where ``measuredAmplification`` comes from, as the report states it.
    public static let amplificationSource = "the honest float32 PyTorch port (Fixtures/backends/torch_trajectories.py --measure, torch 2.15.0+cu132) "
        + "against its float64 run, tiny preset, T = 20, batch 2, seeds 0, 1, 2 (Fixtures/backends/trajectory-growth.json)"

    /// The measured amplification per trajectory kind (see ``TrajectoryAmplification``). The σ-view solvers are
    /// not ported to PyTorch, so they have none: at a precision tier they are reported, not judged.
    public static let measuredAmplification: [String: TrajectoryAmplification] = [
        "ancestral_full": TrajectoryAmplification(
            states: [1, 1.249, 1.538, 1.75, 1.902, 2.357, 2.688, 3.039, 3.039, 3.039, 3.039, 3.039, 3.039, 3.039, 3.039, 3.039, 3.039, 3.072, 3.179, 3.37],
            predictedStarts: [1, 1.028, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153, 1.153]),
        "ancestral_respaced": TrajectoryAmplification(
            states: [1, 1.369, 1.795, 2.038, 2.208, 2.208, 2.321, 2.711, 3.222, 3.222],
            predictedStarts: [1, 1.036, 1.036, 1.04, 1.04, 1.04, 1.04, 1.103, 1.328, 1.328]),
        "ddim_eta0": TrajectoryAmplification(
            states: [1, 1.028, 1.033, 1.196, 1.224, 1.416, 1.448, 1.66, 1.938, 1.938],
            predictedStarts: [1, 1.042, 1.042, 1.042, 1.042, 1.042, 1.042, 1.042, 1.042, 1.042]),
        "ddim_eta0.5": TrajectoryAmplification(
            states: [1, 1.093, 1.251, 1.429, 1.455, 1.464, 1.639, 2.003, 2.327, 2.327],
            predictedStarts: [1, 1.149, 1.149, 1.149, 1.149, 1.149, 1.149, 1.149, 1.228, 1.228]),
    ]

    /// The normwise bounds of step `k` of a chain of `steps` steps at `tier`, or nil without a measured amplification:
    ///
    ///     τ_k = τ_net · A_k        (states: A^x_k; x̂_0: A^0_k)
    ///
    /// τ_net = λ√(L·u_s² + n·u_a²) is the network budget's bound (`RoundingBudgets`): the first step of a chain
    /// is one network evaluation and the elementwise arithmetic after it, as `x_prev` and `pred_x0` are among the
    /// outputs. Each later step's own rounding is of the same size; the chain carries the earlier steps' errors on,
    /// scaled by A_k.
    public static func stepBounds(trajectory name: String, step k: Int, of steps: Int, tier: GoldenTier,
                                  budget: RoundingBudget) -> (state: Double, predictedStart: Double)? {
        guard let a = measuredAmplification[kind(ofTrajectory: name)] else { return nil }
        let tau = tier.normwiseBound(budget)
        return (tau * a.state(step: k, of: steps), tau * a.predictedStart(step: k, of: steps))
    }
}
