// Whole sampling trajectories in golden files (schema ddpm-golden version 3, optional: `ddpm golden export
// --trajectories`). Each trajectory is one group `/trajectories/<name>` holding what a backend needs to run
// the chain and what it must reproduce at every step:
//
//     x_T          (N,C,H,W)     the chain's start (the VP state x_t at the first step; a σ-view solver reads x_t √(1 + σ_0²))
//     noise        (S,N,C,H,W)   z of step k (zeros where the step draws none)
//     draws_noise  (S)  int64    1 where step k consumes noise[k]
//     timesteps    (S)  int64    the original timestep of step k (ReverseChainStep.t; the σ → t map's t for a solver)
//     x            (S,N,C,H,W)   the state after step k (x_{t−1}; x_0 after the last step)
//     pred_x0      (S,N,C,H,W)   x̂_0 as step k used it (after clipping; D(x; σ) for a solver)
//     attribute `sampler`: the chain, its spacing, η, clipping and solver conventions in words (SamplerChoice's
//     and SigmaSampler's descriptions); `steps` (int64)
//
// and `/sigma_tables/<schedule>_<N>` the σ tables (N + 1 values, σ_max first, final 0) for N ∈ {5, 20, 50}
// under each σ schedule (Karras ρ = 7, exponential, trained at improved-diffusion's ddimN; N ≤ T).
//
// The check recomputes every trajectory from the file's x_T, noises and weights with our code (a free run,
// not fed the file's states) and compares the file's states step by step: it reports the first step that
// leaves the tolerance and the error's growth along the chain (Notes/09, "Whole trajectories").

import Foundation
import HDF5

/// The trajectories of a golden file: which chains, how they are written, checked and reported.
public enum GoldenTrajectories {
    /// One stored chain: its group name and the sampler it runs.
    public struct Spec: Sendable {
        public var name: String
        public var choice: SamplerChoice
    }

    /// The full ancestral chain is stored only up to this T (each step is one network evaluation and one state).
    public static let fullChainLimit = 100
    /// The σ tables' step counts.
    public static let sigmaTableSteps = [5, 20, 50]

