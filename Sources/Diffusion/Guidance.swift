// ─── Classifier-free guidance (Ho & Salimans 2022) and its rescale (Lin et al. 2024) ──────────────────
//
// Bayes' rule: p(c | x_t) ∝ p(x_t | c) / p(x_t), so the score of the tilted density
// p(x_t | c)^{1+w} / p(x_t)^w is (1 + w) ∇ log p(x_t | c) − w ∇ log p(x_t) = ∇ log p(x_t | c) + w ∇ log p(c | x_t);
// with ε = −√(1−ᾱ_t) ∇ log p_t this is eq. 6 of Ho & Salimans: ε̃ = (1 + w) ε_c − w ε_u.
//
// Two conventions name the strength (Notes/19-guidance.md has the table):
//   paper (Ho & Salimans 2022, eq. 6):        ε̃ = (1 + w) ε_c − w ε_u,        w = 0 is the conditional model;
//   GLIDE, diffusers, k-diffusion, LDM:       ε̃ = ε_u + s (ε_c − ε_u),        s = 1 + w, s = 1 is the conditional model.
// Both entry points below run the paper's arithmetic ((1 + w) ε_c − w ε_u, with w = s − 1 for the second),
// so that w = 0 (s = 1) returns ε_c bit for bit. Unlike diffusers (`do_classifier_free_guidance =
// guidance_scale > 1`), nothing is skipped for s ≤ 1: s = 1 is the conditional model, s = 0 the
// unconditional one, and 0 < s < 1 interpolates between them.
//
// The combination has weights (1 + w) and −w summing to 1, so it commutes with every affine map of the
// output at a fixed x_t: guiding x̂_0 or v̂ gives the x̂_0 or v̂ of the guided ε̂ (GuidanceTests pins it).
// With a learned variance (2C output channels, mean part first) only the mean part is guided; the
// variance part is the conditional output's (GLIDE's and improved-diffusion's convention).

import Errors
import Tensors

/// The strength of classifier-free guidance in the convention the user gave it; both carry the same
/// number w = s − 1 inside, the convention is kept to be recorded (golden files, reports).
public enum GuidanceStrength: Sendable, Equatable {
    /// Ho & Salimans 2022 eq. 6: ε̃ = (1 + w) ε_c − w ε_u (w = 0: the conditional model).
    case paper(w: Double)
    /// GLIDE / diffusers `guidance_scale` / k-diffusion `cond_scale`: ε̃ = ε_u + s (ε_c − ε_u), s = 1 + w.
    case scale(s: Double)

    /// w (the paper's): w itself, or s − 1.
    public var w: Double {
        switch self { case .paper(let w): return w; case .scale(let s): return s - 1 }
    }
    /// s (diffusers'): s itself, or 1 + w.
    public var s: Double {
        switch self { case .paper(let w): return 1 + w; case .scale(let s): return s }
    }
    /// The convention's name as files record it: "paper-w" or "diffusers-s".
    public var convention: String {
        switch self { case .paper: return "paper-w"; case .scale: return "diffusers-s" }
    }
    /// The value as the user gave it (w or s).
    public var given: Double {
        switch self { case .paper(let w): return w; case .scale(let s): return s }
    }
}

public enum ClassifierFreeGuidance {
    /// Classifier-free guidance, the paper's convention (Ho & Salimans 2022, eq. 6):
    ///
    ///     ε̃ = (1 + w) ε_c − w ε_u        (ε_c, ε_u, ε̃: N×C×H×W, or any shape, the same for all three)
    ///
    /// w = 0 returns ε_c bit for bit; w = −1 returns ε_u. Applies to any mean parameterisation (ε, x_0, v).
    /// Fixture: `guidance.h5 /cfg/guided_w{0,1,3}_phi0`; exact oracle: `guidance.h5 /mixture`.
    public static func guided(conditional c: Tensor, unconditional u: Tensor, w: Double) -> Tensor {
        precondition(c.shape == u.shape, "classifier-free guidance: conditional \(c.shape) and unconditional \(u.shape) differ")
        return (1 + w) * c - w * u
    }

