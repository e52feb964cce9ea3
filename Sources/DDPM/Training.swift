// Training: Adam, gradient-norm clipping, an exponential moving average of the weights, and
// checkpoints that make resuming exact (bit-identical to an uninterrupted run).

import Foundation
import Kernels
import HDF5

/// Settings of a training run.
public struct TrainingOptions: Sendable, Equatable {
    public var learningRate = 2e-4
    public var beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8
    /// Gradients are rescaled so that their global L2 norm is at most this (PyTorch's `clip_grad_norm_`).
    public var gradientClipNorm = 1.0
    /// d, the decay of the exponential moving average of the weights: the most it reaches (see ``emaWarmup``).
    public var emaDecay = 0.9999
    /// How the EMA's decay grows over its first updates; ``EMAWarmup/numUpdates`` unless set.
    public var emaWarmup = EMAWarmup.numUpdates
    public var batchSize = 32
    /// How timesteps are drawn: uniform (Ho et al.) or importance-sampled by `LossSecondMomentResampler`.
    public var timestepSampler = TimestepSampler.uniform
    /// p of label dropout (classifier-free guidance training, Ho & Salimans 2022 §3.2, their p_uncond):
    /// for a class-conditional network each sample's label is replaced by the null class K with
    /// probability p. Read only when the network has classes; 0.1 unless set (the paper's 0.1 to 0.2).
    public var labelDropout = 0.1
    public init() {}
}

/// How the decay of the weights' exponential moving average grows over its first updates.
///
/// With a constant d = 0.9999 (Ho et al.'s `ema_decay`) the average keeps a weight dⁿ of the random
/// initial weights after n updates: 0.97 after 300 steps, 0.37 after 10,000. Sampling a short run's
/// average then gives noise. The warm-up lets the average forget its start in a few steps.
public enum EMAWarmup: String, Sendable, CaseIterable {
    /// A constant decay, d at every update: Ho et al.'s code, and every checkpoint written before the
    /// warm-up existed (they have no `ema_warmup` attribute).
    case none
    /// The decay of the update that follows n earlier ones is
    ///
    ///     d_n = min(d, (1 + n) / (10 + n))        (n = 0 at the first update: d_0 = min(d, 0.1))
    ///
    /// TensorFlow's `tf.train.ExponentialMovingAverage(decay, num_updates=n)`. After n updates the
    /// initial weights keep the weight ∏_{k<n} d_k ≤ 9!·n!/(n + 9)! (0.0045 after 3 updates).
    case numUpdates = "num-updates"

    /// The decay used by the update that follows `n` earlier ones, for the maximum decay `d`.
    public func decay(_ d: Double, afterUpdates n: Int) -> Double {
        switch self {
        case .none: return d
        case .numUpdates: return Swift.min(d, Double(1 + n) / Double(10 + n))
        }
    }
}

extension TrainingOptions {
    /// The optimiser's settings a checkpoint's `/training` attributes record (learning rate, Adam's β₁, β₂, ε,
    /// the clipping norm, the batch size), the others at their defaults; validated by the caller.
    init(optimiserOf file: HDF5File) throws {
        self.init()
        learningRate = try file.doubleAttribute("learning_rate", of: "/training")
        beta1 = try file.doubleAttribute("beta1", of: "/training"); beta2 = try file.doubleAttribute("beta2", of: "/training")
        epsilon = try file.doubleAttribute("epsilon", of: "/training")
        gradientClipNorm = try file.doubleAttribute("gradient_clip_norm", of: "/training")
        batchSize = Int(try file.int64Attribute("batch_size", of: "/training"))
    }
}

/// Adam (Kingma & Ba 2015) with bias correction:
///
///     m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
///     θ ← θ − lr · (m / (1 − β₁ˢ)) / (√(v / (1 − β₂ˢ)) + ε)        (s = step, from 1)
public final class Adam {
    public var m: [[Double]], v: [[Double]]
    public var step = 0
    public let options: TrainingOptions
    public init(shapes: [Int], options: TrainingOptions) {
        m = shapes.map { [Double](repeating: 0, count: $0) }; v = m; self.options = options
    }

