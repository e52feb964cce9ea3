// ─── The σ-view solvers as the pluggable step of the one reverse chain ────────────────────────────────────
//
// `SigmaSampler` is a ``ReverseSampler``: ``runReverseChain(model:from:sampler:generator:noise:onStep:)`` runs
// it like ancestral sampling and DDIM. Step k goes from σ_k to σ_{k+1} of its schedule (N steps over N + 1
// σ). The chain's state stays the VP x_t; a step reads x = x_t √(1 + σ_k²), applies the solver's update
// (``SolverUpdate``) and hands back x_t = x'/√(1 + σ_{k+1}²) (x' itself at σ = 0). A multistep solver keeps its
// history of model outputs inside the sampler (it is a class for that reason), cleared when step 0 begins.

import Foundation
import Tensors

/// Which solver, with its options; each names its source. Names as users know them from the peers.
public enum SigmaSolver: Sendable, Equatable, CustomStringConvertible {
    /// Euler on the probability-flow ODE (Karras et al. 2022 Algorithm 1 without the Heun correction; k-diffusion `sample_euler`).
    case euler
    /// Euler ancestral (k-diffusion `sample_euler_ancestral`): each step split by η into a deterministic part and fresh noise.
    case eulerAncestral(eta: Double, noiseScale: Double)
    /// Heun (Karras et al. 2022 Algorithm 1; the correction skipped into σ = 0), with Algorithm 2's churn
    /// (S_churn = 0 is deterministic).
    case heun(churn: Double, tMin: Double, tMax: Double, noiseScale: Double)
    /// DPM-Solver++(2M) (Lu et al. 2022b Algorithm 2; k-diffusion `sample_dpmpp_2m`): first step first order.
    case dpmpp2M
    /// DPM-Solver++(2S) (Lu et al. 2022b Algorithm 1, r = ½) with k-diffusion's ancestral η (`sample_dpmpp_2s_ancestral`; η = 0 is deterministic).
    case dpmpp2S(eta: Double, noiseScale: Double)
    /// SDE-DPM-Solver++(2M) (Lu et al. 2022b §5; k-diffusion `sample_dpmpp_2m_sde`).
    case dpmpp2MSDE(eta: Double, noiseScale: Double, correction: SolverUpdate.SDECorrection)
    /// DPM-Solver-K (Lu et al. 2022a, noise prediction, singlestep, K = 1, 2, 3 evaluations per step; K = 1 is DDIM).
    case dpmSolver(order: Int)
    /// UniPC-p (Zhao et al. 2023; diffusers `UniPCMultistepScheduler`, data prediction): UniP-p with the
    /// UniC corrector (`corrector` false is UniP alone), p ≤ 3.
    case uniPC(order: Int, variant: SolverUpdate.UniPCVariant, corrector: Bool)
    /// PLMS / PNDM (Liu et al. 2022): the 4th-order pseudo linear multistep with its warm-up.
    case plms(warmUp: PLMSWarmUp)

    /// How PLMS starts before four ε̂ are known.
    public enum PLMSWarmUp: String, Sendable, CaseIterable {
        /// Liu et al.'s PNDM: three pseudo Runge–Kutta steps (4 evaluations each; midpoints at (σ + σ')/2, the middle of the step in σ, the ODE's variable; Liu et al. use t − δ/2).
        case pseudoRungeKutta = "prk"
        /// diffusers' `PNDMScheduler(skip_prk_steps=True)`: the first step twice (a Heun-like step of 2 evaluations), then AB2, AB3.
        case plms
    }

    public var description: String {
        switch self {
        case .euler: "euler (Karras et al. 2022 Alg. 1, S_churn = 0)"
        case let .eulerAncestral(e, s): "euler-ancestral (k-diffusion; eta=\(e), s_noise=\(s))"
        case let .heun(c, a, b, s): "heun (Karras et al. 2022 Alg. 1/2; S_churn=\(c), S_tmin=\(a), S_tmax=\(b), S_noise=\(s))"
        case .dpmpp2M: "dpm++2m (Lu et al. 2022b Alg. 2)"
        case let .dpmpp2S(e, s): "dpm++2s (Lu et al. 2022b Alg. 1, r=1/2; k-diffusion ancestral eta=\(e), s_noise=\(s))"
        case let .dpmpp2MSDE(e, s, c): "dpm++2m-sde (Lu et al. 2022b; k-diffusion eta=\(e), s_noise=\(s), solver_type=\(c.rawValue))"
        case let .dpmSolver(k): "dpm-solver-\(k) (Lu et al. 2022a, singlestep)"
        case let .uniPC(p, v, c): "unipc (Zhao et al. 2023; order \(p), \(v.rawValue)\(c ? "" : ", no corrector"))"
        case let .plms(w): "plms (Liu et al. 2022; warm-up \(w == .plms ? "plms (diffusers skip_prk_steps)" : "pseudo Runge-Kutta"))"
        }
    }

