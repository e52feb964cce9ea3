// The U-Net's hyper-parameters, their defaults (the seed's network) and their validation.

import Errors

/// What the network applies to its last convolution's output.
public enum OutputActivation: String, Sendable, CaseIterable {
    /// No activation: an ε-predictor must be able to output any real number (our default).
    case identity
    /// The seed's network ends in a sigmoid, so ε̂ ∈ (0, 1); kept for exact parity only.
    case sigmoid
}

/// Hyper-parameters of the seed's U-Net. The defaults reproduce it (with `channels = 3`).
public struct UNetConfiguration: Sendable, Equatable {
    /// Input and output channels.
    public var channels = 3
    public var baseChannels = 128
    public var channelMultipliers = [1, 2, 2]
    public var residualBlocksPerLevel = 2
    /// Resolutions (image side lengths) at which attention blocks are inserted.
    public var attentionResolutions = [16]
    public var imageSize = 32
    public var timeEmbeddingDim = 512
    public var dropout = 0.1
    public var outputActivation = OutputActivation.identity
    /// Groups of every GroupNorm (the seed: 32).
    public var normGroups = 32
    /// Whether the network also outputs a variance: then `final_conv` has 2 × channels outputs (the mean
    /// part first, as improved-diffusion's `learn_sigma`); every other parameter is unchanged.
    public var outputsVariance = false
    /// K, the number of classes of a class-conditional network (nil: unconditional, the seed's network).
    /// Then `label_emb` (improved-diffusion's name) is an embedding table of K + 1 rows of the time-embedding
    /// width, added to the time embedding; row K is the null class, the unconditional prediction (k-diffusion).
    public var classes: Int? = nil

    /// The output channels: ``channels``, or twice that with ``outputsVariance``.
    public var outputChannels: Int { outputsVariance ? 2 * channels : channels }

    public init() {}

    public init(channels: Int = 3, baseChannels: Int = 128, channelMultipliers: [Int] = [1, 2, 2], residualBlocksPerLevel: Int = 2,
                attentionResolutions: [Int] = [16], imageSize: Int = 32, timeEmbeddingDim: Int = 512, dropout: Double = 0.1,
                outputActivation: OutputActivation = .identity, normGroups: Int = 32, outputsVariance: Bool = false, classes: Int? = nil) {
        self.channels = channels; self.baseChannels = baseChannels; self.channelMultipliers = channelMultipliers
        self.residualBlocksPerLevel = residualBlocksPerLevel; self.attentionResolutions = attentionResolutions
        self.imageSize = imageSize; self.timeEmbeddingDim = timeEmbeddingDim; self.dropout = dropout
        self.outputActivation = outputActivation; self.normGroups = normGroups; self.outputsVariance = outputsVariance
        self.classes = classes
    }

    /// The seed's default network with the given number of image channels.
    public static func seed(channels: Int = 3) -> UNetConfiguration { UNetConfiguration(channels: channels) }

    /// Feature-map side length at each level of the down path.
    public var resolutions: [Int] { channelMultipliers.indices.map { imageSize >> $0 } }

    /// Throws unless every constraint holds.
    public func validate() throws {
        func positive(_ name: String, _ v: Int) throws {
            guard v > 0 else { throw DDPMError(.invalidConfiguration, "\(name): expected a positive number, got \(v)") }
        }
        try positive("channels", channels); try positive("base channels", baseChannels)
        try positive("residual blocks per level", residualBlocksPerLevel); try positive("image size", imageSize)
        try positive("time embedding width", timeEmbeddingDim); try positive("norm groups", normGroups)
        guard !channelMultipliers.isEmpty else { throw DDPMError(.invalidConfiguration, "channel multipliers: expected at least one level, got none") }
        for m in channelMultipliers { try positive("channel multiplier", m) }
        guard timeEmbeddingDim % 2 == 0 && timeEmbeddingDim >= 4 else {
            throw DDPMError(.invalidConfiguration, "time embedding width: expected an even number ≥ 4, got \(timeEmbeddingDim)")
        }
        if let k = classes {
            guard k > 0 && k <= 1 << 20 else { throw DDPMError(.invalidConfiguration, "classes: expected a number of classes in 1 ... \(1 << 20), got \(k)") }
        }
        guard dropout >= 0 && dropout < 1 else { throw DDPMError(.invalidConfiguration, "dropout: expected a probability in [0, 1), got \(dropout)") }
        let halvings = channelMultipliers.count - 1
        guard imageSize % (1 << halvings) == 0 else {
            throw DDPMError(.invalidConfiguration, "image size \(imageSize): the down path halves it \(halvings) time(s), so it must be divisible by \(1 << halvings)")
        }
        for r in attentionResolutions where !resolutions.contains(r) {
            throw DDPMError(.invalidConfiguration, "attention resolution \(r): the network never reaches it (its resolutions are \(resolutions))")
        }
        for w in layout.normWidths where w % normGroups != 0 {
            throw DDPMError(.invalidConfiguration, "width \(w) is not divisible by the \(normGroups) norm groups (base channels \(baseChannels), multipliers \(channelMultipliers))")
        }
    }

    /// The network's layout: the one description of its widths and resolutions, from which the
    /// initialiser builds the layers and the validation checks the norm widths.
    public var layout: UNetLayout {
        let base = baseChannels
        var down: [UNetLayout.Level] = [], width = base
        for (i, m) in channelMultipliers.enumerated() {
            let out = base * m
            let blocks = (0..<residualBlocksPerLevel).map { j in UNetLayout.Block(input: j == 0 ? width : out, output: out) }
            down.append(.init(resolution: resolutions[i], blocks: blocks, attention: attentionResolutions.contains(resolutions[i])))
            width = out
        }
        let middle = width
        var up: [UNetLayout.Level] = []
        for (i, level) in down.reversed().enumerated() {
            // The first block of each up level also takes the skip from the matching down level.
            let out = level.width
            let blocks = (0..<residualBlocksPerLevel).map { j in UNetLayout.Block(input: j == 0 ? width + out : out, output: out) }
            up.append(.init(resolution: resolutions.reversed()[i], blocks: blocks, attention: level.attention))
            width = out
        }
        return UNetLayout(stem: base, down: down, middle: middle, up: up)
    }
}

/// The U-Net's widths and resolutions, level by level (the seed's architecture):
///
///     init_conv → [down level: blocks, attention?, downsample (all but the last)] → middle (block, attention, block)
///       → [up level: upsample (all but the first), concatenate the down level's output, blocks, attention?]
///       → final_norm → SiLU → final_conv
public struct UNetLayout: Sendable, Equatable {
    public struct Block: Sendable, Equatable { public var input: Int, output: Int }
    public struct Level: Sendable, Equatable {
        public var resolution: Int
        public var blocks: [Block]
        public var attention: Bool
        public var width: Int { blocks.last?.output ?? 0 }
    }
    /// The width `init_conv` produces (the base width).
    public var stem: Int
    public var down: [Level]
    public var middle: Int
    public var up: [Level]
    /// The width `final_norm` and `final_conv` see.
    public var final: Int { up.last?.width ?? middle }
    /// Every width a GroupNorm normalises: each block's input and output, each attention width, the final width.
    public var normWidths: [Int] {
        Array(Set((down + up).flatMap { $0.blocks.flatMap { [$0.input, $0.output] } } + [middle, final])).sorted()
    }
}
