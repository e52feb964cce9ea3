// The noisy classifier of classifier guidance (Dhariwal & Nichol 2021, §4): training by cross-entropy on
// x_t = q_sample(x_0, t) at uniform t, held-out accuracy by noise level, and its checkpoint file. The
// network is ``EncoderUNet`` (Sources/UNet); the guidance equations are in Sources/Diffusion/ClassifierGuidance.swift.

import Foundation
import HDF5

extension EncoderUNet: NoisyClassifier {
    public func classifierLogits(_ x: Tensor, at t: [Int]) -> Tensor { logits(x, t) }
}

extension FileFormat {
    /// Classifier checkpoints (`ddpm train-classifier`): `/config` (the network, the diffusion whose q(x_t | x_0)
    /// the classifier was trained on, `classes` and `pooling`), `/weights`, `/adam/{m,v}`, `step`, `/training`.
    public static let classifier = FileFormat(name: "ddpm-classifier", version: 1, readableVersions: [1], label: "classifier checkpoint")
}

/// Draws `size` images uniformly with replacement from the N×… tensor `images` (one `nextInt(below: N)` from
/// `generator` per image, in batch order) and returns the batch with the indices picked. The training steps of
/// the denoiser (``Trainer``) and of the classifier (``ClassifierTrainer``) both start with this draw.
func randomBatch(of images: Tensor, size: Int, generator: inout RandomGenerator) -> (batch: Tensor, picked: [Int]) {
    let n = images.shape[0], per = images.count / n
    var data = [Double](); data.reserveCapacity(size * per)
    var picked: [Int] = []
    for _ in 0..<size {
        let i = generator.nextInt(below: n)
        data += images.data[(i * per)..<((i + 1) * per)]
        picked.append(i)
    }
    return (Tensor(shape: [size] + Array(images.shape.dropFirst()), data: data), picked)
}

/// argmax_k of each row of N×K logits: the most probable class of each image, the first on ties.
func mostProbableClasses(_ logits: Tensor) -> [Int] {
    let k = logits.shape[1]
    return (0..<logits.shape[0]).map { j in
        let row = logits.data[(j * k)..<((j + 1) * k)]
        return row.indices.max { row[$0] < row[$1] }! - j * k
    }
}

/// Held-out accuracy of a noisy classifier: overall and per noise-level bucket (t in equal quarters of 0 ..< T).
public struct ClassifierAccuracy: Sendable, CustomStringConvertible {
    /// Bucket b covers t in `ranges[b]`; `correct[b]` of `counts[b]` images were classified correctly there.
    public var ranges: [Range<Int>], correct: [Int], counts: [Int]
    /// The mean cross-entropy −log p_φ(y | x_t, t) over every image (nats).
    public var loss: Double
    public var total: Int { counts.reduce(0, +) }
    public var accuracy: Double { Double(correct.reduce(0, +)) / Double(max(total, 1)) }

    public var description: String {
        let buckets = zip(ranges, zip(correct, counts)).map { r, cn in
            "t \(r.lowerBound)–\(r.upperBound - 1): \(cn.0)/\(cn.1)" + (cn.1 > 0 ? String(format: " (%.1f %%)", 100 * Double(cn.0) / Double(cn.1)) : "")
        }
        return String(format: "accuracy %.1f %% (%d/%d), cross-entropy %.4f nats; ", 100 * accuracy, correct.reduce(0, +), total, loss)
            + buckets.joined(separator: ", ")
    }
}

/// A noisy classifier being trained: the network, its diffusion (for x_t), Adam and the random state.
///
/// One step (guided-diffusion's `classifier_train.py` without its AdamW weight decay and its anneal):
///
///     i_1 … i_B uniform over the images, t_b uniform over 0 ..< T, ε ~ 𝒩(0, I)          (in this order, from `generator`)
///     x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε                                                  (Ho et al. eq. 4, ``GaussianDiffusion/qSample(start:t:noise:)``)
///     L = −(1/B) Σ_b log p_φ(y_b | x_t,b, t_b)                                        (``ClassifierGuidance/logProbabilities(logits:labels:)``)
///
/// then Adam (``Adam``, the denoiser's optimiser) after clipping the gradient norm at the options' norm.
public final class ClassifierTrainer {
    public let config: ModelConfiguration
    public let classes: Int
    public let options: TrainingOptions
    public let network: EncoderUNet
    public let diffusion: GaussianDiffusion
    public let optimizer: Adam
    public var generator: RandomGenerator
    public var step: Int { optimizer.step }

