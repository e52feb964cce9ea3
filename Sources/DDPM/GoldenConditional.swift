// Golden outputs of a class-conditional network with classifier-free guidance (issue 20): the conditional and
// unconditional predictions, the guided output in the convention the user gave, and one guided DDIM step.
// Hooked into GoldenFile's export and recompute; a file of an unconditional network has none of it.

import HDF5

/// The class-conditional part of a golden file. Present when `/config` has `num_classes` (K) and `/outputs`
/// has the attribute `guidance_convention`. Inputs: `/inputs/labels` (N integers in 0 ..< K, drawn after every
/// other input). Outputs, all N×C'×H×W (C' the network's output channels) or N×C×H×W:
///
///     cfg_eps_cond   = ε_θ(x_t, t, y)               cfg_eps_uncond = ε_θ(x_t, t, ∅) (= eps_pred: ∅ is row K)
///     cfg_eps_guided = ClassifierFreeGuidance.guidedOutput (mean part (1 + w) ε_c − w ε_u, rescaled by φ;
///                      a learned variance's half from the conditional output)
///     cfg_ddim_pred_x0, cfg_ddim_x_prev = one DDIM step (Song et al. eq. 12, η = 0, no clipping or thresholding)
///                      from x_t at t to t − 1 of the full chain (ᾱ_{−1} = 1) on the guided mean part
///
/// Attributes of `/outputs`: `guidance_convention` ("paper-w" or "diffusers-s", the one the user gave),
/// `guidance_w`, `guidance_s` (= 1 + w), `guidance_rescale` (φ), `guidance_ddim_rule`.
public struct GoldenConditional: Sendable, Equatable {
    public var strength: GuidanceStrength
    public var rescale: Double

    public init(strength: GuidanceStrength, rescale: Double = 0) { self.strength = strength; self.rescale = rescale }

    public static let outputNames = ["cfg_eps_cond", "cfg_eps_uncond", "cfg_eps_guided", "cfg_ddim_pred_x0", "cfg_ddim_x_prev"]
    static let ddimRule = "eta = 0, full chain t -> t - 1 (alpha_bar_prev(0) = 1), no clipping, from the guided mean part"

    /// N labels, uniform in 0 ..< K.
    static func drawLabels(classes k: Int, batch: Int, generator: inout RandomGenerator) -> [Int] {
        (0..<batch).map { _ in generator.nextInt(below: k) }
    }

    func write(labels: [Int], to w: HDF5Writer) throws {
        try w.write(labels.map(Int64.init), shape: [labels.count], to: "/inputs/labels")
        try w.setAttribute("guidance_convention", strength.convention, on: "/outputs")
        try w.setAttribute("guidance_w", strength.w, on: "/outputs")
        try w.setAttribute("guidance_s", strength.s, on: "/outputs")
        try w.setAttribute("guidance_rescale", rescale, on: "/outputs")
        try w.setAttribute("guidance_ddim_rule", Self.ddimRule, on: "/outputs")
    }

    /// The file's guidance and labels, nil when it has none; throws for a malformed or inconsistent part.
    static func read(_ file: HDF5File, config: ModelConfiguration, batch: Int) throws -> (GoldenConditional, labels: [Int])? {
        guard try file.attributeNames(of: "/outputs").contains("guidance_convention") else { return nil }
        let path = file.path
        guard let k = config.network.classes else {
            throw DDPMError(.malformedFile, "\(path): '/outputs' has guidance attributes but '/config' has no 'num_classes'")
        }
        let convention = try file.stringAttribute("guidance_convention", of: "/outputs")
        let strength: GuidanceStrength
        switch convention {
        case "paper-w": strength = .paper(w: try file.doubleAttribute("guidance_w", of: "/outputs"))
        case "diffusers-s": strength = .scale(s: try file.doubleAttribute("guidance_s", of: "/outputs"))
        default: throw DDPMError(.invalidConfiguration, "\(path) '/outputs' attribute 'guidance_convention': expected paper-w or diffusers-s, found '\(convention)'")
        }
        let phi = try file.doubleAttribute("guidance_rescale", of: "/outputs")
        guard file.exists("/inputs/labels") else { throw DDPMError(.malformedFile, "\(path): missing input '/inputs/labels'") }
        let labels = try file.readInt64s("/inputs/labels")
        guard labels.shape == [batch] else { throw DDPMError(.shapeMismatch, "\(path) '/inputs/labels': expected shape [\(batch)], found \(labels.shape)") }
        if let bad = labels.values.first(where: { $0 < 0 || $0 >= Int64(k) }) {
            throw DDPMError(.invalidValue, "\(path) '/inputs/labels': expected classes 0 ..< \(k), found \(bad)")
        }
        return (GoldenConditional(strength: strength, rescale: phi), labels.values.map { Int($0) })
    }

