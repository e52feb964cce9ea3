import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm train-classifier`: the noisy classifier p_φ(y | x_t, t) of classifier guidance (Dhariwal & Nichol 2021),
/// trained by cross-entropy on x_t = q_sample(x_0, t) at uniform t (``ClassifierTrainer``).
struct TrainClassifier: FileCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-classifier",
        abstract: "Train a noisy classifier p(y | x_t, t) for classifier guidance on labelled images (a dataset 'labels' beside 'images').",
        discussion: """
        The network is the U-Net's encoder half (time embedding, down path, middle block) with guided-diffusion's \
        adaptive pooled head; without --preset it is the demo preset's encoder at the data's channels and side. \
        The diffusion options must be those of the model the classifier will guide (`ddpm sample --classifier` \
        checks T and the schedule). --held-out prints the accuracy on another labelled file at one uniform t per \
        image, overall and per quarter of the timesteps.
        """)

    @Option(help: "HDF5 file of training images with a dataset 'labels' (one class 0 ..< K per image).") var data: String
    @Option(help: "Labelled images to report the accuracy on after training.") var heldOut: String?
    @Option(help: "Classifier checkpoint to write (periodically and at the end).") var out: String
    @Option(name: .customLong("train-steps"), parsing: .unconditional, help: "Optimisation steps.") var steps: Int = 1000
    @Option(parsing: .unconditional, help: "Images per step.") var batchSize: Int = 32
    @Option(parsing: .unconditional, help: "Adam learning rate, in (0, 1] (guided-diffusion's classifier: 3e-4).") var lr: Double = 3e-4
    @Option(parsing: .unconditional, help: "Seed of the weights and of all training randomness.") var seed: Int = 0
    @Option(parsing: .unconditional, help: "K, the classes of the noisy classifier (default: the largest training label + 1).") var classifierClasses: Int?
    @Option(parsing: .unconditional, help: "Write the checkpoint every this many steps (0: only at the end).") var checkpointEvery: Int = 500
    @Flag(help: "Replace --out if it exists.") var force = false
    @OptionGroup var network: NetworkOptions
    @OptionGroup var diffusion: DiffusionOptions

    var options: TrainingOptions {
        var o = TrainingOptions()
        o.batchSize = batchSize; o.learningRate = lr
        return o
    }

    func checkOptions() throws {
        try requireRange("--train-steps", steps, 1...Int.max)
        try requireRange("--checkpoint-every", checkpointEvery, 0...Int.max, "0 or a positive number")
        if let t = diffusion.timesteps { try requireRange("--timesteps", t, 1...Int.max) }
        if let k = classifierClasses { try requireRange("--classifier-classes", k, 2...widthLimit) }
        try refuseIfGiven(network.classes != nil, "--classes", "makes a class-conditional network (a label embedding); a classifier has none: its number of classes is --classifier-classes")
        try naming(["learning rate": "--lr", "batch size": "--batch-size"]) { try options.validate() }
        _ = try seedValue(seed)
        let o = diffusion.objective
        for (flag, given) in [("--mean-type", o.meanType != nil), ("--variance", o.variance != nil), ("--loss", o.loss != nil),
                              ("--min-snr", o.minSnr != nil), ("--timestep-sampler", diffusion.timestepSampler != nil)] {
            try refuseIfGiven(given, flag, "is an option of the denoiser's objective; the classifier is trained by cross-entropy at uniform t")
        }
        try refuseIfGiven(network.outputActivation != nil, "--output-activation", "describes an image output; a classifier has none")
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--data", data)
        plan.input("--held-out", heldOut)
        plan.output("--out", out, mayReplace: force)
        return plan
    }

    /// The network: the options over the demo preset's encoder at the data's channels and side (read from metadata).
    func networkConfiguration() throws -> UNetConfiguration {
        var base = try Presets.network("demo")
        let file = try namingFile(data) { try HDF5File(path: data) }
        if file.exists("/images"), let shape = try? file.shape(of: "/images"), shape.count == 4, shape[2] >= 2 {
            try requireWidth("--data \(data) images' channels", shape[1]); try requireWidth("--data \(data) images' side", shape[2])
            base.channels = shape[1]; base.imageSize = shape[2]; base.attentionResolutions = [shape[2] / 2]
        }
        return try network.configuration(startingFrom: base)
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.diffusion(timesteps: diffusion.timesteps ?? 1000, "--timesteps \(diffusion.timesteps ?? 1000) diffusion tables")
        try f.check()
        f.network(try networkConfiguration(), batch: max(batchSize, 64), training: true, network: "the classifier", images: "--batch-size \(batchSize) (or the evaluation batch of 64)")
        return f
    }

    /// Images and labels of a labelled file; errors name the option and the file.
    static func labelled(_ option: String, _ path: String, _ c: UNetConfiguration, range: ClosedRange<Double>) throws -> (images: Tensor, labels: [Int]) {
        let images = try namingFile(path) { try ImageData.load(path: path, dataset: nil, channels: c.channels, imageSize: c.imageSize, range: range) }
        guard let labels = try namingFile(path, { try ImageData.loadLabels(path: path, count: images.shape[0]) }) else {
            throw DDPMError(.malformedFile, "\(option) \(path): no dataset 'labels' (one class per image); a classifier needs labelled images")
        }
        return (images, labels)
    }

    func work() throws {
        let c = try networkConfiguration()
        let d = try diffusion.configuration()
        let train = try Self.labelled("--data", data, c, range: d.dataRange)
        let k = classifierClasses ?? max(2, (train.labels.max() ?? 0) + 1)
        let trainer = try ClassifierTrainer(config: ModelConfiguration(network: c, diffusion: d), classes: k, options: options, seed: try seedValue(seed))
        try trainer.checkLabels(train.labels, images: train.images, "--data \(data)")
        let heldOut = try self.heldOut.map { path in
            let h = try Self.labelled("--held-out", path, c, range: d.dataRange)
            try trainer.checkLabels(h.labels, images: h.images, "--held-out \(path)")
            return h
        }
        note("training a classifier of \(trainer.network.parameterCount) parameters on \(train.images.shape[0]) images, \(k) classes, T = \(d.timesteps), \(steps) steps")
        let progress = Progress("train-classifier", total: steps)
        var smoothed: Double?
        while trainer.step < steps {
            let loss = try trainer.trainStep(images: train.images, labels: train.labels)
            guard loss.isFinite else { throw DDPMError(.diverged, "classifier training diverged at step \(trainer.step): the loss is \(loss)") }
            smoothed = smoothed.map { 0.98 * $0 + 0.02 * loss } ?? loss
            progress.update(trainer.step, loss: smoothed)
            if (checkpointEvery > 0 && trainer.step % checkpointEvery == 0) || trainer.step == steps { try trainer.save(to: out) }
        }
        announce("wrote \(out) at step \(trainer.step): \(k) classes, \(trainer.network.parameterCount) parameters")
        if let heldOut, let path = self.heldOut {
            let a = try trainer.evaluate(images: heldOut.images, labels: heldOut.labels, seed: try seedValue(seed) &+ 1)
            announce("held-out \(path): \(a)")
        }
    }
}