    /// The chains stored for a configuration of T steps: the full ancestral chain (T ≤ ``fullChainLimit``),
    /// ancestral respaced to min(10, T) steps, DDIM η = 0 and η = 0.5 in min(10, T) steps (improved-diffusion's
    /// ddimN spacing), and Euler, Heun, DPM-Solver++(2M) and Euler ancestral (η = 1, s_noise = 1) on Karras σ
    /// (ρ = 7, σ→t log-linear) in min(10, T) steps. DDIM is absent for x_{t−1}-prediction.
    public static func specs(for config: ModelConfiguration) -> [Spec] {
        let T = config.timesteps, n = min(10, T)
        var s: [Spec] = []
        if T <= fullChainLimit { s.append(Spec(name: "ancestral_full", choice: .ancestral())) }
        s.append(Spec(name: "ancestral_\(n)", choice: .ancestral(steps: n)))
        if config.diffusion.meanType != .previousX {
            s.append(Spec(name: "ddim_eta0_\(n)", choice: .ddim(steps: n, eta: 0)))
            s.append(Spec(name: "ddim_eta0.5_\(n)", choice: .ddim(steps: n, eta: 0.5)))
            for (name, solver) in [("euler", SigmaSolver.euler), ("heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1)),
                                   ("dpmpp_2m", .dpmpp2M), ("euler_ancestral", .eulerAncestral(eta: 1, noiseScale: 1))] {
                var c = SamplerChoice(steps: n)
                c.solver = SolverChoice(solver: solver, sigmas: .karras(rho: 7))
                s.append(Spec(name: "\(name)_karras_\(n)", choice: c))
            }
        }
        return s
    }

    /// The chain of a file's sampler options (GoldenSamplerOptions.swift), or none.
    public static func specs(options: GoldenSamplerOptions?, config: ModelConfiguration) -> [Spec] {
        options.map { [Spec(name: GoldenSamplerOptions.trajectoryName, choice: $0.choice(timesteps: config.timesteps))] } ?? []
    }

    /// The σ tables stored: (dataset name, schedule, N) for N ∈ ``sigmaTableSteps`` with N ≤ T.
    public static func sigmaTables(for config: ModelConfiguration) -> [(name: String, kind: SigmaScheduleKind, steps: Int)] {
        sigmaTableSteps.filter { $0 <= config.timesteps }.flatMap { n in
            [("karras_rho7_\(n)", SigmaScheduleKind.karras(rho: 7), n), ("exponential_\(n)", .exponential, n), ("trained_ddim\(n)", .trained(nil), n)]
        }
    }

    /// One chain run: per step the original timestep, the state after it and the x̂_0 it used.
    public struct Run {
        public var timesteps: [Int] = [], states: [Tensor] = [], predictedStarts: [Tensor] = []
    }

    /// The sampler's description as stored (`SigmaSampler.convention` added for a solver).
    static func describe(_ sampler: ReverseSampler, _ choice: SamplerChoice) -> String {
        choice.description + ((sampler as? SigmaSampler).map { "; " + $0.convention } ?? "")
    }

    /// Runs `choice` over the configuration's diffusion from x_T with the given per-step noises.
    static func run(config: ModelConfiguration, network: UNet, choice: SamplerChoice, start: Tensor, noise: [Tensor]) throws -> (Run, String) {
        let sampler = try choice.makeSampler(for: config.makeDiffusion())
        var r = Run()
        var g = RandomGenerator(seed: 0)   // unused: every noise is given
        _ = try runReverseChain(model: network, from: start, sampler: sampler, generator: &g, noise: noise) { s in
            r.timesteps.append(s.t); r.states.append(s.next); r.predictedStarts.append(s.predictedStart)
        }
        return (r, describe(sampler, choice))
    }

    /// Computes every trajectory of ``specs(for:)`` from x_T and noise drawn from `generator` (x_T, then the
    /// S noises, per trajectory in order) and writes them and the σ tables (called inside the export's writer).
    static func write(to w: HDF5Writer, config: ModelConfiguration, network: UNet, batch: Int, specs chains: [Spec], sigmaTables withTables: Bool,
                      generator g: inout RandomGenerator) throws {
        let c = config.network
        let shape = [batch, c.channels, c.imageSize, c.imageSize]
        let m = shape.reduce(1, *)
        let d = try config.makeDiffusion()
        var computed: [(Spec, Tensor, [Tensor], [Bool], Run, String)] = []
        for spec in chains {
            let sampler = try spec.choice.makeSampler(for: d)
            let xT = Tensor.randomNormal(shape, generator: &g)
            let draws = (0..<sampler.stepCount).map { sampler.drawsNoise(atStep: $0) }
            let noise = draws.map { $0 ? Tensor.randomNormal(shape, generator: &g) : Tensor(shape: shape, data: [Double](repeating: 0, count: m)) }
            let (r, text) = try run(config: config, network: network, choice: spec.choice, start: xT, noise: noise)
            computed.append((spec, xT, noise, draws, r, text))
        }
        let tables = try (withTables ? sigmaTables(for: config) : []).map { t in (t, try SolverChoice(solver: .euler, sigmas: t.kind).sigmaTable(steps: t.steps, diffusion: d)) }
        for (spec, xT, noise, draws, r, text) in computed {
            let p = "/trajectories/" + spec.name
            let s = draws.count
            try w.write(xT.data, shape: shape, to: p + "/x_T")
            try w.write(noise.flatMap(\.data), shape: [s] + shape, to: p + "/noise")
            try w.write(draws.map { Int64($0 ? 1 : 0) }, shape: [s], to: p + "/draws_noise")
            try w.write(r.timesteps.map(Int64.init), shape: [s], to: p + "/timesteps")
            try w.write(r.states.flatMap(\.data), shape: [s] + shape, to: p + "/x")
            try w.write(r.predictedStarts.flatMap(\.data), shape: [s] + shape, to: p + "/pred_x0")
            try w.setAttribute("sampler", text, on: p)
            try w.setAttribute("steps", Int64(s), on: p)
        }
        try w.setAttribute("chain_state", "VP x_t throughout; a sigma-view solver step reads x = x_t sqrt(1 + sigma_k^2) and returns x' / sqrt(1 + sigma_{k+1}^2) (x' at sigma = 0)", on: "/trajectories")
        try w.setAttribute("noise", "noise[k] is the z of step k, drawn only where draws_noise[k] = 1 (ancestral draws at every step, masked at t = 0)", on: "/trajectories")
        try w.setAttribute("network_mode", "evaluation (dropout off)", on: "/trajectories")
        for ((name, kind, n), values) in tables {
            try w.write(values, shape: [values.count], to: "/sigma_tables/" + name)
            try w.setAttribute("schedule", "\(kind), \(n) steps, sigma_min/max = trained sigma_0/sigma_{T-1}, final 0 appended", on: "/sigma_tables/" + name)
        }
    }

    // ─── The check ───────────────────────────────────────────────────────────────────────────────────

    /// One step of one trajectory: the file's state and x̂_0 against our free-running recomputation.
    public struct StepRow: Sendable {
        public var step: Int, timestep: Int
        /// ‖file − ours‖/‖ours‖ of the state after the step, and of x̂_0.
        public var stateError: Double, predictedStartError: Double
        public var state: Comparison, predictedStart: Comparison
        /// The normwise bounds τ_k of the state and of x̂_0 at a precision tier (nil at the float64 tier).
        public var stateBound: Double? = nil, predictedStartBound: Double? = nil
        public var passed: Bool {
            state.passed && predictedStart.passed && stateError <= (stateBound ?? .infinity) && predictedStartError <= (predictedStartBound ?? .infinity)
        }
        /// The largest of the elementwise and normwise ratios to their bounds, of the state and of x̂_0.
        public var worstRatio: Double {
            max(state.worstRatio, predictedStart.worstRatio, stateBound.map { stateError / $0 } ?? 0, predictedStartBound.map { predictedStartError / $0 } ?? 0)
        }
    }

    /// One trajectory checked.
    public struct TrajectoryCheck: Sendable {
        public var name: String, sampler: String
        public var steps: [StepRow]
        /// False at a precision tier for a trajectory without a measured amplification (the σ-view solvers):
        /// its steps carry the float64 comparison only, and it does not decide the check.
        public var judged = true
        /// The network budget of the per-step bound (for the bounds of the other tiers, as the figure draws them).
        public var budget = RoundingBudget(depth: 1, reduction: 1)
        public var firstFailingStep: Int? { steps.first { !$0.passed }?.step }
        public var passed: Bool { !steps.isEmpty && firstFailingStep == nil }
        /// The largest normwise error of the states over the first step's (the chain's growth; nil when the first is 0).
        public var growth: Double? {
            guard let first = steps.first?.stateError, first > 0 else { return nil }
            return (steps.map(\.stateError).max() ?? 0) / first
        }
    }

    /// Every trajectory of a file and its σ tables, checked.
    public struct Check: Sendable {
        public var path: String, tolerance: Tolerance
        /// The precision tier the trajectories were judged at (nil: the float64 tolerance).
        public var tier: GoldenTier? = nil
        public var trajectories: [TrajectoryCheck]
        public var sigmaTables: [Comparison]
        /// Per lower tier (float32, bfloat16, float16), the first step beyond it of each trajectory with a
        /// measured amplification (nil: none), filled by ``check(path:rule:)``.
        public var perTier: [(tier: Precision, steps: [(name: String, step: Int?)])] = []
        /// The trajectories that decide the check (at a tier, those with a measured amplification).
        public var judged: [TrajectoryCheck] { trajectories.filter(\.judged) }
        /// Whether the trajectories decide the check: at the float64 tier always, at a precision tier when one has a
        /// measured amplification (a file whose only chain is its sampler options' is reported, not judged).
        public var decided: Bool { tier == nil || !judged.isEmpty }
        /// A file with a `/trajectories` group that holds no step fails: a check that compares nothing fails. At a
        /// tier, a file none of whose trajectories has a measured amplification fails the same way.
        public var passed: Bool { !judged.isEmpty && judged.allSatisfy(\.passed) && sigmaTables.allSatisfy(\.passed) }
    }

    /// Whether the file holds trajectories.
    public static func present(path: String) throws -> Bool { try HDF5File(path: path).exists("/trajectories") }

    /// One trajectory of a file beside our recomputation: the states and x̂_0 per step, flattened (S·N·C·H·W).
    public struct Recomputed: Sendable {
        public var name: String, sampler: String, timesteps: [Int], elementsPerStep: Int
        public var ours: (states: [Double], predictedStarts: [Double])
        public var stored: (states: [Double], predictedStarts: [Double])
        /// The network budget of the file's configuration and batch (the per-step bound of the tiers).
        public var budget: RoundingBudget
        public init(name: String, sampler: String, timesteps: [Int], elementsPerStep: Int, ours: (states: [Double], predictedStarts: [Double]),
                    stored: (states: [Double], predictedStarts: [Double]), budget: RoundingBudget = RoundingBudget(depth: 1, reduction: 1)) {
            self.name = name; self.sampler = sampler; self.timesteps = timesteps; self.elementsPerStep = elementsPerStep
            self.ours = ours; self.stored = stored; self.budget = budget
        }
    }

    /// Recomputes every trajectory of the file (from its x_T, noises and weights) and its σ tables, and compares
    /// the stored states and x̂_0 per step, elementwise |ours − file| ≤ atol + rtol·|file|. Throws `DDPMError`
    /// for a malformed file: an unknown trajectory name, a sampler description that differs from ours, a missing
    /// dataset or a wrong shape.
    public static func check(path: String, tolerance: Tolerance) throws -> Check {
        try check(path: path, rule: .elementwise(tolerance))
    }

    /// The same, by the golden check's rule: at a precision tier, each step against the tier's trajectory bound
    /// (``stepBounds(trajectory:step:of:tier:budget:)``), as an output is against its tier.
    public static func check(path: String, rule: GoldenCheckRule) throws -> Check {
        let (chains, tables) = try recompute(path: path)
        var c = judge(chains, sigmaTables: tables, path: path, rule: rule)
        c.perTier = firstFailingStepPerTier(chains)
        return c
    }

    /// Judges recomputed trajectories at the float64 tolerance (separate from reading, so that tests can judge edited values).
    public static func judge(_ chains: [Recomputed], sigmaTables: [(name: String, ours: [Double], stored: [Double])], path: String,
                             tolerance: Tolerance) -> Check {
        judge(chains, sigmaTables: sigmaTables, path: path, rule: .elementwise(tolerance))
    }

    /// Judges recomputed trajectories by `rule`. At the float64 tier: |ours − file| ≤ atol + rtol·|file| elementwise.
    /// At a precision tier, step k of a trajectory with a measured amplification passes when its state's and its
    /// x̂_0's normwise errors are within τ_k and every element within λ_m·τ_k·(|ours| + s/√m) (the tiers'
    /// elementwise rule, s = ‖ours‖ of that step); one without (a σ-view solver) is compared at the float64
    /// tolerance, reported and not judged. σ tables at a tier: the elementwise budget's rule.
    public static func judge(_ chains: [Recomputed], sigmaTables: [(name: String, ours: [Double], stored: [Double])], path: String,
                             rule: GoldenCheckRule) -> Check {
        let float64 = Tolerance(rtol: 1e-10, atol: 1e-12)
        var tolerance = float64, tier: GoldenTier? = nil
        switch rule { case .elementwise(let t): tolerance = t; case .tier(let t): tier = t }
        var result = Check(path: path, tolerance: tolerance, tier: tier, trajectories: [], sigmaTables: [])
        /// The tiers' elementwise tolerance for m values of norm s under the normwise bound τ (GoldenFile.judge's).
        func tierTolerance(_ tau: Double, norm s: Double, count m: Int) -> Tolerance {
            let lm = GoldenTier.extremeValueFactor(count: m) * tau
            let atol = lm * s / Double(max(m, 1)).squareRoot()
            return Tolerance(rtol: lm, atol: atol > 0 ? atol : 0x1p-1074)
        }
        for c in chains {
            let m = c.elementsPerStep, n = c.timesteps.count
            let judged = tier.map { stepBounds(trajectory: c.name, step: 0, of: n, tier: $0, budget: c.budget) != nil } ?? true
            let rows = c.timesteps.indices.map { k -> StepRow in
                let r = k * m ..< (k + 1) * m
                let (ox, o0) = (Array(c.ours.states[r]), Array(c.ours.predictedStarts[r]))
                let (fx, f0) = (Array(c.stored.states[r]), Array(c.stored.predictedStarts[r]))
                if let tier, let b = stepBounds(trajectory: c.name, step: k, of: n, tier: tier, budget: c.budget) {
                    return StepRow(step: k, timestep: c.timesteps[k], stateError: relative(fx, ox), predictedStartError: relative(f0, o0),
                                   state: Comparison("\(c.name) x[\(k)]", actual: fx, expected: ox, tolerance: tierTolerance(b.state, norm: norm(ox), count: m)),
                                   predictedStart: Comparison("\(c.name) pred_x0[\(k)]", actual: f0, expected: o0,
                                                              tolerance: tierTolerance(b.predictedStart, norm: norm(o0), count: m)),
                                   stateBound: b.state, predictedStartBound: b.predictedStart)
                }
                let t = tier == nil ? tolerance : float64
                return StepRow(step: k, timestep: c.timesteps[k], stateError: relative(fx, ox), predictedStartError: relative(f0, o0),
                               state: Comparison("\(c.name) x[\(k)]", actual: ox, expected: fx, tolerance: t),
                               predictedStart: Comparison("\(c.name) pred_x0[\(k)]", actual: o0, expected: f0, tolerance: t))
            }
            result.trajectories.append(TrajectoryCheck(name: c.name, sampler: c.sampler, steps: rows, judged: judged, budget: c.budget))
        }
        result.sigmaTables = sigmaTables.map { s in
            if let tier {
                let tau = tier.normwiseBound(RoundingBudget(depth: 4, reduction: 1))
                return Comparison("sigma_tables/" + s.name, actual: s.stored, expected: s.ours, tolerance: tierTolerance(tau, norm: norm(s.ours), count: s.ours.count))
            }
            return Comparison("sigma_tables/" + s.name, actual: s.ours, expected: s.stored, tolerance: tolerance)
        }
        return result
    }

    /// The first step beyond its tier of every judged trajectory at float32, bfloat16 and float16 (nil: none), for
    /// the per-tier summary; trajectories without a measured amplification are left out.
    public static func firstFailingStepPerTier(_ chains: [Recomputed]) -> [(tier: Precision, steps: [(name: String, step: Int?)])] {
        [Precision.float32, .bfloat16, .float16].map { p in
            let c = judge(chains, sigmaTables: [], path: "", rule: .tier(GoldenTier(storage: p)))
            return (p, c.judged.map { ($0.name, $0.firstFailingStep) })
        }
    }

    /// Reads a file's trajectories and σ tables and recomputes them with our code (see ``check(path:tolerance:)``).
    public static func recompute(path: String) throws -> ([Recomputed], [(name: String, ours: [Double], stored: [Double])]) {
        let (file, config, net) = try GoldenFile.openModel(path: path)
        let c = config.network
        let known = Dictionary(uniqueKeysWithValues: (specs(for: config) + specs(options: try GoldenSamplerOptions.read(file), config: config)).map { ($0.name, $0) })
        var chains: [Recomputed] = []
        for name in file.exists("/trajectories") ? try file.members(ofGroup: "/trajectories") : [] {
            let p = "/trajectories/" + name
            guard let spec = known[name] else {
                throw DDPMError(.malformedFile, "\(path) '\(p)': unknown trajectory; expected one of \(known.keys.sorted().joined(separator: ", "))")
            }
            for d in ["x_T", "noise", "x", "pred_x0", "timesteps"] where !file.exists(p + "/" + d) {
                throw DDPMError(.malformedFile, "\(path): missing dataset '\(p)/\(d)'")
            }
            let xT = try file.readDoubles(p + "/x_T")
            guard xT.shape.count == 4, xT.shape[0] > 0, Array(xT.shape.dropFirst()) == [c.channels, c.imageSize, c.imageSize] else {
                throw DDPMError(.shapeMismatch, "\(path) '\(p)/x_T': expected shape [N, \(c.channels), \(c.imageSize), \(c.imageSize)], found \(xT.shape)")
            }
            let shape = xT.shape, m = shape.reduce(1, *)
            let s = try spec.choice.makeSampler(for: config.makeDiffusion()).stepCount
            let noise = try file.readDoubles(p + "/noise", expectedShape: [s] + shape)
            let states = try file.readDoubles(p + "/x", expectedShape: [s] + shape)
            let starts = try file.readDoubles(p + "/pred_x0", expectedShape: [s] + shape)
            let stored = try file.stringAttribute("sampler", of: p)
            let z = (0..<s).map { Tensor(shape: shape, data: Array(noise.values[$0 * m ..< ($0 + 1) * m])) }
            let (ours, text) = try run(config: config, network: net, choice: spec.choice, start: Tensor(shape: shape, data: xT.values), noise: z)
            guard stored == text else {
                throw DDPMError(.invalidConfiguration, "\(path) '\(p)' attribute 'sampler': expected '\(text)', found '\(stored)'")
            }
            let budget = RoundingBudgets(network: c, batch: shape[0], parameterCount: net.namedParameters().count).network
            chains.append(Recomputed(name: name, sampler: text, timesteps: ours.timesteps, elementsPerStep: m,
                                     ours: (ours.states.flatMap(\.data), ours.predictedStarts.flatMap(\.data)),
                                     stored: (states.values, starts.values), budget: budget))
        }
        var tables: [(name: String, ours: [Double], stored: [Double])] = []
        if file.exists("/sigma_tables") {
            let d = try config.makeDiffusion()
            let known = Dictionary(uniqueKeysWithValues: sigmaTables(for: config).map { ($0.name, $0) })
            for name in try file.members(ofGroup: "/sigma_tables") {
                guard let t = known[name] else { throw DDPMError(.malformedFile, "\(path) '/sigma_tables/\(name)': unknown σ table") }
                let ours = try SolverChoice(solver: .euler, sigmas: t.kind).sigmaTable(steps: t.steps, diffusion: d)
                tables.append((name, ours, try file.readDoubles("/sigma_tables/" + name, expectedShape: [ours.count]).values))
            }
        }
        return (chains, tables)
    }

    /// ‖a‖.
    static func norm(_ a: [Double]) -> Double { a.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// ‖a − b‖/‖b‖ (0 when equal, ∞ when b = 0 ≠ a).
    static func relative(_ a: [Double], _ b: [Double]) -> Double {
        let d = zip(a, b).reduce(0.0) { let e = $1.0 - $1.1; return $0 + e * e }.squareRoot()
        let n = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return d == 0 ? 0 : (n == 0 ? .infinity : d / n)
    }
}