    /// Applies one update to `parameters` from their accumulated gradients (absent gradients count as 0).
    public func update(_ parameters: [Tensor]) {
        step += 1
        let (b1, b2, lr, eps) = (options.beta1, options.beta2, options.learningRate, options.epsilon)
        let c1 = 1 - Foundation.pow(b1, Double(step)), c2 = 1 - Foundation.pow(b2, Double(step))
        for (k, p) in parameters.enumerated() {
            guard let g = p.gradValues else { continue }
            // Through buffer pointers: indexing m[k][i] on the class's arrays costs an exclusivity
            // and uniqueness check per element (40 ms per step of the demo's 535,265 parameters).
            m[k].withUnsafeMutableBufferPointer { m in v[k].withUnsafeMutableBufferPointer { v in g.withUnsafeBufferPointer { g in
                p.withMutableValues { values in values.withUnsafeMutableBufferPointer { theta in
                    precondition(m.count == theta.count && g.count == theta.count, "Adam: parameter \(k) has \(theta.count) values, \(m.count) moments and \(g.count) gradients")
                    let n = theta.count
                    let (m, v, g, theta) = (m.baseAddress!, v.baseAddress!, g.baseAddress!, theta.baseAddress!)
                    Parallel.chunks(n, work: 8 * n) { r in  // elements are independent
                        for i in r {
                            m[i] = b1 * m[i] + (1 - b1) * g[i]
                            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                            theta[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                        }
                    }
                } }
            } } }
        }
    }
}

/// Scales every gradient by `maxNorm / (‖g‖₂ + 1e-6)` when the global norm ‖g‖₂ exceeds `maxNorm`.
/// Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Double) -> Double {
    let norm = parameters.reduce(0.0) { acc, p in acc + (p.gradValues ?? []).reduce(0) { $0 + $1 * $1 } }.squareRoot()
    let scale = maxNorm / (norm + 1e-6)
    if scale < 1 {
        for p in parameters where p.gradValues != nil { p.scaleGradient(by: scale) }
    }
    return norm
}

/// One point of a loss curve: the loss at a step (a training batch's loss, or the held-out loss).
public struct LossRecord: Sendable, Equatable {
    public var step: Int, loss: Double
    public init(step: Int, loss: Double) { self.step = step; self.loss = loss }
}

/// A DDPM being trained: the model, its optimiser, its averaged weights and its random state.
public final class Trainer {
    public let config: ModelConfiguration
    public let options: TrainingOptions
    public let ddpm: DDPM
    public let network: UNet
    public let optimizer: Adam
    /// The exponential moving average of the weights, in `UNet/namedParameters()` order.
    public var ema: [[Double]]
    /// The EMA's age: how many updates it has had (one per step since it started from the initial
    /// weights). Checkpoints record it as `/training` attribute `ema_updates`.
    public var emaUpdates = 0
    /// The decay the EMA's next update will use (``EMAWarmup/decay(_:afterUpdates:)`` at its age).
    public var emaNextDecay: Double { options.emaWarmup.decay(options.emaDecay, afterUpdates: emaUpdates) }
    public var step: Int { optimizer.step }
    /// The loss-second-moment resampler's state (nil with uniform timesteps); saved in checkpoints.
    public var resampler: LossSecondMomentResampler?
    /// The loss of every step this trainer ran, and of the runs it was resumed from (their checkpoints carry
    /// it as `/training/loss_history/{step,loss}`; a checkpoint written before the history existed starts it
    /// at its step). Steps increase; the curve `ddpm train` draws. It plays no part in training.
    public var lossHistory: [LossRecord] = []
    /// The held-out losses recorded by ``recordHeldOutLoss(_:seed:batchSize:)`` (`/training/held_out_history`).
    public var heldOutHistory: [LossRecord] = []

