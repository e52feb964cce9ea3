// The class-conditional part of `ddpm demo` (issue 20): the project's own noisy classifier trained on the
// training split, a grid with one row per class at several guidance strengths, and how often the
// classifier recognises the requested class. No mathematics lives here: the classifier is
// ``ClassifierTrainer`` (Sources/DDPM/Classifier.swift), guidance ``ClassifierFreeGuidedPredictor``
// (Sources/Diffusion/Guidance.swift); this file wires them and lays out the picture.

import Foundation

public enum ConditionalDemo {
    /// K of the demo's digits (0–9); label K = 10 is the null class of the conditional network.
    public static let digitClasses = 10
    /// The class grid's guidance strengths, paper convention (Ho & Salimans 2022 eq. 6): w = 0 is the conditional
    /// model alone, w = 3 is diffusers' / k-diffusion's scale s = 1 + w = 4.
    public static let gridStrengths: [GuidanceStrength] = [.paper(w: 0), .paper(w: 3)]
    /// Images per class (per row) in the grid, at most; the demo takes min(this, --count).
    public static let gridPerClass = 8
    /// The classifier's Adam learning rate (the demo denoiser's; guided-diffusion's classifier uses 3e-4 over far more steps).
    public static let classifierLearningRate = 1e-3
    /// The classifier's training steps: a third of the denoiser's (300 at the demo's 900), at least 1.
    public static func classifierSteps(denoiserSteps n: Int) -> Int { max(1, n / 3) }

    /// The demo's classifier network: the denoiser's configuration without its label embedding (``EncoderUNet``
    /// builds the encoder half with the pooled head from it, as `ddpm train-classifier` does for the demo preset).
    public static func classifierNetwork(for denoiser: UNetConfiguration) -> UNetConfiguration {
        var c = denoiser
        c.classes = nil
        return c
    }

    /// A noisy classifier p_φ(y | x_t, t) trained for `steps` steps of ``ClassifierTrainer/trainStep(images:labels:)``
    /// (cross-entropy at uniform t over `diffusion`'s q(x_t | x_0)) on `images` and `labels` (0 ..< `classes`).
    /// `onStep(step, loss)` sees each step (a progress hook). Throws `.diverged` on a non-finite loss.
    public static func trainClassifier(images: Tensor, labels: [Int], classes: Int, network: UNetConfiguration,
                                       diffusion: DiffusionConfiguration, steps: Int, options: TrainingOptions, seed: UInt64,
                                       onStep: ((Int, Double) -> Void)? = nil) throws -> ClassifierTrainer {
        let trainer = try ClassifierTrainer(config: ModelConfiguration(network: network, diffusion: diffusion), classes: classes, options: options, seed: seed)
        try trainer.checkLabels(labels, images: images, "demo classifier training")
        while trainer.step < steps {
            let loss = try trainer.trainStep(images: images, labels: labels)
            guard loss.isFinite else { throw DDPMError(.diverged, "demo classifier training diverged at step \(trainer.step): the loss is \(loss)") }
            onStep?(trainer.step, loss)
        }
        return trainer
    }

    /// The class the classifier finds most probable for each image given as is (no noise added) with timestep
    /// `t` (default 0, the least noisy level the classifier was trained on): argmax_y of its logits, the first on
    /// ties. Evaluation mode, no graph, batches of 64.
    public static func predictions(_ classifier: NoisyClassifier, images: Tensor, t: Int = 0) -> [Int] {
        let n = images.shape[0]
        var out: [Int] = []
        classifier.withMode(training: false) { withoutGradients {
            for start in stride(from: 0, to: n, by: 64) {
                let m = min(64, n - start)
                out += mostProbableClasses(classifier.classifierLogits(images.slice(axis: 0, start: start, length: m), at: [Int](repeating: t, count: m)))
            }
        } }
        return out
    }

    /// How often a classifier's prediction is the requested class: overall and per requested class.
    public struct Recognition: Sendable, Equatable, CustomStringConvertible {
        /// `correct[k]` of `counts[k]` images requested as class k were recognised as k.
        public var correct: [Int], counts: [Int]
        public var total: Int { counts.reduce(0, +) }
        public var recognised: Int { correct.reduce(0, +) }
        /// recognised / total (0 when there is nothing).
        public var rate: Double { total == 0 ? 0 : Double(recognised) / Double(total) }

        /// "57.5 % (46/80)".
        public var description: String { String(format: "%.1f %% (%d/%d)", 100 * rate, recognised, total) }
        /// "0: 8/8, 1: 3/8, …" (classes with no requested image are left out).
        public var perClass: String {
            counts.indices.filter { counts[$0] > 0 }.map { "\($0): \(correct[$0])/\(counts[$0])" }.joined(separator: ", ")
        }
    }

    /// Counts, for each i, whether `predicted[i] == requested[i]`, by requested class 0 ..< `classes`.
    public static func recognition(predicted: [Int], requested: [Int], classes: Int) -> Recognition {
        precondition(predicted.count == requested.count, "recognition: \(predicted.count) predictions for \(requested.count) requests")
        var correct = [Int](repeating: 0, count: classes), counts = correct
        for (p, r) in zip(predicted, requested) {
            precondition(r >= 0 && r < classes, "recognition: requested class \(r) is not in 0 ..< \(classes)")
            counts[r] += 1
            if p == r { correct[r] += 1 }
        }
        return Recognition(correct: correct, counts: counts)
    }

    /// The requested labels of a class grid: `perClass` images of each class 0 ..< `classes` in turn
    /// (0, 0, …, 1, 1, …): row k of the grid is class k.
    public static func gridLabels(classes: Int, perClass: Int) -> [Int] {
        (0..<classes).flatMap { [Int](repeating: $0, count: perClass) }
    }

