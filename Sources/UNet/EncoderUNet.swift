// The noisy classifier p_φ(y | x_t, t) of classifier guidance (Dhariwal & Nichol 2021, §4 and App. F): the
// U-Net's encoder half — time embedding, down path, middle block — with a pooled head, as guided-diffusion's
// `EncoderUNetModel` (`guided_diffusion/unet.py`) with `pool="adaptive"`. It knows nothing of schedules:
// t is just the integer the sinusoidal embedding takes, exactly as in ``UNet``.

import Tensors
import Errors

/// How the encoder turns its last feature map into K logits.
public enum EncoderPooling: String, Sendable, CaseIterable {
    /// guided-diffusion's `pool="adaptive"`: GroupNorm → SiLU → `AdaptiveAvgPool2d((1, 1))` (the global
    /// average over the pixels) → 1×1 convolution to K channels → flatten. (Its other poolings, "attention",
    /// "spatial" and "spatial_v2", are not implemented.)
    case adaptive
}

/// A noisy-image classifier: the encoder half of the seed's U-Net and a pooled head.
///
///     temb = time_mlp(sinusoidal(t))                                  N × E
///     h = init_conv(x); down levels (blocks, attention?, downsample but at the last); middle (block, attention, block)
///     logits = out.3(avgpool(SiLU(out.0(h))))                         N × K      (out.0: GroupNorm; out.3: 1×1 conv)
///
/// **Names.** The shared part keeps the project's U-Net names exactly (``UNet``'s `time_mlp`, `init_conv`,
/// `down_resblocks`, `downsample`, `down_attn`, `mid_block1`, `mid_attn`, `mid_block2`, and inside the blocks
/// `norm1`, `conv1`, `time_proj`, …), so a classifier and a denoiser of one configuration share a vocabulary;
/// the head follows guided-diffusion's `out` Sequential, whose entries are GroupNorm (0), SiLU (1), the pool (2)
/// and the 1×1 convolution (3): `out.0.weight`, `out.0.bias`, `out.3.weight` ([K, C, 1, 1]), `out.3.bias` ([K]).
///
/// **Initialisation.** PyTorch's default for every layer, drawn in the order above from `seed` (the shared part
/// draws exactly as ``UNet`` does). guided-diffusion zero-initialises the last convolution (`zero_module`), so
/// its untrained classifier outputs uniform probabilities and a zero input gradient; this one does not, so that
/// an untrained network already has a gradient to check.
///
/// The configuration's ``UNetConfiguration/outputsVariance`` and ``UNetConfiguration/outputActivation`` describe
/// an image output and must keep their defaults. Parameter count: `CountTests` ("encoder ledger by hand").
public final class EncoderUNet: Module {
    public let configuration: UNetConfiguration
    /// K, the number of classes.
    public let classes: Int
    public let pooling: EncoderPooling
    public let timeMLP: (Linear, Linear)
    public let initialConv: Conv2d
    public let down: [UNet.Level]
    public let downsamples: [Conv2d]
    public let middle: (ResidualBlock, AttentionBlock, ResidualBlock)
    public let headNorm: GroupNorm
    public let headConv: Conv2d
    /// Dropout is active only in training mode.
    public var isTraining = true
    /// The generator of dropout masks (the forward pass in training mode draws from it).
    public var dropoutGenerator: RandomGenerator

