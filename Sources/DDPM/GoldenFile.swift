// Golden files (schema `ddpm-golden`, version 2): configuration, weights, inputs and reference outputs
// that any backend can write with h5py and check against us, or read to check itself (Notes/09).
// Version 2 adds the diffusion's mean, variance and loss types and the schedule's own parameters to
// `/config`; version-1 files still read and check (they were all ε-prediction, fixed small, L_simple).

import Foundation
import HDF5

public enum GoldenFile {
    public static let format = FileFormat.golden.name
    /// The version this library writes.
    public static let version = FileFormat.golden.version
    /// The versions this library reads and checks.
    public static let supportedVersions = FileFormat.golden.readableVersions

    /// The inputs of a golden file: x0 (N,C,H,W), t (N), noise (N,C,H,W), z (N,C,H,W).
    public struct Inputs {
        public var x0: Tensor, t: [Int], noise: Tensor, z: Tensor
        public init(x0: Tensor, t: [Int], noise: Tensor, z: Tensor) { self.x0 = x0; self.t = t; self.noise = noise; self.z = z }
    }

    /// `/config` attribute `x0_values` of a file whose x_0 lie on the data's grid.
    public static let x0GridDescription = "grid: data_min + (data_max - data_min) * k / 255, k = 0 ... 255"
    /// `/config` attribute `decoder_edge_rule`: which x_0 the discretised decoder (Ho et al. eq. 13) puts in
    /// its open edge bins. On the grid it selects exactly k = 0 and k = 255, as Ho's x < −0.999 / x > 0.999 on [−1, 1].
    public static let decoderEdgeRule = "x < data_min + (data_max - data_min)/510: open lower bin (-inf, x + half bin]; "
        + "x > data_max - (data_max - data_min)/510: open upper bin [x - half bin, +inf); half bin = (data_max - data_min)/510"

    /// Every output name a default export writes, besides `grad/<key>` for each parameter (the options of
    /// ``GoldenExtras`` add ``GoldenExtras/outputNames``).
    public static let outputNames = ["x_t", "eps_pred", "loss", "posterior_mean", "posterior_variance", "pred_x0", "x_prev",
                                     "target", "model_variance", "model_log_variance", "mse", "loss_weight", "vb", "loss_terms"] + samplerOutputNames

