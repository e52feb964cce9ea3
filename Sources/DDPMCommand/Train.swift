import ArgumentParser
import DDPM
import Foundation

/// Diffusion options of `train`.
struct DiffusionOptions: ParsableArguments {
    @Option(help: "Diffusion steps T.") var timesteps: Int = 1000
    @Option(help: "β schedule: linear, quadratic, warmup10, warmup50, constant, jsd, cosine, sigmoid.") var betaSchedule: String = "linear"
    @Option(help: "First β (linear, quadratic, warmup, sigmoid).") var betaStart: Double = 1e-4
    @Option(help: "Last β (linear, quadratic, warmup, sigmoid), or the β of the constant schedule.") var betaEnd: Double = 0.02
    @Option(help: "The cosine schedule's offset s.") var cosineS: Double = 0.008

    func configuration() throws -> DiffusionConfiguration {
        let schedule = try BetaSchedule.named(betaSchedule, parameters: ["beta_start": betaStart, "beta_end": betaEnd, "cosine_s": cosineS])
        let d = DiffusionConfiguration(schedule: schedule, timesteps: timesteps)
        try d.validate()
        return d
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a DDPM on images in an HDF5 file (N×C×H×W; float64, float32 or uint8).")

    @Option(help: "HDF5 file of training images.") var data: String
    @Option(help: "Dataset in the file (default: 'images', or the only root dataset).") var dataset: String?
    @Option(help: "Checkpoint to write (atomically; periodically and at the end).") var out: String
    @Option(help: "Total optimisation steps to reach (a resumed run continues up to this step).") var steps: Int = 1000
    @Option(help: "Images per step.") var batchSize: Int = 32
    @Option(help: "Adam learning rate.") var lr: Double = 2e-4
    @Option(help: "Seed of the weights and of all training randomness.") var seed: Int = 0
    @Option(help: "Decay of the exponential moving average of the weights.") var emaDecay: Double = 0.9999
    @Option(help: "Write the checkpoint every this many steps (0: only at the end).") var checkpointEvery: Int = 500
    @Option(help: "Continue from this checkpoint (its configuration and options are used).") var resume: String?
    @OptionGroup var network: NetworkOptions
    @OptionGroup var diffusion: DiffusionOptions

    func run() throws {
        guard steps > 0 else { throw DDPMError(.invalidValue, "--steps: expected a positive number, got \(steps)") }
        guard checkpointEvery >= 0 else { throw DDPMError(.invalidValue, "--checkpoint-every: expected 0 or a positive number, got \(checkpointEvery)") }
        let trainer: Trainer
        if let resume {
            trainer = try Trainer.load(from: resume)
        } else {
            var options = TrainingOptions()
            options.batchSize = batchSize; options.learningRate = lr; options.emaDecay = emaDecay
            let config = ModelConfiguration(network: try network.configuration(), diffusion: try diffusion.configuration())
            trainer = try Trainer(config: config, options: options, seed: seedValue(seed))
        }
        let c = trainer.config.network
        let images = try ImageData.load(path: data, dataset: dataset, channels: c.channels, imageSize: c.imageSize)
        guard trainer.step < steps else { throw DDPMError(.invalidValue, "--steps \(steps): the checkpoint is already at step \(trainer.step)") }
        note("training \(trainer.network.parameterCount) parameters on \(images.shape[0]) images from step \(trainer.step) to \(steps)")
        try Self.loop(trainer, images: images, until: steps, checkpointEvery: checkpointEvery, out: out)
        print("wrote \(out) at step \(trainer.step)")
    }

    /// Runs steps up to `until`, with progress, writing the checkpoint periodically and at the end.
    static func loop(_ trainer: Trainer, images: Tensor, until: Int, checkpointEvery: Int, out: String?, label: String = "train") throws {
        let progress = Progress(label, total: until)
        var smoothed: Double?
        while trainer.step < until {
            let loss = try trainer.trainStep(on: images)
            guard loss.isFinite else { throw DDPMError(.diverged, "training diverged: loss is \(loss) at step \(trainer.step)") }
            smoothed = smoothed.map { 0.98 * $0 + 0.02 * loss } ?? loss
            progress.update(trainer.step, loss: smoothed)
            if let out, checkpointEvery > 0, trainer.step % checkpointEvery == 0, trainer.step < until { try trainer.save(to: out) }
        }
        if let out { try trainer.save(to: out) }
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sample images from a checkpoint: ancestral (full or respaced chain) or DDIM.")

    @Option(help: "Checkpoint written by `ddpm train`.") var checkpoint: String
    @Option(help: "Number of images.") var count: Int = 16
    @Option(help: "Seed of the sampling noise.") var seed: Int = 0
    @Flag(help: "Use the exponential moving average of the weights.") var ema = false
    @Option(help: "PNG grid to write.") var out: String
    @Option(help: "Also write the samples (N×C×H×W float64, dataset 'samples') to this HDF5 file.") var h5: String?
    @OptionGroup(title: "Sampler") var sampling: SamplerOptions

    func run() throws {
        guard count > 0 else { throw DDPMError(.invalidValue, "--count: expected a positive number, got \(count)") }
        let choice = try sampling.choice()
        let trainer = try Trainer.load(from: checkpoint)
        if ema { trainer.useAveragedWeights() }
        let samples = try Self.sample(trainer, count: count, seed: seedValue(seed), choice: choice)
        try PNGWriter.writeGrid(samples, range: trainer.config.diffusion.dataRange, path: out)
        if let h5 {
            try HDF5Writer.write(to: h5) { try $0.write(samples.data, shape: samples.shape, to: "/samples") }
        }
        print("wrote \(out)" + (h5.map { " and \($0)" } ?? "") + ": \(count) samples, seed \(seed)\(ema ? ", EMA weights" : ""), \(choice)")
    }

    /// The reverse chain `choice` describes (default: the full ancestral chain) with progress; `onStep` sees every step.
    static func sample(_ trainer: Trainer, count: Int, seed: UInt64, choice: SamplerChoice = SamplerChoice(),
                       onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        trainer.ddpm.generator = RandomGenerator(seed: seed)
        let sampler = try choice.makeSampler(for: trainer.config.makeDiffusion())
        let progress = Progress("sample", total: sampler.stepCount)
        var done = 0
        return try trainer.ddpm.sample(batchSize: count, sampler: sampler) { step in
            onStep?(step)
            done += 1
            progress.update(done)
        }
    }
}
