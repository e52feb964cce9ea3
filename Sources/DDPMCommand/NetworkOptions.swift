import ArgumentParser
import DDPM

/// Network options shared by the commands. `--preset` picks a starting point; each option overrides it.
struct NetworkOptions: ParsableArguments {
    @Option(help: "Starting configuration: default (the seed's 20.9 M U-Net), tiny (for tests and golden files), or small (the demo's).")
    var preset: String = "default"
    @Option(help: "Image channels (the seed's documented 20,907,649 parameters is --channels 1).") var channels: Int?
    @Option(help: "Image side length.") var imageSize: Int?
    @Option(help: "Base width of the U-Net.") var baseChannels: Int?
    @Option(help: "Channel multipliers per level, comma-separated (e.g. 1,2,2).") var channelMults: String?
    @Option(help: "Residual blocks per level.") var numResBlocks: Int?
    @Option(help: "Resolutions with attention, comma-separated (empty for none).") var attentionResolutions: String?
    @Option(help: "Time-embedding width.") var timeEmbDim: Int?
    @Option(help: "Dropout probability.") var dropout: Double?
    @Option(help: "Output activation: identity or sigmoid (the seed's, for parity only).") var outputActivation: String?

    func configuration() throws -> UNetConfiguration {
        var c = try Presets.network(preset)
        if let channels { c.channels = channels }
        if let imageSize { c.imageSize = imageSize }
        if let baseChannels { c.baseChannels = baseChannels }
        if let channelMults { c.channelMultipliers = try Presets.integers(channelMults, option: "--channel-mults") }
        if let numResBlocks { c.residualBlocksPerLevel = numResBlocks }
        if let attentionResolutions { c.attentionResolutions = try Presets.integers(attentionResolutions, option: "--attention-resolutions") }
        if let timeEmbDim { c.timeEmbeddingDim = timeEmbDim }
        if let dropout { c.dropout = dropout }
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
