// Golden outputs of the options beyond the model configuration (schema version 3): dynamic thresholding of
// x̂_0 with its per-sample s, the zero-terminal-SNR tables, the loss-second-moment resampler's probabilities
// and importance weights. Each option is recorded as attributes of `/outputs` and adds its outputs:
//
//     threshold_percentile, threshold_max_scale (float64)  → thresholded_pred_x0 (N,C,H,W), threshold_scale (N)
//         Imagen's dynamic thresholding (Saharia et al. 2022 §2.3) of the unclipped x̂_0 (`pred_x0`) mapped to
//         [−1, 1]: s_n = clamp(quantile_p |y_n|, 1, s_max), y_n ← clamp(y_n, −s_n, s_n)/s_n, mapped back
//     zero_terminal_snr = 1 (int64)                       → zero_snr_betas (T), zero_snr_alphas_cumprod (T)
//         Lin et al. (2024) Algorithm 1 on the file's β
//     timestep_sampler = "loss-second-moment" (string)    → resampler_probabilities (T), resampler_weights (N)
//         improved-diffusion's LossSecondMomentResampler on the stored history `/inputs/loss_history` (T × 10,
//         warm): p_t ∝ √mean(L²) mixed with 0.001 uniform; weights 1/(T p_t) at `/inputs/t`

import HDF5

/// The golden-file options beyond the model configuration, and the outputs they add.
public struct GoldenExtras: Sendable, Equatable {
    /// Dynamic thresholding (percentile p, largest s); nil: none.
    public var dynamicThreshold: (percentile: Double, maxScale: Double)?
    public var zeroTerminalSNR: Bool
    public var timestepSampler: TimestepSampler

    public init(dynamicThreshold: (percentile: Double, maxScale: Double)? = nil, zeroTerminalSNR: Bool = false,
                timestepSampler: TimestepSampler = .uniform) {
        self.dynamicThreshold = dynamicThreshold; self.zeroTerminalSNR = zeroTerminalSNR; self.timestepSampler = timestepSampler
    }

    public static func == (a: GoldenExtras, b: GoldenExtras) -> Bool {
        a.dynamicThreshold?.percentile == b.dynamicThreshold?.percentile && a.dynamicThreshold?.maxScale == b.dynamicThreshold?.maxScale
            && a.zeroTerminalSNR == b.zeroTerminalSNR && a.timestepSampler == b.timestepSampler
    }

    public static let outputNames = ["thresholded_pred_x0", "threshold_scale", "zero_snr_betas", "zero_snr_alphas_cumprod",
                                     "resampler_probabilities", "resampler_weights"]
    /// The resampler's history per timestep (improved-diffusion's default).
    static let historyPerTerm = 10

    /// The outputs these options add, by name.
    public var names: [String] {
        (dynamicThreshold != nil ? ["thresholded_pred_x0", "threshold_scale"] : [])
            + (zeroTerminalSNR ? ["zero_snr_betas", "zero_snr_alphas_cumprod"] : [])
            + (timestepSampler == .lossSecondMoment ? ["resampler_probabilities", "resampler_weights"] : [])
    }

    func write(to w: HDF5Writer) throws {
        if let d = dynamicThreshold {
            try w.setAttribute("threshold_percentile", d.percentile, on: "/outputs")
            try w.setAttribute("threshold_max_scale", d.maxScale, on: "/outputs")
        }
        if zeroTerminalSNR { try w.setAttribute("zero_terminal_snr", Int64(1), on: "/outputs") }
        try w.setAttribute("timestep_sampler", timestepSampler.rawValue, on: "/outputs")
    }

    /// The options a file records (absent attributes: none of them, as in version 1 and 2 files).
    init(reading file: HDF5File) throws {
        let names = Set(try file.attributeNames(of: "/outputs"))
        dynamicThreshold = names.contains("threshold_percentile")
            ? (try file.doubleAttribute("threshold_percentile", of: "/outputs"), try file.doubleAttribute("threshold_max_scale", of: "/outputs")) : nil
        zeroTerminalSNR = names.contains("zero_terminal_snr") ? try file.int64Attribute("zero_terminal_snr", of: "/outputs") != 0 : false
        if names.contains("timestep_sampler") {
            let text = try file.stringAttribute("timestep_sampler", of: "/outputs")
            guard let s = TimestepSampler(rawValue: text) else {
                throw DDPMError(.invalidConfiguration, "\(file.path) /outputs attribute 'timestep_sampler': expected one of \(TimestepSampler.allCases.map(\.rawValue).joined(separator: ", ")), found '\(text)'")
            }
            timestepSampler = s
        } else {
            timestepSampler = .uniform
        }
        if let d = dynamicThreshold { try Thresholding.dynamic(percentile: d.percentile, maxScale: d.maxScale).validate() }
    }

    /// The outputs in `want` that these options add, from the unclipped x̂_0 and the stored inputs.
    func outputs(diffusion d: GaussianDiffusion, predictedStart x0: Tensor, t: [Int], lossHistory: [Double]?,
                 want: (String) -> Bool) throws -> [(String, Tensor)] {
        var result: [(String, Tensor)] = []
        if let th = dynamicThreshold, want("thresholded_pred_x0") || want("threshold_scale") {
            let (lo, hi) = (d.dataRange.lowerBound, d.dataRange.upperBound)
            let y = Tensor(shape: x0.shape, data: x0.data.map { (2 * $0 - (lo + hi)) / (hi - lo) })
            let (thresholded, s) = Thresholding.dynamicThreshold(y, percentile: th.percentile, maxScale: th.maxScale)
            if want("thresholded_pred_x0") {
                result.append(("thresholded_pred_x0", Tensor(shape: x0.shape, data: thresholded.data.map { ($0 * (hi - lo) + (lo + hi)) / 2 })))
            }
            if want("threshold_scale") { result.append(("threshold_scale", Tensor(shape: [s.count], data: s))) }
        }
        if zeroTerminalSNR, want("zero_snr_betas") || want("zero_snr_alphas_cumprod") {
            let tables = try DiffusionTables(betas: TerminalSNR.rescaledBetas(d.tables.betas))
            if want("zero_snr_betas") { result.append(("zero_snr_betas", Tensor(shape: [tables.betas.count], data: tables.betas))) }
            if want("zero_snr_alphas_cumprod") {
                result.append(("zero_snr_alphas_cumprod", Tensor(shape: [tables.alphasCumprod.count], data: tables.alphasCumprod)))
            }
        }
        if timestepSampler == .lossSecondMoment, want("resampler_probabilities") || want("resampler_weights") {
            guard let lossHistory else { throw DDPMError(.malformedFile, "timestep sampler loss-second-moment: missing input '/inputs/loss_history'") }
            let T = d.timesteps
            let r = try LossSecondMomentResampler(timesteps: T, historyPerTerm: Self.historyPerTerm, lossHistory: lossHistory,
                                                  lossCounts: [Int](repeating: Self.historyPerTerm, count: T))
            if want("resampler_probabilities") { result.append(("resampler_probabilities", Tensor(shape: [T], data: r.probabilities()))) }
            if want("resampler_weights") { result.append(("resampler_weights", Tensor(shape: [t.count], data: r.importanceWeights(t)))) }
        }
        return result
    }
}