    /// Throws for an order or η outside what the source defines.
    public func validate() throws {
        func nonNegative(_ v: Double, _ name: String) throws {
            guard v >= 0, v.isFinite else { throw DDPMError(.invalidValue, "\(name): expected a finite value ≥ 0, got \(v)") }
        }
        switch self {
        case .euler, .dpmpp2M, .plms: break
        case let .eulerAncestral(e, s), let .dpmpp2S(e, s), let .dpmpp2MSDE(e, s, _): try nonNegative(e, "η"); try nonNegative(s, "s_noise")
        case let .heun(c, a, b, s):
            try nonNegative(c, "S_churn"); try nonNegative(s, "S_noise")
            guard a >= 0, b >= a else { throw DDPMError(.invalidValue, "Heun churn: expected 0 ≤ S_tmin ≤ S_tmax, got \(a) and \(b)") }
        case let .dpmSolver(k):
            guard (1...3).contains(k) else { throw DDPMError(.invalidValue, "DPM-Solver order: expected 1, 2 or 3, got \(k)") }
        case let .uniPC(p, _, _):
            guard (1...3).contains(p) else { throw DDPMError(.invalidValue, "UniPC order: expected 1, 2 or 3, got \(p)") }
        }
    }
}

/// A σ-view solver over a σ schedule, as a step of the one reverse chain.
public final class SigmaSampler: ReverseSampler {
    /// σ_0 > … > σ_N (σ_N is 0 when the schedule appends it).
    public let sigmas: [Double]
    public let solver: SigmaSolver
    public let denoiser: SigmaDenoiser
    /// diffusers' `lower_order_final` for the multistep solvers (2M, 2M SDE, UniPC): the final steps use
    /// order min(p, steps left). Off: only the step into σ = 0 is first order (k-diffusion; forced there, h = ∞).
    public let lowerOrderFinal: Bool
    /// PNDM's warm-up midpoints, one per step: nil is (σ_k + σ_{k+1})/2, the middle of the step in σ; diffusers'
    /// `PNDMScheduler` on a trained table uses the trained σ at t − ⌊δ/2⌋ (δ the step ratio).
    public let midpoints: [Double]?

    /// The conventions that produced a run (recorded in golden files).
    public var convention: String {
        "\(solver); \(sigmas.count - 1) steps, final sigma \(sigmas.last!)" + (lowerOrderFinal ? ", lower_order_final" : "")
    }

    // The solver's state (cleared at step 0).
    private var history: [(sigma: Double, denoised: Tensor)] = []
    private var noises: [Tensor] = []
    private var lastLogStep: Double? = nil
    private var lastSample: Tensor? = nil
    private var lastOrder = 0
    /// Network evaluations since step 0 began.
    public private(set) var evaluations = 0

    /// Throws for fewer than 2 σ, σ not strictly decreasing, a zero before the end, or invalid solver options.
    public init(sigmas: [Double], solver: SigmaSolver, denoiser: SigmaDenoiser, lowerOrderFinal: Bool = false, midpoints: [Double]? = nil) throws {
        guard sigmas.count >= 2 else { throw DDPMError(.invalidValue, "σ-view solver: expected at least 2 σ (one step), got \(sigmas.count)") }
        guard zip(sigmas, sigmas.dropFirst()).allSatisfy({ $0 > $1 }), sigmas.last! >= 0, sigmas.first!.isFinite else {
            throw DDPMError(.invalidValue, "σ-view solver: σ must decrease strictly to a final value ≥ 0, got \(sigmas)")
        }
        try solver.validate()
        if let midpoints, midpoints.count < sigmas.count - 1 {
            throw DDPMError(.invalidValue, "PNDM midpoints: expected one per step (\(sigmas.count - 1)), got \(midpoints.count)")
        }
        self.sigmas = sigmas; self.solver = solver; self.denoiser = denoiser; self.lowerOrderFinal = lowerOrderFinal; self.midpoints = midpoints
    }

    public var stepCount: Int { sigmas.count - 1 }

    public func drawsNoise(atStep k: Int) -> Bool {
        let (s, sn) = (sigmas[k], sigmas[k + 1])
        switch solver {
        case let .eulerAncestral(e, _), let .dpmpp2S(e, _): return e != 0 && sn > 0 && SolverUpdate.ancestralSplit(sigma: s, next: sn, eta: e).up > 0
        case let .dpmpp2MSDE(e, _, _): return e != 0 && sn > 0
        case let .heun(c, a, b, _): return gamma(k, churn: c, tMin: a, tMax: b) > 0
        default: return false
        }
    }