    public init(config: ModelConfiguration, options: TrainingOptions, seed: UInt64) throws {
        guard options.batchSize > 0 else { throw DDPMError(.invalidValue, "batch size: expected a positive number, got \(options.batchSize)") }
        guard options.learningRate > 0 else { throw DDPMError(.invalidValue, "learning rate: expected a positive number, got \(options.learningRate)") }
        guard options.emaDecay >= 0 && options.emaDecay < 1 else { throw DDPMError(.invalidValue, "EMA decay: expected a value in [0, 1), got \(options.emaDecay)") }
        self.config = config; self.options = options
        ddpm = try config.makeDDPM(seed: seed)
        network = ddpm.model as! UNet
        optimizer = Adam(shapes: network.parameters.map(\.count), options: options)
        ema = network.parameters.map(\.data)
        if options.timestepSampler == .lossSecondMoment { resampler = LossSecondMomentResampler(timesteps: config.timesteps) }
    }

    /// The loss of one batch: `ddpm(x)` with uniform timesteps; with the resampler, t and ε from the DDPM's
    /// generator (t first), each sample's total weighted by 1/(T p_t), and the unweighted totals recorded
    /// in the resampler's history (as improved-diffusion's training loop does). `labels` (after dropout)
    /// go to a class-conditional network.
    func batchLoss(_ x: Tensor, labels: [Int]? = nil) throws -> Tensor {
        guard var sampler = resampler else { return try ddpm(x, labels: labels) }
        let (t, weights) = sampler.sample(batchSize: x.shape[0], generator: &ddpm.generator)
        let noise = Tensor.randomNormal(x.shape, generator: &ddpm.generator)
        let xt = try ddpm.diffuser.addNoise(x, at: t, noise: noise)
        let out = labels.map { network.predictNoise(xt, at: t, labels: $0) } ?? ddpm.model.predictNoise(xt, at: t)
        let terms = try ddpm.diffuser.trainingLosses(modelOutput: out, start: x, noisy: xt, t: t, noise: noise)
        sampler.update(t: t, losses: terms.total.data)
        resampler = sampler
        return (Tensor(shape: [t.count], data: weights) * terms.total).mean()
    }

    /// Label dropout (Ho & Salimans 2022, Algorithm 1, p_uncond): each label y_n replaced by the null class
    /// K when u_n < p, with one u_n ~ U[0, 1) per sample drawn from `generator` whatever p is (so p = 0 and
    /// p = 1 consume the same stream, and exact resume holds). Labels already K stay K.
    public static func dropLabels(_ labels: [Int], probability p: Double, nullClass k: Int, generator: inout RandomGenerator) -> [Int] {
        labels.map { y in generator.nextUniform() < p ? k : y }
    }

    /// One optimisation step on a random batch of `data` (N×C×H×W): indices, then (class-conditional
    /// network) one label-dropout uniform per sample, then t, then ε from the DDPM's generator; dropout
    /// masks from the network's. `labels` (one per image of `data`, 0 ..< K, or K for an unlabelled image)
    /// are required by a class-conditional network and refused by an unconditional one. Returns the loss
    /// before the update.
    @discardableResult
    public func trainStep(on data: Tensor, labels: [Int]? = nil) throws -> Double {
        let n = data.shape[0]
        guard (labels != nil) == (network.labelEmbedding != nil) else {
            throw DDPMError(.invalidValue, labels == nil
                ? "class labels: the network is class-conditional (\(network.classCount) classes) and needs one label per image"
                : "class labels: the network is unconditional (trained without --classes); labels cannot be used")
        }
        if let labels { try network.validate(labels: labels, batch: n, allowNull: true) }
        let (x, picked) = randomBatch(of: data, size: options.batchSize, generator: &ddpm.generator)
        let y = labels.map { all in
            Self.dropLabels(picked.map { all[$0] }, probability: options.labelDropout, nullClass: network.nullClass, generator: &ddpm.generator)
        }
        network.isTraining = true
        network.zeroGradients()
        let loss = try batchLoss(x, labels: y)
        loss.backward()
        clipGradientNorm(network.parameters, maxNorm: options.gradientClipNorm)
        optimizer.update(network.parameters)
        // After the update: the average moves toward the new weights θ_s (Tests/DDPMTests/EMAWarmupTests pins the order).
        let d = emaNextDecay
        for (k, p) in network.parameters.enumerated() { Self.updateAverage(&ema[k], toward: p.data, decay: d) }
        emaUpdates += 1
        network.zeroGradients()
        lossHistory.append(LossRecord(step: step, loss: loss.scalar))
        return loss.scalar
    }

