// The seed's U-Net (the 20.9 M network), a noise predictor ε_θ(x_t, t). It knows nothing of schedules:
// t is just an integer fed to the sinusoidal embedding. Its layers are built from one description,
// ``UNetConfiguration/layout``, and named once, in ``children``; the state-dict names, the parameter
// list, the ledger and the cost (``forwardMultiplyAdds(batch:)``) all follow from those.

import Tensors

public final class UNet: Module {
    /// One level of the down or up path: its residual blocks and its optional attention block.
    public struct Level {
        public let blocks: [ResidualBlock]
        public let attention: AttentionBlock?
    }

    public let configuration: UNetConfiguration
    public let timeMLP: (Linear, Linear)
    /// `label_emb`: K + 1 rows of the time-embedding width (row K: the null class), for ``UNetConfiguration/classes`` = K; nil when unconditional.
    public let labelEmbedding: Embedding?
    public let initialConv: Conv2d
    public let down: [Level]
    public let downsamples: [Conv2d]
    public let middle: (ResidualBlock, AttentionBlock, ResidualBlock)
    /// `upsamples[i]` runs before up level i + 1 (after nearest-neighbour ×2 upsampling).
    public let upsamples: [Conv2d]
    public let up: [Level]
    public let finalNorm: GroupNorm
    public let finalConv: Conv2d
    /// Dropout is active only in training mode.
    public var isTraining = true
    /// The generator of dropout masks (part of a checkpoint's random state). The forward pass in training
    /// mode draws from it, so a network is mutable state: do not share one across concurrent tasks.
    public var dropoutGenerator: RandomGenerator

    /// Builds and initialises the network as PyTorch would by default (from `seed`), in state-dict order.
    public init(_ c: UNetConfiguration = UNetConfiguration(), seed: UInt64 = 0) throws {
        try c.validate()
        configuration = c
        var g = RandomGenerator(seed: seed)
        dropoutGenerator = RandomGenerator(seed: seed ^ 0xD1B5_4A32_D192_ED03)
        let layout = c.layout, (groups, temb, p) = (c.normGroups, c.timeEmbeddingDim, c.dropout)
        func blocks(_ level: UNetLayout.Level) -> [ResidualBlock] {
            level.blocks.map { ResidualBlock($0.input, $0.output, timeDim: temb, groups: groups, dropout: p, generator: &g) }
        }
        timeMLP = (Linear(temb, 4 * temb, generator: &g), Linear(4 * temb, temb, generator: &g))
        initialConv = Conv2d(c.channels, layout.stem, kernel: 3, padding: 1, generator: &g)
        // PyTorch registers all down blocks, then the downsamples, then the attention blocks.
        let downBlocks = layout.down.map(blocks)
        downsamples = layout.down.dropLast().map { Conv2d($0.width, $0.width, kernel: 3, stride: 2, padding: 1, generator: &g) }
        let downAttention = layout.down.map { $0.attention ? AttentionBlock($0.width, groups: groups, generator: &g) : nil }
        down = zip(downBlocks, downAttention).map { Level(blocks: $0, attention: $1) }
        middle = (ResidualBlock(layout.middle, layout.middle, timeDim: temb, groups: groups, dropout: p, generator: &g),
                  AttentionBlock(layout.middle, groups: groups, generator: &g),
                  ResidualBlock(layout.middle, layout.middle, timeDim: temb, groups: groups, dropout: p, generator: &g))
        upsamples = layout.up.dropLast().map { Conv2d($0.width, $0.width, kernel: 3, padding: 1, generator: &g) }
        let upBlocks = layout.up.map(blocks)
        let upAttention = layout.up.map { $0.attention ? AttentionBlock($0.width, groups: groups, generator: &g) : nil }
        up = zip(upBlocks, upAttention).map { Level(blocks: $0, attention: $1) }
        finalNorm = GroupNorm(groups: groups, channels: layout.final)
        finalConv = Conv2d(layout.final, c.outputChannels, kernel: 3, padding: 1, generator: &g)
        // From a generator of its own, so that every other weight of a conditional network is the
        // unconditional network's of the same seed.
        var labelGenerator = RandomGenerator(seed: seed ^ 0x1ABE_1E3B_ED00_0001)
        labelEmbedding = c.classes.map { Embedding($0 + 1, temb, generator: &labelGenerator) }
    }

    /// The state-dict names of the seed's PyTorch module (see `Fixtures/unet-parameters.tsv`).
    public var children: [(name: String, module: any Module)] {
        func levels(_ levels: [Level]) -> ModuleList { ModuleList(levels.map { ModuleList($0.blocks) }) }
        func attention(_ levels: [Level]) -> ModuleDict {
            ModuleDict(levels.enumerated().compactMap { i, l in l.attention.map { (String(i), $0 as any Module) } })
        }
        return [("time_mlp", ModuleDict([("0", timeMLP.0), ("2", timeMLP.1)]))]   // time_mlp.1 is the SiLU
            + (labelEmbedding.map { [("label_emb", $0 as any Module)] } ?? [])      // improved-diffusion's name, after the time embedding
            + [("init_conv", initialConv),
                ("down_resblocks", levels(down)), ("downsample", ModuleList(downsamples)), ("down_attn", attention(down)),
                ("mid_block1", middle.0), ("mid_attn", middle.1), ("mid_block2", middle.2),
                // upsample.k is Sequential(Upsample, Conv2d): the convolution is its entry 1.
                ("upsample", ModuleList(upsamples.map { ModuleDict([("1", $0)]) })),
                ("up_resblocks", levels(up)), ("up_attn", attention(up)),
                ("final_norm", finalNorm), ("final_conv", finalConv)]
    }