    /// Builds and initialises the classifier (PyTorch's default initialisation, in state-dict order, from `seed`).
    /// Throws for an invalid configuration, fewer than 2 classes, or an image-output option set.
    public init(_ c: UNetConfiguration, classes: Int, pooling: EncoderPooling = .adaptive, seed: UInt64 = 0) throws {
        try c.validate()
        guard classes >= 2 else { throw DDPMError(.invalidConfiguration, "classes: expected at least 2, got \(classes)") }
        guard !c.outputsVariance, c.outputActivation == .identity else {
            throw DDPMError(.invalidConfiguration, "classifier: the output variance and output activation describe an image output; a classifier has none (got outputsVariance \(c.outputsVariance), activation \(c.outputActivation.rawValue))")
        }
        guard c.classes == nil else {
            throw DDPMError(.invalidConfiguration, "classifier: a label embedding (\(c.classes!) classes) would condition p(y | x_t, t) on the class it predicts; give the configuration no classes")
        }
        configuration = c; self.classes = classes; self.pooling = pooling
        var g = RandomGenerator(seed: seed)
        dropoutGenerator = RandomGenerator(seed: seed ^ 0xD1B5_4A32_D192_ED03)
        let layout = c.layout, (groups, temb, p) = (c.normGroups, c.timeEmbeddingDim, c.dropout)
        timeMLP = (Linear(temb, 4 * temb, generator: &g), Linear(4 * temb, temb, generator: &g))
        initialConv = Conv2d(c.channels, layout.stem, kernel: 3, padding: 1, generator: &g)
        let downBlocks = layout.down.map { level in
            level.blocks.map { ResidualBlock($0.input, $0.output, timeDim: temb, groups: groups, dropout: p, generator: &g) }
        }
        downsamples = layout.down.dropLast().map { Conv2d($0.width, $0.width, kernel: 3, stride: 2, padding: 1, generator: &g) }
        let downAttention = layout.down.map { $0.attention ? AttentionBlock($0.width, groups: groups, generator: &g) : nil }
        down = zip(downBlocks, downAttention).map { UNet.Level(blocks: $0, attention: $1) }
        middle = (ResidualBlock(layout.middle, layout.middle, timeDim: temb, groups: groups, dropout: p, generator: &g),
                  AttentionBlock(layout.middle, groups: groups, generator: &g),
                  ResidualBlock(layout.middle, layout.middle, timeDim: temb, groups: groups, dropout: p, generator: &g))
        headNorm = GroupNorm(groups: groups, channels: layout.middle)
        headConv = Conv2d(layout.middle, classes, kernel: 1, generator: &g)
    }

    public var children: [(name: String, module: any Module)] {
        func attention(_ levels: [UNet.Level]) -> ModuleDict {
            ModuleDict(levels.enumerated().compactMap { i, l in l.attention.map { (String(i), $0 as any Module) } })
        }
        return [("time_mlp", ModuleDict([("0", timeMLP.0), ("2", timeMLP.1)])),
                ("init_conv", initialConv),
                ("down_resblocks", ModuleList(down.map { ModuleList($0.blocks) })), ("downsample", ModuleList(downsamples)),
                ("down_attn", attention(down)),
                ("mid_block1", middle.0), ("mid_attn", middle.1), ("mid_block2", middle.2),
                ("out", ModuleDict([("0", headNorm), ("3", headConv)]))]
    }

    /// The logits of p_φ(y | x_t, t) for `x` of shape N × channels × imageSize × imageSize and N timesteps
    /// (N × K; log p_φ = their log-softmax, ``Tensor/logSoftmax()``).
    public func logits(_ x: Tensor, _ t: [Int]) -> Tensor {
        let c = configuration
        precondition(x.rank == 4 && x.shape[1] == c.channels && x.shape[2] == c.imageSize && x.shape[3] == c.imageSize,
                     "EncoderUNet: input \(x.shape) does not match [N, \(c.channels), \(c.imageSize), \(c.imageSize)]")
        precondition(t.count == x.shape[0], "EncoderUNet: \(t.count) timesteps for a batch of \(x.shape[0])")
        let e = sinusoidalEmbedding(t, dim: c.timeEmbeddingDim)
        let temb = timeMLP.1(timeMLP.0(e).silu())
        func run(_ block: ResidualBlock, _ h: Tensor) -> Tensor { block(h, temb, training: isTraining, generator: &dropoutGenerator) }
        var h = initialConv(x)
        for (i, level) in down.enumerated() {
            for block in level.blocks { h = run(block, h) }
            if let a = level.attention { h = a(h) }
            if i < downsamples.count { h = downsamples[i](h) }
        }
        h = run(middle.2, middle.1(run(middle.0, h)))
        let pooled = headNorm.normalizedSiLU(h).mean(alongAxes: [2, 3], keepingDimensions: true)   // N × C × 1 × 1
        return headConv(pooled).reshaped([x.shape[0], classes])
    }
}

extension EncoderUNet: ModeSwitching {}