    /// Classifier-free guidance in GLIDE's / diffusers' / k-diffusion's convention,
    ///
    ///     ε̃ = ε_u + s (ε_c − ε_u),   s = 1 + w        (shapes as in ``guided(conditional:unconditional:w:)``)
    ///
    /// computed as ``guided(conditional:unconditional:w:)`` with w = s − 1 (the same arithmetic: s = 1 is
    /// ε_c bit for bit). No skip for s ≤ 1 (diffusers skips guidance there). Fixture: `guidance.h5 /cfg` (attribute s).
    public static func guided(conditional c: Tensor, unconditional u: Tensor, scale s: Double) -> Tensor {
        guided(conditional: c, unconditional: u, w: s - 1)
    }

    /// ``guided(conditional:unconditional:w:)`` with the strength in either convention.
    public static func guided(conditional c: Tensor, unconditional u: Tensor, _ strength: GuidanceStrength) -> Tensor {
        guided(conditional: c, unconditional: u, w: strength.w)
    }

    /// Guidance rescale (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
    /// §3.4, eqs. 15–16; diffusers `rescale_noise_cfg`), per sample n (σ over every axis but the batch axis):
    ///
    ///     ε_rescaled = ε̃ · σ(ε_c) / σ(ε̃),     out = φ ε_rescaled + (1 − φ) ε̃        (N×…, φ ∈ [0, 1])
    ///
    /// σ is the population standard deviation (the normalisation, n or n − 1, cancels in the ratio;
    /// diffusers' `torch.std` uses n − 1). φ = 0 returns ε̃ bit for bit. Fixture: `guidance.h5 /cfg/guided_w*_phi0.7`.
    public static func rescaled(guided g: Tensor, conditional c: Tensor, phi: Double) -> Tensor {
        precondition(g.shape == c.shape && g.rank >= 1, "guidance rescale: guided \(g.shape) and conditional \(c.shape) differ")
        if phi == 0 { return g }
        let n = g.shape[0], per = g.count / max(n, 1)
        func std(_ a: ArraySlice<Double>) -> Double {
            let mean = a.reduce(0, +) / Double(a.count)
            return (a.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(a.count)).squareRoot()
        }
        var out = [Double](repeating: 0, count: g.count)
        for i in 0..<n {
            let r = (i * per)..<((i + 1) * per)
            let ratio = std(c.data[r]) / std(g.data[r])
            for j in r { out[j] = phi * (g.data[j] * ratio) + (1 - phi) * g.data[j] }
        }
        return Tensor(shape: g.shape, data: out)
    }

    /// Guidance of a whole model output: the mean part (channels 0 ..< `meanChannels`) guided with
    /// ``guided(conditional:unconditional:w:)`` then ``rescaled(guided:conditional:phi:)``; any further
    /// channels (a learned variance's half, improved-diffusion's `learn_sigma`) taken from the conditional
    /// output (GLIDE's and improved-diffusion's convention). Shapes N×C'×H×W with C' = meanChannels or 2·meanChannels.
    public static func guidedOutput(conditional c: Tensor, unconditional u: Tensor, _ strength: GuidanceStrength,
                                    rescale phi: Double = 0, meanChannels: Int) -> Tensor {
        precondition(c.shape == u.shape && c.rank >= 2 && meanChannels > 0 && meanChannels <= c.shape[1],
                     "guidedOutput: conditional \(c.shape), unconditional \(u.shape), \(meanChannels) mean channels")
        let full = meanChannels == c.shape[1]
        let cm = full ? c : c.slice(axis: 1, start: 0, length: meanChannels)
        let um = full ? u : u.slice(axis: 1, start: 0, length: meanChannels)
        let mean = rescaled(guided: guided(conditional: cm, unconditional: um, strength), conditional: cm, phi: phi)
        if full { return mean }
        return Tensor.concatenate([mean, c.slice(axis: 1, start: meanChannels, length: c.shape[1] - meanChannels)], axis: 1)
    }
}