    /// The exponential moving average of the weights, one update:
    ///
    ///     θ̄ ← d · θ̄ + (1 − d) · θ        (d: the decay of this update, see ``EMAWarmup``)
    public static func updateAverage(_ average: inout [Double], toward values: [Double], decay d: Double) {
        precondition(average.count == values.count, "updateAverage: \(average.count) averages for \(values.count) values")
        average.withUnsafeMutableBufferPointer { a in values.withUnsafeBufferPointer { x in
            let (a, x) = (a.baseAddress!, x.baseAddress!)
            Parallel.chunks(values.count, work: 2 * values.count) { r in for i in r { a[i] = d * a[i] + (1 - d) * x[i] } }
        } }
    }

    /// The training loss (the configuration's objective, uniform t) on fixed images with fixed t and ε drawn
    /// from `seed`: first t_n for every image n, then ε for all of them (N×C×H×W), so the draws depend only
    /// on the seed and N (evaluation mode, no graph). With `batchSize`, the network sees at most that many
    /// images at once and the batch means are combined weighted by their sizes (the same mean, up to
    /// rounding); without it, all images in one batch.
    public func heldOutLoss(_ images: Tensor, seed: UInt64, batchSize: Int? = nil) throws -> Double {
        var g = RandomGenerator(seed: seed)
        let n = images.shape[0]
        let t = (0..<n).map { _ in g.nextInt(below: config.timesteps) }
        let noise = Tensor.randomNormal(images.shape, generator: &g)
        let b = Swift.max(1, Swift.min(batchSize ?? n, n))
        return try network.withMode(training: false) { try withoutGradients {
            if b == n { return try ddpm.loss(images, at: t, noise: noise).scalar }
            var total = 0.0, start = 0
            while start < n {
                let k = Swift.min(b, n - start)
                let part = try ddpm.loss(images.slice(axis: 0, start: start, length: k), at: Array(t[start..<(start + k)]),
                                         noise: noise.slice(axis: 0, start: start, length: k)).scalar
                total += part * Double(k)
                start += k
            }
            return total / Double(n)
        } }
    }

    /// ``heldOutLoss(_:seed:batchSize:)`` at the current step, recorded in ``heldOutHistory`` (replacing a
    /// record of the same step). Returns the loss.
    @discardableResult
    public func recordHeldOutLoss(_ images: Tensor, seed: UInt64, batchSize: Int? = nil) throws -> Double {
        let loss = try heldOutLoss(images, seed: seed, batchSize: batchSize)
        heldOutHistory.removeAll { $0.step >= step }
        heldOutHistory.append(LossRecord(step: step, loss: loss))
        return loss
    }

    /// Copies the averaged weights into the network (for sampling with `--ema`).
    public func useAveragedWeights() { for (p, e) in zip(network.parameters, ema) { p.assign(e) } }

    // MARK: Checkpoints

    /// The checkpoint format (version 1 files: ε-prediction, fixed small variance, L_simple).
    public static let format = FileFormat.checkpoint

    /// The `/training` attributes that record the EMA's age and warm-up; checkpoints written before them
    /// load as warm-up ``EMAWarmup/none`` with age = step (the EMA was updated once per step, at decay d).
    static let emaAgeAttributes = ["ema_updates", "ema_warmup"]

    /// Writes configuration, weights, averaged weights, optimiser state, step and random state, atomically.
    public func save(to path: String) throws { try save(to: path, omitting: []) }

