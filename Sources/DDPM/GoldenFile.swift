// Golden files (schema `ddpm-golden`, version 1): configuration, weights, inputs and reference outputs
// that any backend can write with h5py and check against us, or read to check itself. Notes/07.

import Foundation
import HDF5

public enum GoldenFile {
    public static let format = "ddpm-golden"
    public static let version: Int64 = 1

    /// The inputs of a golden file: x0 (N,C,H,W), t (N), noise (N,C,H,W), z (N,C,H,W).
    public struct Inputs {
        public var x0: Tensor, t: [Int], noise: Tensor, z: Tensor
        public init(x0: Tensor, t: [Int], noise: Tensor, z: Tensor) { self.x0 = x0; self.t = t; self.noise = noise; self.z = z }
    }

    /// Every output name the schema defines, besides `grad/<key>` for each parameter.
    public static let outputNames = ["x_t", "eps_pred", "loss", "posterior_mean", "posterior_variance", "pred_x0", "x_prev"]

    /// Computes the requested outputs (all of them when `names` is nil) for a network with loaded weights.
    public static func outputs(config: ModelConfiguration, network net: UNet, inputs: Inputs, names: Set<String>? = nil) throws -> [(String, Tensor)] {
        let d = try config.diffusion()
        net.isTraining = false
        net.zeroGradients()
        let xt = try d.qSample(start: inputs.x0, t: inputs.t, noise: inputs.noise)
        let eps = net(xt, inputs.t)
        let loss = d.simpleLoss(predictedNoise: eps, noise: inputs.noise)
        let want = { (n: String) in names?.contains(n) ?? true }
        let wantsGradients = names?.contains { $0.hasPrefix("grad/") } ?? true
        if wantsGradients { loss.backward() }
        var out: [(String, Tensor)] = []
        if want("x_t") { out.append(("x_t", xt.detached())) }
        if want("eps_pred") { out.append(("eps_pred", eps.detached())) }
        if want("loss") { out.append(("loss", loss.detached())) }
        let post = try d.qPosteriorMeanVariance(start: inputs.x0, noisy: xt.detached(), t: inputs.t)
        if want("posterior_mean") { out.append(("posterior_mean", post.mean.detached())) }
        if want("posterior_variance") { out.append(("posterior_variance", Tensor(shape: [inputs.t.count], data: post.variance))) }
        let eps0 = eps.detached(), xt0 = xt.detached()
        if want("pred_x0") { out.append(("pred_x0", try d.predictStartFromNoise(noisy: xt0, t: inputs.t, noise: eps0))) }
        if want("x_prev") {
            out.append(("x_prev", try d.pSample(modelOutput: eps0, noisy: xt0, t: inputs.t, noise: inputs.z, clip: config.clipDenoised)))
        }
        if wantsGradients {
            for (name, p) in net.namedParameters() where want("grad/" + name) {
                out.append(("grad/" + name, Tensor(shape: p.shape, data: p.gradValues ?? [Double](repeating: 0, count: p.count))))
            }
        }
        net.zeroGradients()
        return out
    }

    /// Writes a complete golden file from our own initialised network: every output.
    public static func export(to path: String, config: ModelConfiguration, seed: UInt64, batch: Int) throws {
        guard batch > 0 else { throw DDPMError(.invalidValue, "--batch: expected a positive number, got \(batch)") }
        let net = try UNet(config.network, seed: seed)
        var g = RandomGenerator(seed: seed &+ 1)
        let c = config.network
        let shape = [batch, c.channels, c.imageSize, c.imageSize]
        let lo = config.dataRange.lowerBound, hi = config.dataRange.upperBound
        let x0 = Tensor.randomUniform(shape, in: lo...hi, generator: &g)
        // t covers both ends of the chain: 0 first, T−1 last, the rest uniform.
        var t = (0..<batch).map { _ in g.nextInt(below: config.timesteps) }
        t[0] = 0
        if batch > 1 { t[batch - 1] = config.timesteps - 1 }
        let inputs = Inputs(x0: x0, t: t, noise: Tensor.randomNormal(shape, generator: &g), z: Tensor.randomNormal(shape, generator: &g))
        let outs = try outputs(config: config, network: net, inputs: inputs)
        try HDF5Writer.write(to: path) { w in
            try w.setAttribute("format", format)
            try w.setAttribute("version", version)
            try config.write(to: w)
            try net.saveWeights(to: w)
            try w.write(inputs.x0.data, shape: shape, to: "/inputs/x0")
            try w.write(inputs.t.map(Int64.init), shape: [batch], to: "/inputs/t")
            try w.write(inputs.noise.data, shape: shape, to: "/inputs/noise")
            try w.write(inputs.z.data, shape: shape, to: "/inputs/z")
            for (name, tensor) in outs { try w.write(tensor.data, shape: tensor.shape, to: "/outputs/" + name) }
        }
    }

    /// One row of a check: the output, its shape, its errors and whether it passed.
    public struct Row: Sendable {
        public var name: String, shape: [Int], comparison: Comparison
    }

    /// Rebuilds the network from `/config` and `/weights`, recomputes every output present and compares.
    /// Throws ``DDPMError`` for a malformed file (missing group, weight or input, wrong shape, unknown output,
    /// unsupported configuration).
    public static func check(path: String, tolerance: Tolerance) throws -> [Row] {
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
    }

    /// Reads a golden file, rebuilds the network from `/config` and `/weights` and recomputes every output
    /// present. Throws ``DDPMError`` for a malformed file, as ``check(path:tolerance:)`` does.
    public static func recompute(path: String) throws -> Recomputed {
        let file = try HDF5File(path: path)
        let fmt = try file.stringAttribute("format")
        guard fmt == format else { throw DDPMError(.malformedFile, "\(path): attribute 'format' is '\(fmt)', expected '\(format)'") }
        let ver = try file.int64Attribute("version")
        guard ver == version else { throw DDPMError(.unsupportedVersion, "\(path): schema version \(ver) is not supported (expected \(version))") }
        let config = try ModelConfiguration(reading: file)
        let net = try UNet(config.network)
        try net.loadWeights(from: file)
        let c = config.network
        for g in ["/inputs", "/outputs"] where !file.exists(g) { throw DDPMError(.malformedFile, "\(path): no group '\(g)'") }
        func input(_ name: String, _ shape: [Int]) throws -> HDF5Array<Double> {
            guard file.exists("/inputs/" + name) else { throw DDPMError(.malformedFile, "\(path): missing input '/inputs/\(name)'") }
            return try file.readDoubles("/inputs/" + name, expectedShape: shape)
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
        if let unknown = present.first(where: { !outputNames.contains($0) && !keys.contains($0) }) {
            throw DDPMError(.unknownName, "\(path): unknown output '/outputs/\(unknown)' (expected one of \(outputNames.joined(separator: ", ")) or grad/<parameter key>)")
        }
        let computed = Dictionary(uniqueKeysWithValues: try outputs(config: config, network: net, inputs: inputs, names: Set(present)))
        let rows = try present.map { name in
            let actual = computed[name]!
            let stored = try file.readDoubles("/outputs/" + name)
            guard stored.shape == actual.shape else {
                throw DDPMError(.shapeMismatch, "\(path) '/outputs/\(name)': expected shape \(actual.shape), found \(stored.shape)")
            }
            return RecomputedOutput(name: name, shape: actual.shape, ours: actual.data, stored: stored.values)
        }
        return Recomputed(configuration: config, batch: n, parameterKeys: net.namedParameters().map(\.name), outputs: rows)
    }
}