/// Classifier-free guided sampling as a plain ``NoisePredictor``, so that every sampler (ancestral,
/// respaced, DDIM, every solver) gets guidance through the one reverse chain unchanged. Each call on
/// x (N×C×H×W) at t makes **one** call of the conditional model on the batch of 2N
///
///     [x; x] at [t; t] with labels [y; ∅]   →   [out_c; out_u]   →   ``ClassifierFreeGuidance/guidedOutput(conditional:unconditional:_:rescale:meanChannels:)``
///
/// (the conditional half first). With a learned variance (`meanChannels` = C of a 2C output) the
/// variance half is the conditional one's. Parameters and mode are the wrapped model's.
public final class ClassifierFreeGuidedPredictor: NoisePredictor {
    public let model: ConditionalNoisePredictor
    /// y, one label per sample (in 0 ..< K).
    public let labels: [Int]
    public let strength: GuidanceStrength
    /// φ of the rescale (0: none).
    public let rescale: Double
    /// The channels of the mean part of the output (C); the rest is a variance part, taken from the conditional output.
    public let meanChannels: Int
    /// The guidance interval (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited Interval Improves Sample
    /// and Distribution Quality", §3): the network timesteps t at which guidance is applied; at any other t the
    /// output is the conditional model's (w = 0), from one call on the batch of N alone. nil: every t (Ho & Salimans).
    public let interval: ClosedRange<Int>?

    /// Throws unless every label is a class 0 ..< K of `model`, the strength finite and φ in [0, 1].
    public init(_ model: ConditionalNoisePredictor, labels: [Int], strength: GuidanceStrength, rescale: Double = 0, meanChannels: Int,
                interval: ClosedRange<Int>? = nil) throws {
        try model.validate(labels: labels, batch: labels.count)
        guard strength.given.isFinite else {
            throw DDPMError(.invalidValue, "guidance \(strength.convention == "paper-w" ? "w" : "scale s"): expected a finite number, got \(strength.given)")
        }
        guard rescale >= 0, rescale <= 1 else { throw DDPMError(.invalidValue, "guidance rescale φ: expected a value in [0, 1], got \(rescale)") }
        guard meanChannels > 0 else { throw DDPMError(.invalidValue, "guidance: mean channels: expected a positive number, got \(meanChannels)") }
        self.model = model; self.labels = labels; self.strength = strength; self.rescale = rescale; self.meanChannels = meanChannels
        self.interval = interval
    }

    public var isTraining: Bool { get { model.isTraining } set { model.isTraining = newValue } }
    public func namedParameters() -> [(name: String, tensor: Tensor)] { model.namedParameters() }

    public func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        let n = x.shape[0]
        precondition(n == labels.count && t.count == n, "ClassifierFreeGuidedPredictor: input \(x.shape), \(t.count) timesteps, \(labels.count) labels")
        let inside = t.map { interval?.contains($0) ?? true }
        if !inside.contains(true) { return model.predictNoise(x, at: t, labels: labels) }
        let out = model.predictNoise(Tensor.concatenate([x, x], axis: 0), at: t + t,
                                     labels: labels + [Int](repeating: model.nullClass, count: n))
        let halves = out.split(into: 2, axis: 0)
        let guided = ClassifierFreeGuidance.guidedOutput(conditional: halves[0], unconditional: halves[1], strength,
                                                         rescale: rescale, meanChannels: meanChannels)
        if !inside.contains(false) { return guided }
        // Samples whose t lies outside the interval take the conditional half.
        return Tensor.concatenate((0..<n).map { (inside[$0] ? guided : halves[0]).slice(axis: 0, start: $0, length: 1) }, axis: 0)
    }
}