    /// The export hook: with `conditional`, the labels (drawn from `g` after every other input) and every
    /// output, and what to write; nil without. Throws unless the network is class-conditional.
    static func exported(_ conditional: GoldenConditional?, config: ModelConfiguration, network: UNet, inputs: GoldenFile.Inputs,
                         generator g: inout RandomGenerator) throws -> (outputs: [(String, Tensor)], write: (HDF5Writer) throws -> Void)? {
        guard let conditional else { return nil }
        guard let k = config.network.classes else {
            throw DDPMError(.invalidConfiguration, "guided golden outputs: the network is unconditional (give the number of classes)")
        }
        let labels = drawLabels(classes: k, batch: inputs.t.count, generator: &g)
        let outputs = try conditional.outputs(config: config, network: network, inputs: inputs, labels: labels, want: { _ in true })
        return (outputs, { try conditional.write(labels: labels, to: $0) })
    }

    /// The recompute hook: the outputs of this part that the file has (`present`); throws for one present
    /// without the attributes that define it.
    static func recomputed(_ file: HDF5File, config: ModelConfiguration, network: UNet, inputs: GoldenFile.Inputs,
                           present: [String]) throws -> [(String, Tensor)] {
        guard let (conditional, labels) = try read(file, config: config, batch: inputs.t.count) else {
            if let missing = present.first(where: outputNames.contains) {
                throw DDPMError(.malformedFile, "\(file.path): output '/outputs/\(missing)' without the attribute 'guidance_convention' of '/outputs' that defines it")
            }
            return []
        }
        return try conditional.outputs(config: config, network: network, inputs: inputs, labels: labels, want: { present.contains($0) })
    }

    /// The outputs named in ``outputNames`` that `want` asks for.
    func outputs(config: ModelConfiguration, network net: UNet, inputs: GoldenFile.Inputs, labels: [Int],
                 want: (String) -> Bool) throws -> [(String, Tensor)] {
        let d = try config.makeDiffusion()
        let xt = try d.qSample(start: inputs.x0, t: inputs.t, noise: inputs.noise)
        let guided = try ClassifierFreeGuidedPredictor(net, labels: labels, strength: strength, rescale: rescale, meanChannels: config.network.channels)
        let (c, u, g) = try net.withMode(training: false) { try withoutGradients {
            (net(xt, inputs.t, labels: labels), net(xt, inputs.t), guided.predictNoise(xt, at: inputs.t))
        } }
        var result: [(String, Tensor)] = []
        if want("cfg_eps_cond") { result.append(("cfg_eps_cond", c)) }
        if want("cfg_eps_uncond") { result.append(("cfg_eps_uncond", u)) }
        if want("cfg_eps_guided") { result.append(("cfg_eps_guided", g)) }
        if want("cfg_ddim_pred_x0") || want("cfg_ddim_x_prev") {
            let (x0, prev) = try GoldenFile.ddimStep(config: config, diffusion: d, noisy: xt, t: inputs.t, modelOutput: g, z: nil,
                                                     eta: 0, thresholding: .unchanged)
            if want("cfg_ddim_pred_x0") { result.append(("cfg_ddim_pred_x0", x0)) }
            if want("cfg_ddim_x_prev") { result.append(("cfg_ddim_x_prev", prev)) }
        }
        return result
    }
}
