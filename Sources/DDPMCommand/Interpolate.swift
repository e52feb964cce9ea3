import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm interpolate`: a strip of images between two DDIM latents (Song et al. §5.3), or between two images
/// through their inverted latents (§5.4).
struct Interpolate: FileCommand {
    static let configuration = CommandConfiguration(
        abstract: "Interpolate between two latents (seeds) or two images (encoded by DDIM inversion) and write a PNG strip.",
        discussion: """
        Without --data, --from and --to are seeds of two latents x_T ~ N(0, I). With --data, they are indices of two \
        images in that HDF5 file, encoded into latents by deterministic DDIM inversion over the same chain (the image \
        is the state at chain index 0; improved-diffusion's convention). The latents are joined by spherical \
        interpolation and every frame is decoded with DDIM η = 0 (x̂_0 processed as the checkpoint clips).
        """)

    @Option(help: "Checkpoint written by `ddpm train`.") var checkpoint: String
    @Option(help: "Seed of the first latent, or with --data the index of the first image.") var from: Int
    @Option(help: "Seed of the second latent, or with --data the index of the second image.") var to: Int
    @Option(help: "HDF5 file of images (N×C×H×W) to encode instead of drawing latents.") var data: String?
    @Option(help: "Dataset in --data (default: 'images', or the only root dataset).") var dataset: String?
    @Option(help: "Frames in the strip, both ends included.") var frames: Int = 8
    @Option(name: .customLong("sample-steps"), help: "Sampling steps N of the DDIM chain (improved-diffusion 'ddimN' spacing).") var steps: Int = 50
    @Flag(help: "Use the exponential moving average of the weights.") var ema = false
    @Option(help: "PNG strip to write.") var out: String
    @Flag(help: "Replace --out if it exists.") var force = false
    @OptionGroup var random: RandomOption

    func checkOptions() throws {
        try requireRange("--frames", frames, 2...Int.max)
        try requireRange("--sample-steps", steps, 2...Int.max)
        _ = try random.kind()
        if data == nil {
            _ = try seedValue(from, option: "--from"); _ = try seedValue(to, option: "--to")
            try refuseIfGiven(dataset != nil, "--dataset", "applies only with --data (without it, --from and --to are seeds)")
        }
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--checkpoint", checkpoint)
        plan.input("--data", data)
        plan.output("--out", out, mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        let config = try checkpointConfiguration(checkpoint, option: "--checkpoint", into: &f)
        let c = config.network
        guard steps <= config.timesteps else { throw DDPMError(.invalidValue, "--sample-steps: expected between 2 and \(config.timesteps) (the checkpoint's T), got \(steps)") }
        // The latents of the strip, its decoded frames and the grid's bytes.
        f.add("--frames \(frames) frames of \(c.channels)×\(c.imageSize)×\(c.imageSize)", doubles: [frames + 2, c.channels, c.imageSize, c.imageSize], copies: 3)
        f.add("--frames \(frames): the PNG strip", Double((frames + 2) * c.channels) * Double((2 * c.imageSize + 1) * (2 * c.imageSize + 1)))
        f.network(c, batch: frames, training: false, network: "the network of --checkpoint \(checkpoint)", images: "--frames \(frames) frames")
        return f
    }

    func work() throws {
        let rng = try random.kind()
        let trainer = try loadCheckpoint(checkpoint)
        if ema { trainer.useAveragedWeights() }
        let c = trainer.config.network
        let base = try trainer.config.makeDiffusion()
        let chain = try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim\(steps)"), steps: steps)
        let shape = [1, c.channels, c.imageSize, c.imageSize]
        let z0: Tensor, z1: Tensor
        var ends: [Tensor] = []
        if let data {
            let images = try ImageData.load(path: data, dataset: dataset, channels: c.channels, imageSize: c.imageSize)
            for (name, i) in [("--from", from), ("--to", to)] where i < 0 || i >= images.shape[0] {
                throw DDPMError(.invalidValue, "\(name) \(i): expected an image index in [0, \(images.shape[0]))")
            }
            let pair = Tensor.concatenate([images.slice(axis: 0, start: from, length: 1), images.slice(axis: 0, start: to, length: 1)], axis: 0)
            let latents = try Interpolation.encode(pair, model: trainer.network, diffusion: chain)
            (z0, z1) = (latents.slice(axis: 0, start: 0, length: 1), latents.slice(axis: 0, start: 1, length: 1))
            ends = [pair.slice(axis: 0, start: 0, length: 1), pair.slice(axis: 0, start: 1, length: 1)]
        } else {
            var g0 = rng.make(seed: try seedValue(from, option: "--from")), g1 = rng.make(seed: try seedValue(to, option: "--to"))
            (z0, z1) = (Tensor.randomNormal(shape, generator: &g0), Tensor.randomNormal(shape, generator: &g1))
        }
        let strip = try Interpolation.decode(Interpolation.strip(from: z0, to: z1, count: frames), model: trainer.network, diffusion: chain)
        let row = ends.isEmpty ? strip : Tensor.concatenate([ends[0], strip, ends[1]], axis: 0)
        try PNGWriter.writeGrid(row, range: trainer.config.diffusion.dataRange, columns: row.shape[0], path: out)
        announce("wrote \(out): \(frames) frames by DDIM η = 0 over \(steps) steps" + (ends.isEmpty ? " between the latents of seeds \(from) and \(to)"
              : " between images \(from) and \(to) of \(data!) (shown at both ends), encoded by DDIM inversion"))
    }
}
