import ArgumentParser
import DDPM

/// Network options shared by the commands. `--preset` picks a starting point; each option overrides it.
/// Numbers are parsed unconditionally, so that `--channels -1` reaches the range check instead of being
/// taken for an option.
struct NetworkOptions: ParsableArguments {
    @Option(help: "Starting configuration: default (the seed's 20.9 M U-Net), golden (the golden-file and test network) or demo (the demo's); `ddpm --help` lists them. (default: default)")
    var preset: String?
    @Option(parsing: .unconditional, help: "Image channels (the seed's documented 20,907,649 parameters is --channels 1).") var channels: Int?
    @Option(parsing: .unconditional, help: "Image side length.") var imageSize: Int?
    @Option(parsing: .unconditional, help: "Base width of the U-Net.") var baseChannels: Int?
    @Option(help: "Channel multipliers per level, comma-separated (e.g. 1,2,2).") var channelMults: String?
    @Option(parsing: .unconditional, help: "Residual blocks per level.") var numResBlocks: Int?
    @Option(help: "Resolutions with attention, comma-separated (empty for none).") var attentionResolutions: String?
    @Option(parsing: .unconditional, help: "Time-embedding width.") var timeEmbDim: Int?
    @Option(parsing: .unconditional, help: "Dropout probability.") var dropout: Double?
    @Option(help: "Output activation: identity or sigmoid (the seed's, for parity only).") var outputActivation: String?
    @Option(parsing: .unconditional, help: "K: a class-conditional network (label_emb: K + 1 rows of the time-embedding width, row K the null class). (default: unconditional)") var classes: Int?

    /// The options given on the command line, by flag name.
    var given: [String] {
        [("--preset", preset != nil), ("--channels", channels != nil), ("--image-size", imageSize != nil),
         ("--base-channels", baseChannels != nil), ("--channel-mults", channelMults != nil), ("--num-res-blocks", numResBlocks != nil),
         ("--attention-resolutions", attentionResolutions != nil), ("--time-emb-dim", timeEmbDim != nil),
         ("--dropout", dropout != nil), ("--output-activation", outputActivation != nil), ("--classes", classes != nil)].filter(\.1).map(\.0)
    }

    func configuration() throws -> UNetConfiguration { try configuration(startingFrom: nil) }

    /// The preset (or `base`, when no preset is given) with every given option applied, validated.
    func configuration(startingFrom base: UNetConfiguration?) throws -> UNetConfiguration {
        for (option, value) in [("--channels", channels), ("--image-size", imageSize), ("--base-channels", baseChannels),
                                ("--num-res-blocks", numResBlocks), ("--time-emb-dim", timeEmbDim)] {
            if let value { try requireWidth(option, value) }
        }
        var c = try preset.map(Presets.network) ?? base ?? Presets.network("default")
        if let channels { c.channels = channels }
        if let imageSize { c.imageSize = imageSize }
        if let baseChannels { c.baseChannels = baseChannels }
        if let channelMults {
            c.channelMultipliers = try Presets.integers(channelMults, option: "--channel-mults")
            for m in c.channelMultipliers { try requireWidth("--channel-mults", m) }
            try requireWidth("--channel-mults (levels)", c.channelMultipliers.count)
        }
        if let numResBlocks { c.residualBlocksPerLevel = numResBlocks }
        if let attentionResolutions { c.attentionResolutions = try Presets.integers(attentionResolutions, option: "--attention-resolutions") }
        if let timeEmbDim { c.timeEmbeddingDim = timeEmbDim }
        if let dropout { c.dropout = dropout }
        if let classes { c.classes = classes }
        if let outputActivation {
            guard let a = OutputActivation(rawValue: outputActivation) else {
                throw DDPMError(.invalidValue, "--output-activation '\(outputActivation)': expected identity or sigmoid")
            }
            c.outputActivation = a
        }
        try c.validate()
        return c
    }
}