    /// `save(to:)` without the named `/training` attributes (for tests of older files).
    func save(to path: String, omitting: Set<String>) throws {
        try HDF5Writer.write(to: path) { w in
            try Self.format.stamp(w)
            try w.setAttribute("step", Int64(step))
            try config.write(to: w)
            try network.saveWeights(to: w)
            try w.createGroup("/training")
            for (k, v) in [("learning_rate", options.learningRate), ("beta1", options.beta1), ("beta2", options.beta2),
                           ("epsilon", options.epsilon), ("gradient_clip_norm", options.gradientClipNorm), ("ema_decay", options.emaDecay)] {
                try w.setAttribute(k, v, on: "/training")
            }
            try w.setAttribute("batch_size", Int64(options.batchSize), on: "/training")
            try w.setAttribute("timestep_sampler", options.timestepSampler.rawValue, on: "/training")
            if network.labelEmbedding != nil { try w.setAttribute("label_dropout", options.labelDropout, on: "/training") }
            if !omitting.contains("ema_updates") { try w.setAttribute("ema_updates", Int64(emaUpdates), on: "/training") }
            if !omitting.contains("ema_warmup") { try w.setAttribute("ema_warmup", options.emaWarmup.rawValue, on: "/training") }
            if let r = resampler {
                try w.write(r.lossHistory, shape: [r.timesteps, r.historyPerTerm], to: "/training/resampler/loss_history")
                try w.write(r.lossCounts.map(Int64.init), shape: [r.timesteps], to: "/training/resampler/loss_counts")
            }
            for (group, history) in [("loss_history", lossHistory), ("held_out_history", heldOutHistory)] where !history.isEmpty {
                try w.write(history.map { Int64($0.step) }, shape: [history.count], to: "/training/\(group)/step")
                try w.write(history.map(\.loss), shape: [history.count], to: "/training/\(group)/loss")
            }
            try w.setAttribute("rng_state", ddpm.generator.stateWords.map { Int64(bitPattern: $0) }, on: "/training")
            try w.setAttribute("dropout_rng_state", network.dropoutGenerator.stateWords.map { Int64(bitPattern: $0) }, on: "/training")
            for (k, (name, p)) in network.namedParameters().enumerated() {
                try w.write(ema[k], shape: p.shape, to: "/ema/" + name)
                try w.write(optimizer.m[k], shape: p.shape, to: "/adam/m/" + name)
                try w.write(optimizer.v[k], shape: p.shape, to: "/adam/v/" + name)
            }
        }
    }

