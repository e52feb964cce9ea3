import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm demo`: train a small DDPM on real handwritten digits (or procedurally drawn ones), sample, and write
/// pictures and a report with the held-out bits/dim and the memorisation check.
struct Demo: FileCommand {
    /// The files the demo writes into --out; nothing else there is touched.
    static let files = ["data.png", "samples.png", "samples-ddim.png", "samples-dpmpp.png", "chain.png", "nearest.png", "loss.svg", "checkpoint.h5", "report.md", "classes.png"]

    static let configuration = CommandConfiguration(
        abstract: "Train a small DDPM on real handwritten 16×16 digits and sample from it (the default command).",
        discussion: """
        The data (--digits uci, the default): the training split of the UCI handwritten digits shipped with the \
        package (`ddpm data digits --help`: 1600 training and 197 held-out images, 8×8 upsampled ×2 by repeating \
        pixels; CC BY 4.0); --digits procedural draws digits of a bitmap font instead.

        Writes into the folder --out: data.png (training images), samples.png (samples of the averaged weights, full \
        reverse chain), samples-ddim.png (the same starts through DDIM, η = 0, 50 steps), samples-dpmpp.png (the same starts through \
        DPM-Solver++(2M) on 20 Karras σ, 20 network evaluations), chain.png (one sample's \
        reverse chain x_T … x_0), nearest.png (each sample above its nearest training image), loss.svg (the \
        training loss per step, and the held-out loss at every tenth of the run), classes.png (one row per digit 0–9 \
        without and with classifier-free guidance: the model is class-conditional, trained with label dropout 0.1, and \
        the pictures above are its unconditional, null-class samples), checkpoint.h5, and report.md (with the held-out bits/dim of --bound-images \
        held-out images, trained and EMA weights). The files are made in a temporary folder and moved \
        into place together only when everything succeeded. --out may be a new folder or an existing one: other files \
        in it are never touched, and any of the ten that exists already is replaced only with --force. An existing \
        file (not a folder) at --out is refused.
        """)

    @Option(help: "Folder to write the results into (created if missing).") var out: String = "demo-out"
    @Option(name: .customLong("train-steps"), parsing: .unconditional, help: "Optimisation steps.") var steps: Int = 900
    @Option(parsing: .unconditional, help: "Images per step.") var batchSize: Int = 32
    @Option(parsing: .unconditional, help: "Adam learning rate, in (0, 1].") var lr: Double = 1e-3
    @Option(parsing: .unconditional, help: "Decay of the exponential moving average of the weights.") var emaDecay: Double = 0.995
    @Option(parsing: .unconditional, help: "Diffusion steps T (β from 1e-4·1000/T to 0.02·1000/T, linear).") var timesteps: Int = 250
    @Option(help: "Training data: uci (real handwritten digits, shipped) or procedural (a bitmap font, drawn).") var digits: String = "uci"
    @Option(parsing: .unconditional, help: "Number of training images: with uci the first N of the 1600 of the training split (default: all), with procedural N drawn (default: 4096).") var images: Int?
    @Option(parsing: .unconditional, help: "Held-out images whose full bound (bits/dim) the report gives; each costs T network evaluations per set of weights.") var boundImages: Int = 32
    @Option(parsing: .unconditional, help: "Number of samples in samples.png.") var count: Int = 36
    @Option(parsing: .unconditional, help: "Seed of everything.") var seed: Int = 0
    @Flag(help: "Replace demo files (data.png, samples.png, samples-ddim.png, samples-dpmpp.png, chain.png, nearest.png, loss.svg, checkpoint.h5, report.md, classes.png) already in --out.") var force = false
    @OptionGroup var objective: ObjectiveOptions

    /// The demo's DPM-Solver++(2M) panel: 20 steps on Karras σ (ρ = 7), the σ→t log-linear convention
    /// (k-diffusion's and diffusers' defaults), k-diffusion's final step (first order into σ = 0).
    static let dpmppSteps = 20
    static let dpmppSolver = SolverChoice(solver: .dpmpp2M, sigmas: .karras(rho: 7), timestepConvention: .logLinear)

    /// Real digits (the UCI training split) or procedurally drawn ones.
    var usesUCI: Bool { digits == "uci" }
    var imageCount: Int { images ?? (usesUCI ? UCIDigits.trainingCount : 4096) }
    /// The held-out set: the 197 held-out UCI digits, or 256 drawn after the training images.
    var heldOutCount: Int { usesUCI ? UCIDigits.heldOutCount : 256 }

    func checkOptions() throws {
        guard ["uci", "procedural"].contains(digits) else { throw DDPMError(.unknownName, "--digits: expected uci or procedural, got '\(digits)'") }
        for (name, v) in [("--train-steps", steps), ("--batch-size", batchSize), ("--timesteps", timesteps), ("--images", imageCount), ("--count", count)] {
            try requireRange(name, v, 1...Int.max)
        }
        try requireRange("--bound-images", boundImages, 1...heldOutCount, "1 to \(heldOutCount) (the held-out images)")
        if usesUCI {
            try requireRange("--images", imageCount, 1...UCIDigits.trainingCount, "1 to \(UCIDigits.trainingCount) (the UCI training split)")
            try requireRange("--count", count, 1...UCIDigits.heldOutCount, "1 to \(UCIDigits.heldOutCount) with --digits uci (as many held-out digits are the samples' reference)")
        }
        let images = imageCount
        guard count <= images else { throw DDPMError(.invalidValue, "--count \(count): expected at most --images (\(images)), the pictures show training images too") }
        try naming(Train.flagNames) { try trainingOptions.validate() }
        _ = try seedValue(self.seed)
    }

    var trainingOptions: TrainingOptions {
        var options = TrainingOptions()
        options.batchSize = batchSize; options.learningRate = lr; options.emaDecay = emaDecay
        return options
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.output("--out", out, kind: .folder(files: Self.files), mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.add("--images \(imageCount) training images", doubles: [imageCount + 256, 1, 16, 16], copies: 2)
        f.add("--bound-images \(boundImages): one bound term per image and timestep", doubles: [boundImages, timesteps], copies: 4)
        f.add("--count \(count) samples", doubles: [count, 1, 16, 16], copies: 3)
        f.diffusion(timesteps: timesteps, "--timesteps \(timesteps) diffusion tables")
        f.network(try Presets.network("demo"), batch: batchSize, training: true, network: "the demo network", images: "--batch-size \(batchSize)")
        f.network(try Presets.network("demo"), batch: boundImages, training: false, network: "the demo network (bound)", images: "--bound-images \(boundImages)")
        let grid = ConditionalDemo.digitClasses * min(ConditionalDemo.gridPerClass, count)
        f.network(try Presets.network("demo"), batch: 2 * grid, training: false, network: "the demo network (classes.png, guided)", images: "2 × \(grid) class-grid samples")
        return f
    }

    func work() throws {
        let started = Date()
        try produce(in: out, options: trainingOptions, seed: try seedValue(self.seed), started: started)
        announce("wrote \(out)/: \(Self.files.joined(separator: ", ")) (\(String(format: "%.0f", Date().timeIntervalSince(started))) s)")
    }

    func produce(in dir: String, options: TrainingOptions, seed: UInt64, started: Date) throws {
        let (train, heldOut, reference, statisticsData, labels) = try dataSets(seed: seed)
        let scale = 1000 / Double(timesteps)
        let (betaStart, betaEnd) = (1e-4 * scale, min(0.02 * scale, 0.999))
        var diffusion = DiffusionConfiguration(schedule: .linear(start: betaStart, end: betaEnd), timesteps: timesteps)
        try objective.apply(to: &diffusion)
        // Class-conditional (issue 20): a label embedding of 10 digits + the null class; calls without labels are unconditional.
        var network = try Presets.network("demo"); network.classes = ConditionalDemo.digitClasses
        let config = ModelConfiguration(network: network, diffusion: diffusion)
        let trainer = try Trainer(config: config, options: options, seed: seed)
        note("demo: \(train.shape[0]) \(usesUCI ? "UCI handwritten" : "procedurally drawn") digit images 16×16, network \(trainer.network.parameterCount) parameters, T = \(timesteps), \(steps) steps of \(batchSize)")
        try PNGWriter.writeGrid(train.slice(axis: 0, start: 0, length: count), range: 0...1,
                                caption: "training images: \(count) of \(train.shape[0])", path: dir + "/data.png")
        // The held-out loss before training, at every tenth of the run and at the end (loss.svg's circles).
        let lossBefore = try trainer.recordHeldOutLoss(heldOut, seed: seed &+ 7)
        let trainStart = Date()
        try Train.loop(trainer, images: train, labels: labels.train, until: steps, checkpointEvery: 0, out: nil, label: "demo train",
                       heldOut: HeldOutSchedule(images: heldOut, seed: seed &+ 7, every: max(steps / 10, 1)))
        try trainer.save(to: dir + "/checkpoint.h5")
        let trainSeconds = Date().timeIntervalSince(trainStart)
        let lossAfter = trainer.heldOutHistory.last!.loss
        // The full bound (bits/dim) of the first --bound-images held-out images, trained then EMA weights.
        let boundSet = heldOut.slice(axis: 0, start: 0, length: boundImages)
        let boundStart = Date()
        let bpdTrained = try Evaluate.evaluate(trainer, images: boundSet, seed: seed &+ 17, batchSize: boundImages, label: "demo trained weights")
        trainer.useAveragedWeights()
        let lossEMA = try trainer.heldOutLoss(heldOut, seed: seed &+ 7)
        let bpdEMA = try Evaluate.evaluate(trainer, images: boundSet, seed: seed &+ 17, batchSize: boundImages, label: "demo EMA weights")
        let bpdZero = try BoundEvaluator.evaluateZeroOutput(config, images: boundSet, seed: seed &+ 17, batchSize: boundImages)
        let boundSeconds = Date().timeIntervalSince(boundStart)
        // One sample's reverse chain: 11 snapshots from x_T to x_0.
        var chain: [Tensor] = [], chainLabels: [String] = []
        let snapshots = Set((0...10).map { timesteps - 1 - $0 * (timesteps - 1) / 10 } + [-1])
        let sampleStart = Date()
        let samples = try Sample.sample(trainer, count: count, seed: seed &+ 11) { step in
            if snapshots.contains(step.t) && step.t != 0 { chain.append(step.noisy.slice(axis: 0, start: 0, length: 1)); chainLabels.append("t=\(step.t)") }
            if step.t == 0 { chain.append(step.next.slice(axis: 0, start: 0, length: 1)); chainLabels.append("x0") }
        }
        let sampleSeconds = Date().timeIntervalSince(sampleStart)
        // The same seed through DDIM (η = 0) in 50 steps (improved-diffusion's "ddim50"; evenly spaced sections when no stride fits).
        let ddimSteps = min(50, timesteps)
        let ddimRule = (try? Respacing.improvedDiffusionTimesteps(timesteps: timesteps, sectionCounts: "ddim\(ddimSteps)")) != nil ? "ddim\(ddimSteps)" : "\(ddimSteps)"
        let ddimChoice = SamplerChoice(kind: .ddim, steps: ddimSteps, spacing: .improvedDiffusion(ddimRule), eta: 0)
        let ddimStart = Date()
        let ddimSamples = try Sample.sample(trainer, count: count, seed: seed &+ 11, choice: ddimChoice)
        let ddimSeconds = Date().timeIntervalSince(ddimStart)
        let conditional = try classGrid(trainer, train: train, heldOut: heldOut, labels: labels, choice: ddimChoice, seed: seed, in: dir)
        try PNGWriter.writeGrid(ddimSamples, range: 0...1, caption: "DDIM, eta 0, \(ddimSteps) steps: the same x_T as samples.png", path: dir + "/samples-ddim.png")
        // The same seed through DPM-Solver++(2M) (Lu et al. 2022b) on 20 Karras σ (ρ = 7, σ→t log-linear): 20 network evaluations.
        let dpmSteps = min(Self.dpmppSteps, timesteps)
        var dpmChoice = SamplerChoice(steps: dpmSteps)
        dpmChoice.solver = Self.dpmppSolver
        let dpmStart = Date()
        let dpmSamples = try Sample.sample(trainer, count: count, seed: seed &+ 11, choice: dpmChoice)
        let dpmSeconds = Date().timeIntervalSince(dpmStart)
        try PNGWriter.writeGrid(dpmSamples, range: 0...1, caption: "DPM-Solver++(2M), Karras sigmas, \(dpmSteps) steps: the same x_T", path: dir + "/samples-dpmpp.png")
        try PNGWriter.writeGrid(samples, range: 0...1, caption: "samples: EMA weights, full \(timesteps)-step chain", path: dir + "/samples.png")
        // The chain on the data range [0, 1]: x_T ~ N(0, I) and the early states leave it, and those pixels are marked.
        try PNGWriter.writeStrip(Tensor.concatenate(chain, axis: 0), range: 0...1, labels: chainLabels,
                                 caption: "one sample's reverse chain on [0, 1]: red above 1, blue below 0", path: dir + "/chain.png")
        // The memorisation check: each sample's nearest training image, against the held-out real digits' (`reference`).
        let nearest = NearestNeighbour.search(queries: samples, references: train)
        let nearestDDIM = NearestNeighbour.search(queries: ddimSamples, references: train)
        let nearestDPM = NearestNeighbour.search(queries: dpmSamples, references: train)
        let nearestReal = NearestNeighbour.search(queries: reference, references: train)
        try PNGWriter.writeGrid(Self.pairedRows(samples, Tensor.concatenate(nearest.index.map { train.slice(axis: 0, start: $0, length: 1) }, axis: 0)), range: 0...1, columns: Self.pairColumns(count),
                                caption: "each sample (odd rows) above its nearest training image (even rows)", path: dir + "/nearest.png")
        try writeText(LossCurve.svg(trainer.lossHistory, heldOut: trainer.heldOutHistory, title: "training loss per step (\(diffusion.lossType.rawValue), batch \(batchSize)); held-out: \(String(format: "%.4f", lossBefore)) before, \(String(format: "%.4f", lossAfter)) after"), to: dir + "/loss.svg")
        let meanOf = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
        let data = PixelStatistics(statisticsData, range: 0...1), generated = PixelStatistics(samples, range: 0...1)
        let dpmStats = PixelStatistics(dpmSamples, range: 0...1)
        let ddimStats = PixelStatistics(ddimSamples, range: 0...1), real = PixelStatistics(reference, range: 0...1)
        let f4 = { (v: Double) in String(format: "%.4f", v) }
        let ceiling = "\(count) fresh real images score \(f4(data.histogramDistance(to: real))) (real data against real data at this count: a perfect model scores about this); 0 is identical, 1 disjoint"
        let rmsCeiling = "\(count) fresh real images score \(f4(data.meanImageDistance(to: real))) (sampling noise alone at this count: a perfect model scores about this)"
        let report = """
        # ddpm demo report

        | figure | value | guide |
        |---|---|---|
        | seed | \(seed) | |
        | training images | \(usesUCI ? "\(train.shape[0]) UCI handwritten digits (training split, images 0–\(train.shape[0] - 1); E. Alpaydin and C. Kaynak, UCI ML Repository, CC BY 4.0), 8×8 upsampled to 1×16×16 by repeating pixels, 17 grey levels in [0, 1]" : "\(train.shape[0]) procedurally drawn digits, 1×16×16, values 0 and 1") | |
        | network | preset `demo`, \(trainer.network.parameterCount) parameters | |
        | diffusion | T = \(timesteps), linear β from \(betaStart) to \(betaEnd), mean type \(diffusion.meanType.rawValue), variance \(diffusion.varianceType.rawValue), loss \(diffusion.lossType.rawValue), weighting \(diffusion.weighting.name), clipping to [0, 1] | |
        | optimisation | \(steps) Adam steps of \(batchSize) images, lr \(lr), gradient norm clipped at 1, EMA decay \(emaDecay) (warm-up \(options.emaWarmup.rawValue): min(d, (1 + n)/(10 + n)) at update n; last decay \(f4(options.emaWarmup.decay(emaDecay, afterUpdates: trainer.emaUpdates - 1)))) | |
        | training time | \(String(format: "%.1f", trainSeconds)) s | |
        | held-out loss (\(heldOut.shape[0]) \(usesUCI ? "held-out UCI digits" : "drawn images"), fixed t and ε), before training | \(f4(lossBefore)) | the objective on real images the model never saw; its scale depends on the objective |
        | held-out loss after training (trained weights) | \(f4(lossAfter)) | lower than before training means the model learnt |
        | held-out loss after training (EMA weights) | \(f4(lossEMA)) | the averaged weights that sampled the pictures |
        | held-out bound, trained weights (bits/dim) | \(f4(bpdTrained.mean)) ± \(f4(bpdTrained.standardError)) | Ho et al. eq. 5 over all \(timesteps) steps on the first \(boundImages) held-out images (mean ± standard error); L_0 \(f4(bpdTrained.perStep[0])), prior \(String(format: "%.2e", bpdTrained.prior)); lower is better |
        | held-out bound, EMA weights (bits/dim) | \(f4(bpdEMA.mean)) ± \(f4(bpdEMA.standardError)) | same images and noise; a model whose output is all zeros scores \(f4(bpdZero.mean)) ± \(f4(bpdZero.standardError)); bound time \(String(format: "%.1f", boundSeconds)) s for \(2 * BoundEvaluator.networkEvaluations(images: boundImages, timesteps: timesteps)) network evaluations |
        | sampling | \(count) samples with the EMA weights, full \(timesteps)-step reverse chain, \(String(format: "%.1f", sampleSeconds)) s | |
        | mean pixel: data / samples | \(f4(data.mean)) / \(f4(generated.mean)) | \(count) fresh real images: \(f4(real.mean)); samples should be as close to the data |
        | ink fraction (> 0.5): data / samples | \(f4(data.inkFraction)) / \(f4(generated.inkFraction)) | \(count) fresh real images: \(f4(real.inkFraction)) |
        | histogram distance (total variation, 10 bins) | \(f4(data.histogramDistance(to: generated))) | \(ceiling) |
        | mean-image distance (RMS) | \(f4(data.meanImageDistance(to: generated))) | \(rmsCeiling) |
        | DDIM sampling | same \(count) starts x_T, DDIM η = 0 on the '\(ddimRule)' chain (\(ddimSteps) steps), \(String(format: "%.1f", ddimSeconds)) s (ancestral: \(String(format: "%.1f", sampleSeconds)) s) | |
        | DDIM: mean pixel / ink fraction | \(f4(ddimStats.mean)) / \(f4(ddimStats.inkFraction)) | real: \(f4(real.mean)) / \(f4(real.inkFraction)) |
        | DDIM: histogram distance / mean-image distance to the data | \(f4(data.histogramDistance(to: ddimStats))) / \(f4(data.meanImageDistance(to: ddimStats))) | real: \(f4(data.histogramDistance(to: real))) / \(f4(data.meanImageDistance(to: real))) |
        | DPM-Solver++(2M) sampling | same \(count) starts x_T, \(Self.dpmppSolver.solver) on \(dpmSteps) Karras σ (ρ = 7, final σ = 0, σ→t log-linear), \(dpmSteps) network evaluations per batch, \(String(format: "%.1f", dpmSeconds)) s | |
        | DPM-Solver++(2M): mean pixel / ink fraction | \(f4(dpmStats.mean)) / \(f4(dpmStats.inkFraction)) | real: \(f4(real.mean)) / \(f4(real.inkFraction)) |
        | DPM-Solver++(2M): histogram distance / mean-image distance to the data | \(f4(data.histogramDistance(to: dpmStats))) / \(f4(data.meanImageDistance(to: dpmStats))) | DDIM (\(ddimSteps) steps): \(f4(data.histogramDistance(to: ddimStats))) / \(f4(data.meanImageDistance(to: ddimStats))) |
        | nearest training image: mean distance of samples (ancestral / DDIM / DPM-Solver++) | \(f4(meanOf(nearest.distance))) / \(f4(meanOf(nearestDDIM.distance))) / \(f4(meanOf(nearestDPM.distance))) | \(count) \(usesUCI ? "held-out" : "fresh") real digits: \(f4(meanOf(nearestReal.distance))) (Euclidean over 256 pixels); far below it means copies of training images |
        | nearest training image: smallest distance of a sample | \(f4(nearest.distance.min()!)) | real digits: \(f4(nearestReal.distance.min()!)); 0 is an exact copy |
        \(conditional.reportRows(Date().timeIntervalSince(started)))
        | total time | \(String(format: "%.1f", Date().timeIntervalSince(started))) s | |

        Figures (each PNG carries its caption in a white strip on top; tiles are the 16×16 images upscaled
        \(PNGWriter.defaultScale(side: 16))× by nearest neighbour):

        - `data.png`: the first \(count) training images, for comparison with the samples.
        - `samples.png`: \(count) samples of the EMA weights through the full \(timesteps)-step ancestral chain
          (Ho et al.'s Algorithm 2), from starts x_T drawn with seed \(seed &+ 11).
        - `samples-ddim.png`: the same starts x_T through DDIM (η = 0, \(ddimSteps) steps). Only the start is
          shared: the ancestral chain adds fresh noise z at each of its \(timesteps) steps, while DDIM with η = 0 is a
          deterministic map from x_T, so the same tile usually shows a different digit in the two pictures.
        - `samples-dpmpp.png`: the same starts x_T through DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2; first
          step first order, the step into σ = 0 first order) on \(dpmSteps) Karras σ (eq. 5, ρ = 7, σ_min and σ_max
          the trained σ_0 and σ_{T−1}), the network called at the log-linear timestep of each σ (rounded): another
          deterministic map from x_T, a discretisation of the same probability-flow ODE as DDIM (20 evaluations
          against DDIM's \(ddimSteps)), so its tiles can be compared with `samples-ddim.png` tile by tile.
        - `chain.png`: the first sample's reverse chain, x_T on the left to x_0 on the right, each frame labelled
          with the timestep t whose input it is (x0: the output of the last step). Shown on the data range
          [0, 1]: pixels above 1 are red and below 0 blue, so x_T (standard normal noise) is mostly coloured and
          the colour fades as the chain moves into the data range.
        - `nearest.png`: the memorisation check: each sample of `samples.png` (odd rows) above the training
          image nearest to it (even rows, Euclidean distance over all pixels).
        - `loss.svg`: the training loss of every step (log scale) and, as circles, the held-out loss before
          training, at every tenth of the run and at the end (trained weights, the same t and ε each time).
        \(conditional.figureNote)
        - `checkpoint.h5`: the trained model, for `ddpm sample` (add `--ema` for the averaged weights).

        """
        try OutputFile.write(to: dir + "/report.md") { try report.write(toFile: $0, atomically: false, encoding: .utf8) }
        print(report)
    }

    /// The training images, the held-out images (held-out loss and bound), the real reference set of --count
    /// images for the sample statistics and nearest-neighbour distances, and the set those statistics compare to.
    /// UCI: the training split, the held-out split, its first --count images, and the training images. Procedural:
    /// drawn in that order from one generator (training, 256 held out, --count fresh), statistics against the held-out.
    func dataSets(seed: UInt64) throws -> (train: Tensor, heldOut: Tensor, reference: Tensor, statistics: Tensor, labels: (train: [Int], heldOut: [Int])) {
        if usesUCI {
            let (all, trainLabels) = try UCIDigits.load(split: .train)
            let train = all.slice(axis: 0, start: 0, length: imageCount)
            let (heldOut, heldOutLabels) = try UCIDigits.load(split: .test)
            return (train, heldOut, heldOut.slice(axis: 0, start: 0, length: count), train, (Array(trainLabels.prefix(imageCount)), heldOutLabels))
        }
        var g = RandomGenerator(seed: seed)
        let (train, trainLabels) = DigitImages.make(count: imageCount, generator: &g)
        let (heldOut, heldOutLabels) = DigitImages.make(count: 256, generator: &g)
        // A second real set as large as the samples: its statistics against the held-out set are what a
        // perfect model's samples would score, sampling noise included (drawn after the training and held-out sets, which it leaves unchanged).
        let reference = DigitImages.make(count: count, generator: &g).images
        return (train, heldOut, reference, heldOut, (trainLabels, heldOutLabels))
    }

    /// Columns of the nearest-neighbour picture: the samples' grid width, made even rows of pairs.
    static func pairColumns(_ count: Int) -> Int { Int(Double(count).squareRoot().rounded(.up)) }

    /// Rows of `a` alternating with the same rows of `b` (both N×…), `pairColumns(N)` images per row.
    static func pairedRows(_ a: Tensor, _ b: Tensor) -> Tensor {
        let n = a.shape[0], cols = pairColumns(n)
        var parts: [Tensor] = []
        var start = 0
        while start < n {
            let k = min(cols, n - start)
            parts += [a.slice(axis: 0, start: start, length: k), b.slice(axis: 0, start: start, length: k)]
            if k < cols {   // a short last row: pad both with blank tiles so the pairs stay aligned
                let pad = Tensor(shape: [cols - k] + Array(a.shape.dropFirst()), data: [Double](repeating: 0, count: (cols - k) * a.count / n))
                parts.insert(pad, at: parts.count - 1); parts.append(pad)
            }
            start += k
        }
        return Tensor.concatenate(parts, axis: 0)
    }
}
