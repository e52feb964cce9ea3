// The seed's U-Net (the 20.9 M network), a noise predictor ε_θ(x_t, t). It knows nothing of schedules:
// t is just an integer fed to the sinusoidal embedding.

import Tensors

public final class UNet: ParameterContainer {
    public let configuration: UNetConfiguration
    public let timeMLP: (Linear, Linear)
    public let initialConv: Conv2d
    public let downBlocks: [[ResidualBlock]]
    public let downsamples: [Conv2d]
    public let downAttention: [Int: AttentionBlock]
    public let middle: (ResidualBlock, AttentionBlock, ResidualBlock)
    public let upsamples: [Conv2d]
    public let upBlocks: [[ResidualBlock]]
    public let upAttention: [Int: AttentionBlock]
    public let finalNorm: GroupNorm
    public let finalConv: Conv2d
    /// Dropout is active only in training mode.
    public var isTraining = true
    /// The generator of dropout masks (part of a checkpoint's random state).
    public var dropoutGenerator: RandomGenerator

    /// Builds and initialises the network as PyTorch would by default (from `seed`).
    public init(_ c: UNetConfiguration = UNetConfiguration(), seed: UInt64 = 0) throws {
        try c.validate()
        configuration = c
        var g = RandomGenerator(seed: seed)
        dropoutGenerator = RandomGenerator(seed: seed ^ 0xD1B5_4A32_D192_ED03)
        let (base, groups, temb, p) = (c.baseChannels, c.normGroups, c.timeEmbeddingDim, c.dropout)
        timeMLP = (Linear(temb, 4 * temb, generator: &g), Linear(4 * temb, temb, generator: &g))
        initialConv = Conv2d(c.channels, base, kernel: 3, padding: 1, generator: &g)
        var down: [[ResidualBlock]] = [], downsample: [Conv2d] = [], dAttn: [Int: AttentionBlock] = [:]
        var current = base
        for (i, m) in c.channelMultipliers.enumerated() {
            let out = base * m
            down.append((0..<c.residualBlocksPerLevel).map { j in
                ResidualBlock(j == 0 ? current : out, out, timeDim: temb, groups: groups, dropout: p, generator: &g)
            })
            current = out
        }
        for (i, _) in c.channelMultipliers.enumerated().dropLast() {
            let w = base * c.channelMultipliers[i]
            downsample.append(Conv2d(w, w, kernel: 3, stride: 2, padding: 1, generator: &g))
        }
        for (i, r) in c.resolutions.enumerated() where c.attentionResolutions.contains(r) {
            dAttn[i] = AttentionBlock(base * c.channelMultipliers[i], groups: groups, generator: &g)
        }
        middle = (ResidualBlock(current, current, timeDim: temb, groups: groups, dropout: p, generator: &g),
                  AttentionBlock(current, groups: groups, generator: &g),
                  ResidualBlock(current, current, timeDim: temb, groups: groups, dropout: p, generator: &g))
        let reversed = Array(c.channelMultipliers.reversed())
        var upsample: [Conv2d] = []
        var width = current
        for i in reversed.indices.dropFirst() {
            // The upsample after level i−1 keeps the width reached there.
            let w = base * reversed[i - 1]
            upsample.append(Conv2d(w, w, kernel: 3, padding: 1, generator: &g))
        }
        var up: [[ResidualBlock]] = []
        for m in reversed {
            let out = base * m
            up.append((0..<c.residualBlocksPerLevel).map { j in
                ResidualBlock(j == 0 ? width + out : out, out, timeDim: temb, groups: groups, dropout: p, generator: &g)
            })
            width = out
        }
        var uAttn: [Int: AttentionBlock] = [:]
        let upResolutions = Array(c.resolutions.reversed())
        for (i, r) in upResolutions.enumerated() where c.attentionResolutions.contains(r) {
            uAttn[i] = AttentionBlock(base * reversed[i], groups: groups, generator: &g)
        }
        downBlocks = down; downsamples = downsample; downAttention = dAttn
        upsamples = upsample; upBlocks = up; upAttention = uAttn
        finalNorm = GroupNorm(groups: groups, channels: width)
        finalConv = Conv2d(width, c.channels, kernel: 3, padding: 1, generator: &g)
    }

    /// Every parameter under its PyTorch/lucid state-dict key, in the order of `unet-parameters.tsv`.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        var out = timeMLP.0.named("time_mlp.0") + timeMLP.1.named("time_mlp.2") + initialConv.named("init_conv")
        for (i, level) in downBlocks.enumerated() { for (j, b) in level.enumerated() { out += b.named("down_resblocks.\(i).\(j)") } }
        for (i, d) in downsamples.enumerated() { out += d.named("downsample.\(i)") }
        for i in downAttention.keys.sorted() { out += downAttention[i]!.named("down_attn.\(i)") }
        out += middle.0.named("mid_block1") + middle.1.named("mid_attn") + middle.2.named("mid_block2")
        for (k, u) in upsamples.enumerated() { out += u.named("upsample.\(k).1") }
        for (i, level) in upBlocks.enumerated() { for (j, b) in level.enumerated() { out += b.named("up_resblocks.\(i).\(j)") } }
        for i in upAttention.keys.sorted() { out += upAttention[i]!.named("up_attn.\(i)") }
        return out + finalNorm.named("final_norm") + finalConv.named("final_conv")
    }

    /// The time embedding: sinusoidal → Linear → SiLU → Linear (N × time-embedding width).
    public func timeEmbedding(_ t: [Int]) -> Tensor {
        timeMLP.1(timeMLP.0(sinusoidalEmbedding(t, dim: configuration.timeEmbeddingDim)).silu())
    }

    /// ε_θ(x, t) for `x` of shape N × channels × imageSize × imageSize and N timesteps.
    public func callAsFunction(_ x: Tensor, _ t: [Int]) -> Tensor {
        let c = configuration
        precondition(x.rank == 4 && x.shape[1] == c.channels && x.shape[2] == c.imageSize && x.shape[3] == c.imageSize,
                     "UNet: input \(x.shape) does not match [N, \(c.channels), \(c.imageSize), \(c.imageSize)]")
        precondition(t.count == x.shape[0], "UNet: \(t.count) timesteps for a batch of \(x.shape[0])")
        let temb = timeEmbedding(t)
        var h = initialConv(x)
        var skips: [Tensor] = []
        for i in downBlocks.indices {
            for block in downBlocks[i] { h = block(h, temb, training: isTraining, generator: &dropoutGenerator) }
            if let a = downAttention[i] { h = a(h) }
            skips.append(h)
            if i < downsamples.count { h = downsamples[i](h) }
        }
        h = middle.0(h, temb, training: isTraining, generator: &dropoutGenerator)
        h = middle.1(h)
        h = middle.2(h, temb, training: isTraining, generator: &dropoutGenerator)
        for i in upBlocks.indices {
            if i > 0 { h = upsamples[i - 1](h.upsampleNearest2x()) }
            h = Tensor.concatenate([h, skips.removeLast()], axis: 1)
            for block in upBlocks[i] { h = block(h, temb, training: isTraining, generator: &dropoutGenerator) }
            if let a = upAttention[i] { h = a(h) }
        }
        let out = finalConv(finalNorm(h).silu())
        return c.outputActivation == .sigmoid ? out.sigmoid() : out
    }

    /// (name, shape, count) for every parameter, in state-dict order.
    public var ledger: [(name: String, shape: [Int], count: Int)] { namedParameters().map { ($0.name, $0.tensor.shape, $0.tensor.count) } }
}