    /// γ_k of Karras et al. Algorithm 2: min(S_churn/N, √2 − 1) when S_tmin ≤ σ_k ≤ S_tmax, else 0.
    func gamma(_ k: Int, churn: Double, tMin: Double, tMax: Double) -> Double {
        let s = sigmas[k]
        return churn > 0 && s >= tMin && s <= tMax ? min(churn / Double(stepCount), 2.0.squareRoot() - 1) : 0
    }

    private func evaluate(_ model: NoisePredictor, _ x: Tensor, _ s: Double) throws -> SigmaPrediction {
        evaluations += 1
        return try denoiser.denoise(model: model, x, sigma: s)
    }

    /// The order a multistep solver of order p may use at step k: the warm-up (one more per step) and,
    /// with ``lowerOrderFinal``, the steps left.
    private func multistepOrder(_ k: Int, _ p: Int) -> Int {
        var o = min(p, history.count)
        if lowerOrderFinal { o = min(o, stepCount - k) }
        return max(o, 1)
    }

    public func step(_ k: Int, model: NoisePredictor, _ xt: Tensor, noise z: Tensor?) throws -> ReverseChainStep {
        if k == 0 { history = []; noises = []; lastLogStep = nil; lastSample = nil; lastOrder = 0; evaluations = 0 }
        let (s, sn) = (sigmas[k], sigmas[k + 1])
        var x = SigmaView.scaled(vp: xt, sigma: s)
        let next: Tensor, start: Tensor
        switch solver {
        case .euler:
            let p = try evaluate(model, x, s)
            start = p.denoised
            next = SolverUpdate.euler(x, derivative: SolverUpdate.derivative(x, denoised: p.denoised, sigma: s), sigma: s, next: sn)
        case let .eulerAncestral(eta, sNoise):
            let p = try evaluate(model, x, s)
            start = p.denoised
            let (down, up) = SolverUpdate.ancestralSplit(sigma: s, next: sn, eta: eta)
            next = SolverUpdate.eulerAncestral(x, derivative: SolverUpdate.derivative(x, denoised: p.denoised, sigma: s), sigma: s,
                                               down: down, up: sn > 0 ? up : 0, noiseScale: sNoise, z: z)
        case let .heun(churn, tMin, tMax, sNoise):
            var sh = s
            let g = gamma(k, churn: churn, tMin: tMin, tMax: tMax)
            if g > 0, let z { (x, sh) = SolverUpdate.churn(x, sigma: s, gamma: g, noiseScale: sNoise, z: z) }
            let p = try evaluate(model, x, sh)
            start = p.denoised
            let d = SolverUpdate.derivative(x, denoised: p.denoised, sigma: sh)
            let e = SolverUpdate.euler(x, derivative: d, sigma: sh, next: sn)
            if sn == 0 {
                next = e
            } else {
                let p2 = try evaluate(model, e, sn)
                next = SolverUpdate.heun(x, derivative: d, nextDerivative: SolverUpdate.derivative(e, denoised: p2.denoised, sigma: sn), sigma: sh, next: sn)
            }
        case .dpmpp2M:
            let p = try evaluate(model, x, s)
            start = p.denoised
            let h = SolverUpdate.logStep(sigma: s, next: sn)
            if let hLast = lastLogStep, let prev = history.first, sn > 0, !(lowerOrderFinal && k == stepCount - 1) {
                next = SolverUpdate.dpmpp2M(x, denoised: p.denoised, previous: prev.denoised, sigma: s, next: sn, lastStep: hLast)
            } else {
                next = SolverUpdate.dpmppFirstOrder(x, denoised: p.denoised, sigma: s, next: sn)
            }
            history = [(s, p.denoised)]; lastLogStep = h
        case let .dpmpp2MSDE(eta, sNoise, correction):
            let p = try evaluate(model, x, s)
            start = p.denoised
            if sn == 0 {
                next = p.denoised
            } else {
                let useHistory = !(lowerOrderFinal && k == stepCount - 1)
                next = SolverUpdate.dpmpp2MSDE(x, denoised: p.denoised, previous: useHistory ? history.first?.denoised : nil, sigma: s, next: sn,
                                               lastStep: useHistory ? lastLogStep : nil, eta: eta, noiseScale: sNoise, correction: correction, z: z)
            }
            history = [(s, p.denoised)]; lastLogStep = SolverUpdate.logStep(sigma: s, next: sn)
        case let .dpmpp2S(eta, sNoise):
            let p = try evaluate(model, x, s)
            start = p.denoised
            let (down, up) = SolverUpdate.ancestralSplit(sigma: s, next: sn, eta: eta)
            var y: Tensor
            if down == 0 {
                y = SolverUpdate.euler(x, derivative: SolverUpdate.derivative(x, denoised: p.denoised, sigma: s), sigma: s, next: down)
            } else {
                let h = SolverUpdate.logStep(sigma: s, next: down)
                let sMid = SolverUpdate.intermediateSigma(sigma: s, logStep: h, fraction: 0.5)
                let u = SolverUpdate.dpmppFirstOrder(x, denoised: p.denoised, sigma: s, next: sMid)
                let p2 = try evaluate(model, u, sMid)
                y = SolverUpdate.dpmppFirstOrder(x, denoised: p2.denoised, sigma: s, next: down)
            }
            if sn > 0, up > 0, let z { y = y + z * (up * sNoise) }
            next = y
        case let .dpmSolver(order):
            let p = try evaluate(model, x, s)
            start = p.denoised
            if sn == 0 || order == 1 {
                next = SolverUpdate.dpmSolver1(x, noise: p.noise, sigma: s, next: sn)
            } else {
                let h = SolverUpdate.logStep(sigma: s, next: sn)
                let r1 = order == 2 ? 0.5 : 1.0 / 3
                let s1 = SolverUpdate.intermediateSigma(sigma: s, logStep: h, fraction: r1)
                let u1 = SolverUpdate.dpmSolver1(x, noise: p.noise, sigma: s, next: s1)
                let e1 = try evaluate(model, u1, s1).noise
                if order == 2 {
                    next = SolverUpdate.dpmSolver2(x, noise: p.noise, intermediateNoise: e1, sigma: s, next: sn)
                } else {
                    let u2 = SolverUpdate.dpmSolver3Intermediate(x, noise: p.noise, intermediateNoise: e1, sigma: s, logStep: h)
                    let s2 = SolverUpdate.intermediateSigma(sigma: s, logStep: h, fraction: 2.0 / 3)
                    let e2 = try evaluate(model, u2, s2).noise
                    next = SolverUpdate.dpmSolver3(x, noise: p.noise, secondIntermediateNoise: e2, sigma: s, next: sn)
                }
            }
        case let .uniPC(order, variant, corrector):
            let p = try evaluate(model, x, s)
            start = p.denoised
            // UniC: correct x (predicted by the last step) with the evaluation at it, at the last step's order.
            if corrector, let last = lastSample, !history.isEmpty {
                x = SolverUpdate.uniC(last, history: Array(history.prefix(lastOrder)), next: s, nextDenoised: p.denoised, variant: variant)
            }
            history.insert((s, p.denoised), at: 0)
            history = Array(history.prefix(order))
            var o = multistepOrder(k, order)
            if sn == 0 { o = 1 }
            lastOrder = o; lastSample = x
            next = SolverUpdate.uniP(x, history: Array(history.prefix(o)), next: sn, variant: variant)
        case let .plms(warmUp):
            let p = try evaluate(model, x, s)
            start = p.denoised
            if warmUp == .pseudoRungeKutta && noises.count < 3 {
                let sMid = midpoints?[k] ?? (s + sn) / 2
                let e1 = p.noise
                let e2 = try evaluate(model, SolverUpdate.pndmTransfer(x, noise: e1, sigma: s, next: sMid), sMid).noise
                let e3 = try evaluate(model, SolverUpdate.pndmTransfer(x, noise: e2, sigma: s, next: sMid), sMid).noise
                let x3 = SolverUpdate.pndmTransfer(x, noise: e3, sigma: s, next: sn)
                let e4 = sn == 0 ? e3 : try evaluate(model, x3, sn).noise
                next = SolverUpdate.pndmTransfer(x, noise: SolverUpdate.pseudoRungeKutta(e1, e2, e3, e4), sigma: s, next: sn)
                noises.insert(e1, at: 0)
            } else if warmUp == .plms && noises.isEmpty && sn > 0 {
                let x1 = SolverUpdate.pndmTransfer(x, noise: p.noise, sigma: s, next: sn)
                let e1 = try evaluate(model, x1, sn).noise
                next = SolverUpdate.pndmTransfer(x, noise: (p.noise + e1) / 2, sigma: s, next: sn)
                noises.insert(p.noise, at: 0)
            } else {
                noises.insert(p.noise, at: 0)
                noises = Array(noises.prefix(4))
                next = SolverUpdate.pndmTransfer(x, noise: SolverUpdate.plmsCombination(noises), sigma: s, next: sn)
            }
        }
        return ReverseChainStep(t: denoiser.modelTimestep(sigma: s), index: stepCount - 1 - k, noisy: xt, predictedStart: start,
                                next: SigmaView.vp(next, sigma: sn))
    }
}