    public init(config: ModelConfiguration, classes: Int, options: TrainingOptions, seed: UInt64) throws {
        try options.validate()
        try config.validate()
        self.config = config; self.classes = classes; self.options = options
        network = try EncoderUNet(config.network, classes: classes, seed: seed)
        diffusion = try config.makeDiffusion()
        optimizer = Adam(shapes: network.parameters.map(\.count), options: options)
        generator = RandomGenerator(seed: seed)
    }

    /// Throws unless `labels` has one class in 0 ..< K per image (`what` names the file in the message).
    public func checkLabels(_ labels: [Int], images: Tensor, _ what: String) throws {
        guard labels.count == images.shape[0] else {
            throw DDPMError(.shapeMismatch, "\(what): \(labels.count) labels for \(images.shape[0]) images")
        }
        if let bad = labels.firstIndex(where: { $0 >= classes }) {
            throw DDPMError(.invalidData, "\(what) dataset 'labels': label \(labels[bad]) at element \(bad) is not one of the classifier's \(classes) classes 0 ..< \(classes)")
        }
    }

    /// L for given images, labels, t and ε (the mean cross-entropy on x_t; differentiable in the weights).
    public func loss(_ x0: Tensor, labels: [Int], t: [Int], noise: Tensor) throws -> Tensor {
        let xt = try diffusion.qSample(start: x0, t: t, noise: noise)
        return -ClassifierGuidance.logProbabilities(logits: network.logits(xt, t), labels: labels).mean()
    }

    /// One optimisation step on a random batch; returns the loss before the update.
    @discardableResult
    public func trainStep(images: Tensor, labels: [Int]) throws -> Double {
        let b = options.batchSize
        let (x, picked) = randomBatch(of: images, size: b, generator: &generator)
        let y = picked.map { labels[$0] }
        let t = diffusion.sampleTimesteps(batchSize: b, generator: &generator)
        let noise = Tensor.randomNormal(x.shape, generator: &generator)
        network.isTraining = true
        network.zeroGradients()
        let l = try loss(x, labels: y, t: t, noise: noise)
        l.backward()
        clipGradientNorm(network.parameters, maxNorm: options.gradientClipNorm)
        optimizer.update(network.parameters)
        network.zeroGradients()
        return l.scalar
    }

    /// Accuracy on `images` (labels `labels`) at one t per image drawn uniformly, with its ε, from `seed`
    /// (evaluation mode, no graph, batches of 64), in `buckets` equal ranges of t.
    public func evaluate(images: Tensor, labels: [Int], seed: UInt64, buckets: Int = 4) throws -> ClassifierAccuracy {
        try Self.evaluate(network, diffusion: diffusion, images: images, labels: labels, seed: seed, buckets: buckets)
    }

    /// ``evaluate(images:labels:seed:buckets:)`` for any classifier over `diffusion`.
    public static func evaluate(_ classifier: NoisyClassifier, diffusion: GaussianDiffusion, images: Tensor, labels: [Int],
                                seed: UInt64, buckets: Int = 4) throws -> ClassifierAccuracy {
        let T = diffusion.timesteps, n = images.shape[0]
        let k = max(1, min(buckets, T))
        let ranges = (0..<k).map { b in (b * T / k)..<((b + 1) * T / k) }
        var g = RandomGenerator(seed: seed)
        let t = (0..<n).map { _ in g.nextInt(below: T) }
        let noise = Tensor.randomNormal(images.shape, generator: &g)
        var correct = [Int](repeating: 0, count: k), counts = correct
        var total = 0.0
        try classifier.withMode(training: false) { try withoutGradients {
            for start in stride(from: 0, to: n, by: 64) {
                let m = min(64, n - start), rows = start..<(start + m)
                let x0 = images.slice(axis: 0, start: start, length: m), z = noise.slice(axis: 0, start: start, length: m)
                let tb = Array(t[rows]), yb = Array(labels[rows])
                let logits = classifier.classifierLogits(try diffusion.qSample(start: x0, t: tb, noise: z), at: tb)
                total -= ClassifierGuidance.logProbabilities(logits: logits, labels: yb).data.reduce(0, +)
                for (j, predicted) in mostProbableClasses(logits).enumerated() {
                    let bucket = ranges.firstIndex { $0.contains(tb[j]) }!
                    counts[bucket] += 1
                    if predicted == yb[j] { correct[bucket] += 1 }
                }
            }
        } }
        return ClassifierAccuracy(ranges: ranges, correct: correct, counts: counts, loss: total / Double(max(n, 1)))
    }