    /// Computes the requested outputs (all of them when `names` is nil) for a network with loaded weights.
    /// The network is run in evaluation mode and its mode and accumulated gradients are restored afterwards.
    ///
    ///     x_t = qSample(x_0, t, ε)                 eps_pred = network output on (x_t, t)
    ///     loss = mean of trainingLosses(…).total   posterior_mean/variance = q(x_{t−1} | x_t, x_0)
    ///     pred_x0 = x̂_0 implied by the output (not clipped)
    ///     x_prev = pSample(output, x_t, t, z) with the configuration's clipping
    ///     grad/<key> = ∂loss/∂parameter
    ///     target = the regression target of the mean type (ε, x_0, μ̃_t or v)      (N,C,H,W)
    ///     model_variance, model_log_variance = σ², log σ² of p_θ: (N) fixed, (N,C,H,W) learned
    ///     mse = per-sample regression term (N);  loss_weight = its weight (min-SNR-γ, or 1) (N)
    ///     vb = per-sample L_t in bits/dim, x̂_0 not clipped (N; defined for every loss type — the hybrid
    ///          loss adds (T/1000)·vb, rescaled-kl uses T·vb);  loss_terms = per-sample totals (N), `loss` their mean
    ///
    /// `eps_pred` is the raw network output: N×2C×H×W (mean part first) for a learned variance.
    public static func outputs(config: ModelConfiguration, network net: UNet, inputs: Inputs, names: Set<String>? = nil) throws -> [(String, Tensor)] {
        let d = try config.makeDiffusion()
        return try net.withMode(training: false) { try net.preservingGradients {
            net.zeroGradients()
            let xt = try d.qSample(start: inputs.x0, t: inputs.t, noise: inputs.noise)
            let out = net(xt, inputs.t)
            let terms = try d.trainingLosses(modelOutput: out, start: inputs.x0, noisy: xt, t: inputs.t, noise: inputs.noise)
            let loss = terms.total.mean()
            let want = { (n: String) in names?.contains(n) ?? true }
            let wantsGradients = names?.contains { $0.hasPrefix("grad/") } ?? true
            if wantsGradients { loss.backward() }
            var result: [(String, Tensor)] = []
            if want("x_t") { result.append(("x_t", xt.detached())) }
            if want("eps_pred") { result.append(("eps_pred", out.detached())) }
            if want("loss") { result.append(("loss", loss.detached())) }
            let out0 = out.detached(), xt0 = xt.detached()
            let post = try d.qPosteriorMeanVariance(start: inputs.x0, noisy: xt0, t: inputs.t)
            if want("posterior_mean") { result.append(("posterior_mean", post.mean)) }
            if want("posterior_variance") { result.append(("posterior_variance", post.variance.reshaped([inputs.t.count]))) }
            if want("pred_x0") {
                result.append(("pred_x0", try d.pMeanVariance(modelOutput: out0, noisy: xt0, t: inputs.t, clip: false).predictedStart))
            }
            if want("x_prev") {
                result.append(("x_prev", try d.pSample(modelOutput: out0, noisy: xt0, t: inputs.t, noise: inputs.z, clip: config.diffusion.clipDenoised).sample))
            }
            if want("target") { result.append(("target", try d.regressionTarget(start: inputs.x0, noisy: xt0, t: inputs.t, noise: inputs.noise))) }
            if want("model_variance") || want("model_log_variance") {
                let p = try d.pMeanVariance(modelOutput: out0, noisy: xt0, t: inputs.t, clip: false)
                let perElement = config.diffusion.varianceType.isLearned
                let shaped = { (x: Tensor) in perElement ? x.detached() : x.detached().reshaped([inputs.t.count]) }
                if want("model_variance") { result.append(("model_variance", shaped(p.variance))) }
                if want("model_log_variance") { result.append(("model_log_variance", shaped(p.logVariance))) }
            }
            if want("mse") { result.append(("mse", terms.regression.detached())) }
            if want("loss_weight") { result.append(("loss_weight", Tensor(shape: [inputs.t.count], data: try d.regressionWeights(inputs.t)))) }
            if want("vb") {
                let vb = try terms.bound ?? d.variationalBoundTerms(modelOutput: out0, start: inputs.x0, noisy: xt0, t: inputs.t, clip: false).terms
                result.append(("vb", vb.detached()))
            }
            if want("loss_terms") { result.append(("loss_terms", terms.total.detached())) }
            result += try samplerOutputs(config: config, diffusion: d, noisy: xt0, t: inputs.t, modelOutput: out0, z: inputs.z, want: want)
            if wantsGradients {
                for (name, p) in net.namedParameters() where want("grad/" + name) {
                    result.append(("grad/" + name, Tensor(shape: p.shape, data: p.gradValues ?? [Double](repeating: 0, count: p.count))))
                }
            }
            return result
        } }
    }

