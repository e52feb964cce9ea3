// Golden-file outputs of the samplers (schema ddpm-golden version 2): the respaced tables of one fixed
// respacing and one DDIM step (η = 0 and η = 0.5 with the stored z) on the full chain. The conventions are
// fixed and recorded as attributes of `/outputs`, so any backend can reproduce them:
//
//     respacing:   improved-diffusion `space_timesteps(T, "ddim10")` (sections "10" when no stride fits;
//                  all T steps when T < 10); β'_i = 1 − ᾱ_{s_i}/ᾱ_{s_{i−1}} and every table recomputed from β'
//     ddim step:   full chain, target t − 1 (ᾱ_prev = 1 at t = 0), x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t clipped to the
//                  data range when the configuration clips, ε re-derived from the clipped x̂_0 (improved-diffusion),
//                  x_{t−1} = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε + σ z with σ from DDIM eq. 16

import HDF5

extension GoldenFile {
    /// The sampler outputs (all float64; `respaced_timestep_map` holds integers). The three `ddim_*` outputs are
    /// absent for x_{t−1}-prediction.
    public static let samplerOutputNames = [
        "respaced_timestep_map", "respaced_betas", "respaced_alphas_cumprod", "respaced_alphas_cumprod_prev",
        "respaced_posterior_variance", "respaced_posterior_log_variance_clipped", "respaced_posterior_mean_coef1",
        "respaced_posterior_mean_coef2", "ddim_pred_x0", "ddim_x_prev_eta0", "ddim_x_prev_eta0.5",
    ]

    /// The respacing rule of the golden outputs for T steps.
    public static func goldenRespacing(timesteps T: Int) -> String {
        if T < 10 { return "ddim\(T)" }
        return (try? Respacing.improvedDiffusionTimesteps(timesteps: T, sectionCounts: "ddim10")) != nil ? "ddim10" : "10"
    }

    /// The conventions, as written to `/outputs` attributes.
    public static func samplerConventions(timesteps T: Int, clip: Bool) -> [(String, String)] {
        [("respacing", "improved-diffusion space_timesteps(T, \"\(goldenRespacing(timesteps: T))\")"),
         ("ddim_chain", "full chain, target t-1, alphas_cumprod_prev(0) = 1"),
         ("ddim_x0", clip ? "x0 = (x_t - sqrt(1-abar) eps)/sqrt(abar), clipped to the data range" : "x0 = (x_t - sqrt(1-abar) eps)/sqrt(abar), not clipped"),
         ("ddim_eps", "re-derived from the processed x0 (improved-diffusion)"),
         ("ddim_sigma", "eta sqrt((1-abar_prev)/(1-abar)) sqrt(1-abar/abar_prev) (DDIM eq. 16), z = /inputs/z")]
    }

    /// The requested sampler outputs for the network output at x_t, t (its mean half when the variance is learned).
    static func samplerOutputs(config: ModelConfiguration, diffusion d: GaussianDiffusion, noisy xt: Tensor, t: [Int], modelOutput out: Tensor,
                               z: Tensor, want: (String) -> Bool) throws -> [(String, Tensor)] {
        var result: [(String, Tensor)] = []
        if samplerOutputNames.dropLast(3).contains(where: want) {
            let s = try SpacedDiffusion(base: d, spacing: .improvedDiffusion(goldenRespacing(timesteps: d.timesteps)), steps: 0)
            let tb = s.spaced.tables
            for (name, values) in [("respaced_timestep_map", s.timestepMap.map(Double.init)), ("respaced_betas", tb.betas),
                                   ("respaced_alphas_cumprod", tb.alphasCumprod), ("respaced_alphas_cumprod_prev", tb.alphasCumprodPrev),
                                   ("respaced_posterior_variance", tb.posteriorVariance),
                                   ("respaced_posterior_log_variance_clipped", tb.posteriorLogVarianceClipped),
                                   ("respaced_posterior_mean_coef1", tb.posteriorMeanCoef1), ("respaced_posterior_mean_coef2", tb.posteriorMeanCoef2)]
            where want(name) {
                result.append((name, Tensor(shape: [values.count], data: values)))
            }
        }
        // DDIM needs x̂_0 and ε̂ at t: not defined for x_{t−1}-prediction, whose files carry no DDIM outputs.
        if d.meanType != .previousX, samplerOutputNames.suffix(3).contains(where: want) {
            if want("ddim_pred_x0") { result.append(("ddim_pred_x0", try ddimStep(config: config, diffusion: d, noisy: xt, t: t, modelOutput: out, z: z, eta: 0).predictedStart)) }
            for (name, eta) in [("ddim_x_prev_eta0", 0.0), ("ddim_x_prev_eta0.5", 0.5)] where want(name) {
                result.append((name, try ddimStep(config: config, diffusion: d, noisy: xt, t: t, modelOutput: out, z: z, eta: eta).previous))
            }
        }
        return result
    }

    /// One DDIM step on the full chain from x_t at t to t − 1 (the golden outputs' convention): x̂_0 clipped to the data
    /// range when the configuration clips, ε by `rederivation`, x_{t−1} = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε + σ z
    /// (DDIM eq. 12) with σ from eq. 16 and `eta`, ᾱ_prev(0) = 1. `thresholding` overrides the configuration's
    /// clipping (the guided step of ``GoldenConditional`` uses `.unchanged`); z may be nil when η = 0.
    static func ddimStep(config: ModelConfiguration, diffusion d: GaussianDiffusion, noisy xt: Tensor, t: [Int], modelOutput out: Tensor, z: Tensor?,
                         eta: Double, rederivation: NoiseRederivation = .rederive,
                         thresholding: Thresholding? = nil) throws -> (predictedStart: Tensor, previous: Tensor) {
        let at = t.map { d.tables.alphasCumprod[$0] }, ap = t.map { d.tables.alphasCumprodPrev[$0] }
        let (x0, eps) = try DDIM.startAndNoise(modelOutput: out, noisy: xt, alphaBar: at, meanType: d.meanType,
                                               thresholding: thresholding ?? (config.diffusion.clipDenoised ? .clip : .unchanged), range: d.dataRange, rederivation: rederivation)
        let sigma = zip(at, ap).map { DDIM.sigma(alphaBar: $0, alphaBarPrev: $1, eta: eta) }
        return (x0, DDIM.step(predictedStart: x0, noise: eps, alphaBarPrev: ap, sigma: sigma, z: z))
    }
}