    // MARK: Checkpoints

    public func save(to path: String) throws {
        try HDF5Writer.write(to: path) { w in
            try FileFormat.classifier.stamp(w)
            try w.setAttribute("step", Int64(step))
            try config.write(to: w)
            try w.setAttribute("classes", Int64(classes), on: "/config")
            try w.setAttribute("pooling", network.pooling.rawValue, on: "/config")
            try network.saveWeights(to: w)
            try w.createGroup("/training")
            for (k, v) in [("learning_rate", options.learningRate), ("beta1", options.beta1), ("beta2", options.beta2),
                           ("epsilon", options.epsilon), ("gradient_clip_norm", options.gradientClipNorm)] {
                try w.setAttribute(k, v, on: "/training")
            }
            try w.setAttribute("batch_size", Int64(options.batchSize), on: "/training")
            try w.setAttribute("rng_state", generator.stateWords.map { Int64(bitPattern: $0) }, on: "/training")
            for (k, (name, p)) in network.namedParameters().enumerated() {
                try w.write(optimizer.m[k], shape: p.shape, to: "/adam/m/" + name)
                try w.write(optimizer.v[k], shape: p.shape, to: "/adam/v/" + name)
            }
        }
    }

    /// The number of classes a classifier checkpoint declares (read before anything is built).
    public static func classes(in file: HDF5File) throws -> Int {
        try FileFormat.classifier.check(file)
        guard file.exists("/config"), try file.attributeNames(of: "/config").contains("classes") else {
            throw DDPMError(.malformedFile, "\(file.path): no attribute 'classes' on '/config' (the number of classes)")
        }
        let k = try file.int64Attribute("classes", of: "/config")
        guard k >= 2, k <= 1 << 20 else { throw DDPMError(.malformedFile, "\(file.path) /config attribute 'classes': expected 2 to \(1 << 20), found \(k)") }
        return Int(k)
    }

    /// Restores a classifier as it was saved (weights, optimiser, random state).
    public static func load(from path: String) throws -> ClassifierTrainer {
        let file = try HDF5File(path: path)
        let k = try classes(in: file)
        let pooling = try file.stringAttribute("pooling", of: "/config")
        guard EncoderPooling(rawValue: pooling) != nil else {
            throw DDPMError(.invalidConfiguration, "\(path) /config attribute 'pooling': expected one of \(EncoderPooling.allCases.map(\.rawValue).joined(separator: ", ")), found '\(pooling)'")
        }
        let config = try ModelConfiguration(reading: file)
        let o = try TrainingOptions(optimiserOf: file)
        do { try o.validate() } catch let e as DDPMError { throw DDPMError(.malformedFile, "\(path) /training: \(e.message)") }
        let trainer = try ClassifierTrainer(config: config, classes: k, options: o, seed: 0)
        try trainer.network.loadWeights(from: file)
        for (j, (name, p)) in trainer.network.namedParameters().enumerated() {
            trainer.optimizer.m[j] = try file.readFloatingPoint("/adam/m/" + name, expectedShape: p.shape).values
            trainer.optimizer.v[j] = try file.readFloatingPoint("/adam/v/" + name, expectedShape: p.shape).values
            if let bad = p.data.first(where: { !$0.isFinite }) { throw DDPMError(.invalidData, "\(path): weight '\(name)' is \(bad), expected finite weights") }
        }
        trainer.optimizer.step = Int(try file.int64Attribute("step"))
        let words = try file.int64ArrayAttribute("rng_state", of: "/training").map { UInt64(bitPattern: $0) }
        guard words.count == 4, words.contains(where: { $0 != 0 }) else { throw DDPMError(.malformedFile, "\(path) /training attribute 'rng_state': expected 4 non-zero words") }
        trainer.generator = RandomGenerator(state: words)
        return trainer
    }
}