    /// Writes a complete golden file from our own initialised network: every output, and with `activations`
    /// every module's output and output gradient (`/activations`, `/activation_gradients`; GoldenActivations.swift).
    ///
    /// x_0 lies on the data's 256-level grid, `lo + (hi − lo)·k/255` with k uniform in 0 … 255 (`x0OnGrid`,
    /// the default since version 3), so that every port's decoder term at t = 0 puts the same pixels in the
    /// open edge bins whichever edge rule it follows; `/config` records the grid and our edge rule
    /// (``decoderEdgeRule``). With `x0OnGrid: false`, x_0 is uniform on the data range (version 2's inputs).
    ///
    /// `extras` adds the outputs of dynamic thresholding, zero terminal SNR and the loss-second-moment
    /// resampler (GoldenExtras.swift); the resampler's stored history is drawn after every other input.
    /// `trajectories` adds `/trajectories` and `/sigma_tables` (``GoldenTrajectories``). `samplerOptions` records a DDIM
    /// chain's spacing, N, η and ε rule and adds `sampler_ddim_x_prev` and the trajectory `ddim_options`
    /// (GoldenSamplerOptions.swift), its x_T and noise drawn after every other trajectory's. `classifierClasses` K adds a
    /// noisy classifier with its log-probabilities and input gradients (``GoldenClassifier``).
    public static func export(to path: String, config: ModelConfiguration, seed: UInt64, batch: Int, activations: Bool = false,
                              x0OnGrid: Bool = true, extras: GoldenExtras = GoldenExtras(), trajectories: Bool = false,
                              samplerOptions: GoldenSamplerOptions? = nil, conditional: GoldenConditional? = nil, classifierClasses: Int? = nil) throws {
        guard batch > 0 else { throw DDPMError(.invalidValue, "batch size: expected a positive number, got \(batch)") }
        try samplerOptions?.validate(for: config)
        // The inputs, outputs and the activations kept for the gradients: a few dozen arrays of the input's size.
        let n = config.network
        try MemoryBudget.check(bytes: MemoryBudget.bytes(ofDoubles: [batch, n.channels, n.imageSize, n.imageSize], copies: 40), for: "a golden file of batch \(batch)")
        let net = try UNet(config.network, seed: seed)
        var g = RandomGenerator(seed: seed &+ 1)
        let c = config.network
        let shape = [batch, c.channels, c.imageSize, c.imageSize]
        let lo = config.diffusion.dataRange.lowerBound, hi = config.diffusion.dataRange.upperBound
        let x0 = x0OnGrid
            ? Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in lo + (hi - lo) * Double(g.nextInt(below: 256)) / 255 })
            : Tensor.randomUniform(shape, in: lo...hi, generator: &g)
        // t covers both ends of the chain: 0 first, T−1 last, the rest uniform.
        var t = (0..<batch).map { _ in g.nextInt(below: config.timesteps) }
        t[0] = 0
        if batch > 1 { t[batch - 1] = config.timesteps - 1 }
        let inputs = Inputs(x0: x0, t: t, noise: Tensor.randomNormal(shape, generator: &g), z: Tensor.randomNormal(shape, generator: &g))
        var outs: [(String, Tensor)], recorded: [Activation]
        if activations {
            (outs, recorded) = try outputsWithActivations(config: config, network: net, inputs: inputs)
        } else {
            (outs, recorded) = (try outputs(config: config, network: net, inputs: inputs), [])
        }
        let lossHistory = extras.timestepSampler == .lossSecondMoment
            ? (0..<(config.timesteps * GoldenExtras.historyPerTerm)).map { _ in 0.25 + g.nextUniform() } : nil
        outs += try extras.outputs(diffusion: config.makeDiffusion(), predictedStart: outs.first { $0.0 == "pred_x0" }!.1, t: t,
                                   lossHistory: lossHistory, want: { _ in true })
        if let o = samplerOptions {
            let byName = Dictionary(outs, uniquingKeysWith: { a, _ in a })
            outs.append((GoldenSamplerOptions.outputName, try o.output(config: config, diffusion: config.makeDiffusion(), noisy: byName["x_t"]!, t: t,
                                                                      modelOutput: byName["eps_pred"]!, z: inputs.z)))
        }
        // A class-conditional network's guided outputs (GoldenConditional.swift), its labels drawn next.
        let conditionalPart = try GoldenConditional.exported(conditional, config: config, network: net, inputs: inputs, generator: &g)
        outs += conditionalPart?.outputs ?? []
        let classifier = try classifierClasses.map { try GoldenClassifier(config: config, classes: $0, seed: seed, batch: batch) }
        outs += classifier?.outputs(noisy: outs.first { $0.0 == "x_t" }!.1, t: t, want: { _ in true }) ?? []
        try HDF5Writer.write(to: path) { w in
            try FileFormat.golden.stamp(w)
            try config.write(to: w)
            try w.setAttribute("x0_values", x0OnGrid ? x0GridDescription : "continuous: uniform on [data_min, data_max]", on: "/config")
            try w.setAttribute("decoder_edge_rule", decoderEdgeRule, on: "/config")
            try net.saveWeights(to: w)
            try w.write(inputs.x0.data, shape: shape, to: "/inputs/x0")
            try w.write(inputs.t.map(Int64.init), shape: [batch], to: "/inputs/t")
            try w.write(inputs.noise.data, shape: shape, to: "/inputs/noise")
            try w.write(inputs.z.data, shape: shape, to: "/inputs/z")
            if let lossHistory { try w.write(lossHistory, shape: [config.timesteps, GoldenExtras.historyPerTerm], to: "/inputs/loss_history") }
            for (name, tensor) in outs { try w.write(tensor.data, shape: tensor.shape, to: "/outputs/" + name) }
            for (name, value) in samplerConventions(timesteps: config.timesteps, clip: config.diffusion.clipDenoised) {
                try w.setAttribute(name, value, on: "/outputs")
            }
            try writeActivations(recorded, to: w)
            try extras.write(to: w)
            try samplerOptions?.write(to: w, timesteps: config.timesteps)
            try conditionalPart?.write(w)
            try classifier?.write(to: w)
            // With `trajectories`: whole sampling chains and σ tables (GoldenTrajectories.swift), their x_T and
            // noises drawn after every other input; the sampler options' chain after them.
            let chains = (trajectories ? GoldenTrajectories.specs(for: config) : []) + GoldenTrajectories.specs(options: samplerOptions, config: config)
            if !chains.isEmpty {
                try GoldenTrajectories.write(to: w, config: config, network: net, batch: batch, specs: chains, sigmaTables: trajectories, generator: &g)
            }
        }
    }

    /// One row of a check: the output, its shape, its errors and whether it passed.
    public struct Row: Sendable {
        public var name: String, shape: [Int], comparison: Comparison
    }

    /// Rebuilds the network from `/config` and `/weights`, recomputes every output present and compares.
    /// Throws `DDPMError` for a malformed file (missing group, weight or input, wrong shape, unknown output,
    /// unsupported configuration).
    public static func check(path: String, tolerance: Tolerance) throws -> [Row] {
        guard tolerance.rtol.isFinite, tolerance.atol.isFinite else {
            throw DDPMError(.invalidValue, "tolerance \(tolerance): expected finite values (an infinite tolerance passes any file)")
        }
        let r = try recompute(path: path)
        return r.outputs.map { o in
            Row(name: o.name, shape: o.shape, comparison: Comparison(o.name, actual: o.ours, expected: o.stored, tolerance: tolerance))
        }
    }

    /// One output of a golden file: its values in the file and our float64 recomputation, same shape.
    public struct RecomputedOutput: Sendable {
        public var name: String, shape: [Int], ours: [Double], stored: [Double]
    }

    /// A golden file read and recomputed: the configuration, the batch size N, the parameter keys in
    /// state-dict order, and every output present in file order.
    public struct Recomputed: Sendable {
        public var configuration: ModelConfiguration, batch: Int, parameterKeys: [String], outputs: [RecomputedOutput]
        /// Version 3: the file's per-module activations and ours (nil when the file has none).
        public var activations: RecomputedActivations? = nil
    }

    /// A file's stored activations beside our recomputation of them.
    public struct RecomputedActivations: Sendable {
        public var ours: [Activation]
        public var stored: [(name: String, kind: String, values: HDF5Array<Double>)]
        public var storedGradients: [String: HDF5Array<Double>]
    }

    /// Opens a golden file, checks its format and version, and rebuilds its network from `/config` and `/weights`
    /// (shared by the output check and the trajectory check).
    static func openModel(path: String) throws -> (HDF5File, ModelConfiguration, UNet) {
        let file = try HDF5File(path: path)
        try FileFormat.golden.check(file)
        let config = try ModelConfiguration(reading: file)
        let net = try UNet(config.network)
        try net.loadWeights(from: file)
        return (file, config, net)
    }

    /// Reads a golden file, rebuilds the network from `/config` and `/weights` and recomputes every output
    /// present. Throws `DDPMError` for a malformed file, as ``check(path:tolerance:)`` does.
    public static func recompute(path: String) throws -> Recomputed {
        let (file, config, net) = try GoldenFile.openModel(path: path)
        let c = config.network
        for g in ["/inputs", "/outputs"] where !file.exists(g) { throw DDPMError(.malformedFile, "\(path): no group '\(g)'") }
        func input(_ name: String, _ shape: [Int]) throws -> HDF5Array<Double> {
            guard file.exists("/inputs/" + name) else { throw DDPMError(.malformedFile, "\(path): missing input '/inputs/\(name)'") }
            return try file.readFloatingPoint("/inputs/" + name, expectedShape: shape)
        }
        guard file.exists("/inputs/t") else { throw DDPMError(.malformedFile, "\(path): missing input '/inputs/t'") }
        let tArray = try file.readInt64s("/inputs/t")
        guard tArray.shape.count == 1, tArray.shape[0] > 0 else { throw DDPMError(.shapeMismatch, "\(path) '/inputs/t': expected shape [N] with N ≥ 1, found \(tArray.shape)") }
        let n = tArray.shape[0]
        let shape = [n, c.channels, c.imageSize, c.imageSize]
        let t = tArray.values.map { Int($0) }
        if let bad = t.first(where: { $0 < 0 || $0 >= config.timesteps }) {
            throw DDPMError(.invalidValue, "\(path) '/inputs/t': timestep \(bad) outside [0, \(config.timesteps))")
        }
        let x0 = try input("x0", shape), noise = try input("noise", shape), z = try input("z", shape)
        let inputs = Inputs(x0: Tensor(shape: shape, data: x0.values), t: t, noise: Tensor(shape: shape, data: noise.values), z: Tensor(shape: shape, data: z.values))
        // Which outputs are present (grad/<key> live in a subgroup).
        var present: [String] = []
        for m in try file.members(ofGroup: "/outputs") {
            if m == "grad" { present += try file.members(ofGroup: "/outputs/grad").map { "grad/" + $0 } } else { present.append(m) }
        }
        let keys = Set(net.namedParameters().map { "grad/" + $0.name })
        let samplerOptions = try GoldenSamplerOptions.read(file)
        let known = outputNames + GoldenExtras.outputNames + GoldenConditional.outputNames + GoldenClassifier.outputNames + [GoldenSamplerOptions.outputName]
        if let unknown = present.first(where: { !known.contains($0) && !keys.contains($0) }) {
            throw DDPMError(.unknownName, "\(path): unknown output '/outputs/\(unknown)' (expected one of \(known.joined(separator: ", ")) or grad/<parameter key>)")
        }
        let storedActivations = try readActivations(file)
        let extras = try GoldenExtras(reading: file)
        if samplerOptions == nil, present.contains(GoldenSamplerOptions.outputName) {
            throw DDPMError(.malformedFile, "\(path): output '/outputs/\(GoldenSamplerOptions.outputName)' without the sampler options that define it in the attributes of '/outputs'")
        }
        let classifier = try GoldenClassifier(reading: file, config: config, batch: n)
        if classifier == nil, let orphan = present.first(where: GoldenClassifier.outputNames.contains) {
            throw DDPMError(.malformedFile, "\(path): output '/outputs/\(orphan)' without the classifier that defines it ('/classifier')")
        }
        // The extras start from the unclipped x̂_0, the classifier from x_t, the sampler options' step from x_t and the network output.
        let asked = Set(present).union(["pred_x0", "x_t"]).union(samplerOptions == nil ? [] : ["eps_pred"])
        var computedList: [(String, Tensor)]
        var recomputedActivations: RecomputedActivations? = nil
        if let storedActivations {
            let (o, a) = try outputsWithActivations(config: config, network: net, inputs: inputs, names: asked)
            computedList = o
            recomputedActivations = RecomputedActivations(ours: a, stored: storedActivations.outputs, storedGradients: storedActivations.gradients)
        } else {
            computedList = try outputs(config: config, network: net, inputs: inputs, names: asked)
        }
        let history = file.exists("/inputs/loss_history")
            ? try file.readDoubles("/inputs/loss_history", expectedShape: [config.timesteps, GoldenExtras.historyPerTerm]).values : nil
        let extraNames = Set(extras.names)
        if let missing = present.first(where: { GoldenExtras.outputNames.contains($0) && !extraNames.contains($0) }) {
            throw DDPMError(.malformedFile, "\(path): output '/outputs/\(missing)' without the option that defines it in the attributes of '/outputs'")
        }
        computedList += try extras.outputs(diffusion: config.makeDiffusion(), predictedStart: computedList.first { $0.0 == "pred_x0" }!.1, t: t,
                                           lossHistory: history, want: { present.contains($0) })
        if let o = samplerOptions, present.contains(GoldenSamplerOptions.outputName) {
            let byName = Dictionary(computedList, uniquingKeysWith: { a, _ in a })
            computedList.append((GoldenSamplerOptions.outputName, try o.output(config: config, diffusion: config.makeDiffusion(), noisy: byName["x_t"]!,
                                                                              t: t, modelOutput: byName["eps_pred"]!, z: inputs.z)))
        }
        computedList += try GoldenConditional.recomputed(file, config: config, network: net, inputs: inputs, present: present)
        computedList += classifier?.outputs(noisy: computedList.first { $0.0 == "x_t" }!.1, t: t, want: { present.contains($0) }) ?? []
        let computed = Dictionary(uniqueKeysWithValues: computedList)
        let rows = try present.map { name in
            let actual = computed[name]!
            let stored = try file.readDoubles("/outputs/" + name)
            guard stored.shape == actual.shape else {
                throw DDPMError(.shapeMismatch, "\(path) '/outputs/\(name)': expected shape \(actual.shape), found \(stored.shape)")
            }
            return RecomputedOutput(name: name, shape: actual.shape, ours: actual.data, stored: stored.values)
        }
        return Recomputed(configuration: config, batch: n, parameterKeys: net.namedParameters().map(\.name), outputs: rows,
                          activations: recomputedActivations)
    }
}
