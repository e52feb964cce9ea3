// The forward-process figure of Notes/03: x_t at several t on data images.

import Foundation

/// x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. eq. 4, `GaussianDiffusion.qSample`) at several t for a few data
/// images, laid out one image per row: x_0 first, then x_t at each t. Each image draws one ε (1×C×H×W) that
/// every column of its row shares, so that the row shows the same noise growing while the signal fades.
public enum ForwardProcessFigure {
    /// The columns, in code indices: paper t = 1, 50, 100, 250, 500, 750, 1000 for T = 1000.
    public static let defaultTimesteps = [0, 49, 99, 249, 499, 749, 999]

    /// The images of the figure, row by row: for each image n of `images` (N×C×H×W), x_0 and then x_t at
    /// every t of `timesteps` with the noise `noise[n]` — (N · (1 + timesteps.count))×C×H×W.
    public static func states(of images: Tensor, at timesteps: [Int], noise: Tensor, diffusion: GaussianDiffusion) throws -> Tensor {
        guard noise.shape == images.shape else {
            throw DDPMError(.shapeMismatch, "forward-process figure: noise of shape \(noise.shape) for images of shape \(images.shape)")
        }
        var rows: [Tensor] = []
        for n in 0..<images.shape[0] {
            let x0 = images.slice(axis: 0, start: n, length: 1), eps = noise.slice(axis: 0, start: n, length: 1)
            rows.append(x0)
            for t in timesteps { rows.append(try diffusion.qSample(start: x0, t: [t], noise: eps)) }
        }
        return Tensor.concatenate(rows, axis: 0)
    }

    /// Writes the figure as a PNG grid: the first `count` images of the demo's training set (``DigitImages``
    /// drawn from `seed`, as `ddpm demo --seed` draws them), ε from `seed + 1`, Ho et al.'s linear schedule on T =
    /// 1000 steps and data range [0, 1]; every cell shown on [−1, 2] (as `chain-x0.png` shows x_t), so x_0's 0
    /// and 1 are dark and light grey and the noise of x_t stays visible.
    public static func write(to path: String, count: Int = 3, seed: UInt64 = 0, timesteps: [Int] = defaultTimesteps) throws {
        var g = RandomGenerator(seed: seed)
        let images = DigitImages.make(count: count, generator: &g).images
        var n = RandomGenerator(seed: seed &+ 1)
        let noise = Tensor.randomNormal(images.shape, generator: &n)
        let diffusion = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1)
        let grid = try states(of: images, at: timesteps, noise: noise, diffusion: diffusion)
        try PNGWriter.writeGrid(grid, range: -1...2, columns: 1 + timesteps.count, scale: 3, path: path)
    }
}