    /// Samples of a class-conditional model for `labels` at each strength, every strength from the same starts
    /// x_T (a fresh generator of `seed` each) through the sampler `choice`. Strength w = 0 (paper convention)
    /// is the conditional model alone (``ClassConditionedPredictor``: guidance at w = 0 returns it bit for bit,
    /// at half the network cost); any other runs ``ClassifierFreeGuidedPredictor`` (one call on 2N per step).
    public static func classSamples(_ trainer: Trainer, labels: [Int], strengths: [GuidanceStrength], choice: SamplerChoice,
                                    seed: UInt64) throws -> [Tensor] {
        guard trainer.config.network.classes != nil else {
            throw DDPMError(.invalidConfiguration, "class grid: the network is unconditional (trained without classes)")
        }
        try trainer.network.validate(labels: labels, batch: labels.count)
        let sampler = try trainer.ddpm.makeSampler(choice)
        return try strengths.map { strength in
            var g = RandomGenerator(seed: seed)
            let predictor: NoisePredictor = strength.w == 0
                ? ClassConditionedPredictor(trainer.network, labels: labels)
                : try ClassifierFreeGuidedPredictor(trainer.network, labels: labels, strength: strength, meanChannels: trainer.config.network.channels)
            return try trainer.ddpm.sample(batchSize: labels.count, sampler: sampler, generator: &g, predictor: predictor)
        }
    }

    /// Width of the row-label strip on the left of ``writeClassGrid(_:classes:perClass:headings:caption:range:path:)``.
    public static let rowLabelWidth = 20
    /// Height of the heading strip above each panel, and the white gap between panels.
    public static let headingHeight = 20, panelGap = 8

    /// Writes panels side by side, each `classes · perClass` images N×C×H×W (C 1 or 3) laid out with row k
    /// holding class k's `perClass` images (the order of ``gridLabels(classes:perClass:)``), tiles upscaled
    /// `s` = ``PNGWriter/defaultScale(side:)`` times with a 1-pixel grey gap as in ``PNGWriter/writeGrid(_:range:columns:scale:caption:path:)``.
    /// Layout (pixels), for P panels of tiles H×W:
    ///
    ///     width  = rowLabelWidth + P · (perClass · (W·s + 1) + 1) + (P − 1) · panelGap
    ///     height = caption strip (4 + 20 per line, wrapped to the width) + headingHeight + classes · (H·s + 1) + 1
    ///
    /// The class k is written in the white left strip beside row k, `headings[p]` in the white strip above panel p.
    public static func writeClassGrid(_ panels: [Tensor], classes: Int, perClass: Int, headings: [String], caption: String,
                                      range: ClosedRange<Double>, path: String) throws {
        precondition(!panels.isEmpty && headings.count == panels.count, "writeClassGrid: \(headings.count) headings for \(panels.count) panels")
        let shape = panels[0].shape
        precondition(shape.count == 4 && shape[0] == classes * perClass && panels.allSatisfy { $0.shape == shape },
                     "writeClassGrid: expected panels of \(classes) × \(perClass) images N×C×H×W, got \(panels.map(\.shape))")
        let (c, h, w) = (shape[1], shape[2], shape[3])
        guard c == 1 || c == 3 else { throw DDPMError(.invalidValue, "\(path): PNG grids need 1 or 3 channels, got \(c)") }
        let scale = PNGWriter.defaultScale(side: max(h, w)), ts = PNGWriter.textScale
        let gap = 1, cellW = w * scale + gap, cellH = h * scale + gap
        let panelW = perClass * cellW + gap
        let width = rowLabelWidth + panels.count * panelW + (panels.count - 1) * panelGap
        let lines = BitmapFont.lines(caption.uppercased(), maxWidth: width - 2 * ts * 2, scale: ts)
        let top = PNGWriter.captionHeight(lines: lines.count)
        let gridTop = top + headingHeight
        var canvas = Canvas(width: width, height: gridTop + classes * cellH + gap, channels: c, background: 255)
        PNGWriter.drawCaption(lines, into: &canvas)
        let labelScale = BitmapFont.width("\(classes - 1)", scale: ts) <= rowLabelWidth - 2 * ts ? ts : 1
        for k in 0..<classes {
            let text = "\(k)", y = gridTop + gap + k * cellH + max(0, (h * scale - BitmapFont.lineHeight * labelScale) / 2)
            canvas.draw(text, x: max(0, (rowLabelWidth - BitmapFont.width(text, scale: labelScale)) / 2), y: y, scale: labelScale, [0])
        }
        for (p, images) in panels.enumerated() {
            let x0 = rowLabelWidth + p * (panelW + panelGap)
            let headingScale = BitmapFont.width(headings[p].uppercased(), scale: ts) <= panelW ? ts : 1
            canvas.draw(headings[p].uppercased(), x: x0 + max(0, (panelW - BitmapFont.width(headings[p].uppercased(), scale: headingScale)) / 2),
                        y: top + (headingHeight - BitmapFont.lineHeight * headingScale) / 2, scale: headingScale, [0])
            canvas.fill(x: x0, y: gridTop, w: panelW, h: classes * cellH + gap, [128])
            for i in 0..<(classes * perClass) {
                let ty = gridTop + gap + (i / perClass) * cellH, tx = x0 + gap + (i % perClass) * cellW
                for y in 0..<(h * scale) { for x in 0..<(w * scale) { for ch in 0..<c {
                    let v = images.data[((i * c + ch) * h + y / scale) * w + x / scale]
                    canvas.pixels[((ty + y) * width + tx + x) * c + ch] = PNGWriter.pixel(v, range: range)
                } } }
            }
        }
        try PNGWriter.write(path: path, width: canvas.width, height: canvas.height, channels: c, pixels: canvas.pixels)
    }
}