    /// Restores a trainer exactly as it was saved. Options come from the checkpoint.
    public static func load(from path: String) throws -> Trainer {
        let file = try HDF5File(path: path)
        try format.check(file)
        let config = try ModelConfiguration(reading: file)
        var o = try TrainingOptions(optimiserOf: file)
        o.emaDecay = try file.doubleAttribute("ema_decay", of: "/training")
        do { try o.validate() } catch let e as DDPMError { throw DDPMError(.malformedFile, "\(path) /training: \(e.message)") }
        if try file.attributeNames(of: "/training").contains("timestep_sampler") {
            let name = try file.stringAttribute("timestep_sampler", of: "/training")
            guard let sampler = TimestepSampler(rawValue: name) else {
                throw DDPMError(.invalidConfiguration, "\(path) /training attribute 'timestep_sampler': expected one of \(TimestepSampler.allCases.map(\.rawValue).joined(separator: ", ")), found '\(name)'")
            }
            o.timestepSampler = sampler
        }
        let names = try file.attributeNames(of: "/training")
        if config.network.classes != nil {
            guard names.contains("label_dropout") else {
                throw DDPMError(.malformedFile, "\(path): a class-conditional network (num_classes \(config.network.classes!)) without /training attribute 'label_dropout'")
            }
            o.labelDropout = try file.doubleAttribute("label_dropout", of: "/training")
            guard o.labelDropout >= 0, o.labelDropout <= 1 else {
                throw DDPMError(.malformedFile, "\(path) /training attribute 'label_dropout': expected a probability in [0, 1], found \(o.labelDropout)")
            }
        }
        o.emaWarmup = .none
        if names.contains("ema_warmup") {
            let name = try file.stringAttribute("ema_warmup", of: "/training")
            guard let warmup = EMAWarmup(rawValue: name) else {
                throw DDPMError(.invalidConfiguration, "\(path) /training attribute 'ema_warmup': expected one of \(EMAWarmup.allCases.map(\.rawValue).joined(separator: ", ")), found '\(name)'")
            }
            o.emaWarmup = warmup
        }
        let trainer = try Trainer(config: config, options: o, seed: 0)
        if o.timestepSampler == .lossSecondMoment {
            for k in ["loss_history", "loss_counts"] where !file.exists("/training/resampler/" + k) {
                throw DDPMError(.malformedFile, "\(path): timestep sampler 'loss-second-moment' without '/training/resampler/\(k)'")
            }
            let history = try file.readDoubles("/training/resampler/loss_history", expectedShape: [config.timesteps, 10]).values
            let counts = try file.readInt64s("/training/resampler/loss_counts").values.map { Int($0) }
            trainer.resampler = try LossSecondMomentResampler(timesteps: config.timesteps, lossHistory: history, lossCounts: counts)
        }
        try trainer.network.loadWeights(from: file)
        let params = trainer.network.namedParameters()
        for (k, (name, p)) in params.enumerated() {
            trainer.ema[k] = try file.readFloatingPoint("/ema/" + name, expectedShape: p.shape).values
            trainer.optimizer.m[k] = try file.readFloatingPoint("/adam/m/" + name, expectedShape: p.shape).values
            trainer.optimizer.v[k] = try file.readFloatingPoint("/adam/v/" + name, expectedShape: p.shape).values
        }
        trainer.optimizer.step = Int(try file.int64Attribute("step"))
        guard trainer.step >= 0 else { throw DDPMError(.malformedFile, "\(path): attribute 'step' is \(trainer.step), expected 0 or more") }
        trainer.emaUpdates = names.contains("ema_updates") ? Int(try file.int64Attribute("ema_updates", of: "/training")) : trainer.step
        guard trainer.emaUpdates >= 0 else { throw DDPMError(.malformedFile, "\(path) /training attribute 'ema_updates' is \(trainer.emaUpdates), expected 0 or more") }
        if let (name, value) = trainer.firstNonFiniteWeight() { throw DDPMError(.invalidData, "\(path): weight '\(name)' is \(value), expected finite weights") }
        func state(_ key: String) throws -> [UInt64] {
            let words = try file.int64ArrayAttribute(key, of: "/training").map { UInt64(bitPattern: $0) }
            guard words.count == 4, words.contains(where: { $0 != 0 }) else { throw DDPMError(.malformedFile, "\(path) /training attribute '\(key)': expected 4 non-zero words") }
            return words
        }
        trainer.ddpm.generator = RandomGenerator(state: try state("rng_state"))
        trainer.network.dropoutGenerator = RandomGenerator(state: try state("dropout_rng_state"))
        trainer.lossHistory = try readHistory(file, "loss_history", path: path, upTo: trainer.step, first: 1)
        trainer.heldOutHistory = try readHistory(file, "held_out_history", path: path, upTo: trainer.step, first: 0)
        return trainer
    }

    /// A loss history `/training/<name>/{step,loss}` (absent: empty): equal lengths, steps increasing from at
    /// least `first` up to at most the checkpoint's step.
    static func readHistory(_ file: HDF5File, _ name: String, path: String, upTo step: Int, first: Int) throws -> [LossRecord] {
        let group = "/training/" + name
        guard file.exists(group) else { return [] }
        for k in ["step", "loss"] where !file.exists(group + "/" + k) {
            throw DDPMError(.malformedFile, "\(path): '\(group)' without '\(group)/\(k)'")
        }
        let steps = try file.readInt64s(group + "/step", expectedShape: [-1]).values
        let losses = try file.readFloatingPoint(group + "/loss", expectedShape: [steps.count]).values
        for (k, s) in steps.enumerated() where s < first || s > step || (k > 0 && s <= steps[k - 1]) {
            throw DDPMError(.malformedFile, "\(path) '\(group)/step': expected increasing steps from \(first) to the checkpoint's step \(step), found \(s) at index \(k)")
        }
        return zip(steps, losses).map { LossRecord(step: Int($0), loss: $1) }
    }
}