    /// The time embedding: sinusoidal → Linear → SiLU → Linear (N × time-embedding width).
    public func timeEmbedding(_ t: [Int]) -> Tensor {
        let e = ActivationTap.output(named: "time_embedding", kind: "SinusoidalEmbedding", sinusoidalEmbedding(t, dim: configuration.timeEmbeddingDim))
        return timeMLP.1(timeMLP.0(e).silu())
    }

    /// The conditioning embedding the residual blocks see: the time embedding, plus row y_n of `label_emb`
    /// for a class-conditional network (improved-diffusion's `emb = time_embed(t) + label_emb(y)`), N × width.
    /// `labels` nil means every label the null class K (the unconditional prediction); an unconditional
    /// network takes no labels.
    public func embedding(_ t: [Int], labels: [Int]?) -> Tensor {
        let temb = timeEmbedding(t)
        guard let table = labelEmbedding else {
            precondition(labels == nil, "UNet: labels given to an unconditional network")
            return temb
        }
        let k = table.weight.shape[0] - 1
        let y = labels ?? [Int](repeating: k, count: t.count)
        precondition(y.count == t.count, "UNet: \(y.count) labels for \(t.count) timesteps")
        return temb + table(y)
    }

    /// ε_θ(x, t) for `x` of shape N × channels × imageSize × imageSize and N timesteps; the output has
    /// ``UNetConfiguration/outputChannels`` channels (2 × channels, mean part first, when it outputs a variance).
    /// A class-conditional network called without labels gives the unconditional prediction (null class).
    public func callAsFunction(_ x: Tensor, _ t: [Int]) -> Tensor { self(x, t, labels: nil) }

    /// ε_θ(x, t, y): the class-conditional prediction (labels in 0 ... K, K the null class; nil: all null).
    public func callAsFunction(_ x: Tensor, _ t: [Int], labels: [Int]?) -> Tensor {
        precondition(t.count == x.shape[0], "UNet: \(t.count) timesteps for a batch of \(x.shape[0])")
        return self(x, embedding: embedding(t, labels: labels))
    }

    /// The network on a given conditioning embedding (N × time-embedding width): the body every call runs.
    public func callAsFunction(_ x: Tensor, embedding temb: Tensor) -> Tensor {
        let c = configuration
        precondition(x.rank == 4 && x.shape[1] == c.channels && x.shape[2] == c.imageSize && x.shape[3] == c.imageSize,
                     "UNet: input \(x.shape) does not match [N, \(c.channels), \(c.imageSize), \(c.imageSize)]")
        precondition(temb.shape == [x.shape[0], c.timeEmbeddingDim], "UNet: embedding \(temb.shape) for a batch of \(x.shape[0]) (width \(c.timeEmbeddingDim))")
        func run(_ block: ResidualBlock, _ h: Tensor) -> Tensor { block(h, temb, training: isTraining, generator: &dropoutGenerator) }
        var h = initialConv(x)
        var skips: [Tensor] = []
        for (i, level) in down.enumerated() {
            for block in level.blocks { h = run(block, h) }
            if let a = level.attention { h = a(h) }
            skips.append(h)
            if i < downsamples.count { h = downsamples[i](h) }
        }
        h = middle.1(run(middle.0, h))
        h = run(middle.2, h)
        for (i, level) in up.enumerated() {
            if i > 0 { h = upsamples[i - 1](h.upsampleNearest2x()) }
            h = Tensor.concatenate([h, skips.removeLast()], axis: 1)
            for block in level.blocks { h = run(block, h) }
            if let a = level.attention { h = a(h) }
        }
        let out = finalConv(finalNorm.normalizedSiLU(h))
        return c.outputActivation == .sigmoid ? out.sigmoid() : out
    }

    /// Multiply–adds of one forward pass for a batch of `n`, counted while the pass runs: every
    /// convolution (N·O·P·C·k²), linear layer (N·in·out) and both attention products (2·N·C·P²).
    /// Elementwise work (norms, activations, softmax, additions) is not counted; FLOPs are 2 × this.
    /// Runs one forward pass (evaluation mode, no graph), so it costs what a forward pass costs.
    public func forwardMultiplyAdds(batch n: Int) -> Int {
        let c = configuration
        let x = Tensor.zeros([n, c.channels, c.imageSize, c.imageSize])
        return withMode(training: false) {
            MultiplyAddCounter.counting { _ = withoutGradients { self(x, [Int](repeating: 0, count: n)) } }
        }
    }
}

extension UNet: ModeSwitching {}
