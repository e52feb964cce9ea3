import Foundation

// Named network configurations, shared by the command line and the library's users.

public enum Presets {
    /// `default`: the seed's network (3 channels, 32×32, 20,912,259 parameters).
    /// `tiny`: a 16×16, 1-channel network with every block type, for golden files and tests.
    /// `small`: the demo's 16×16 grey network.
    public static func network(_ name: String) throws -> UNetConfiguration {
        switch name {
        case "default": return .seed(channels: 3)
        case "tiny":
            return UNetConfiguration(channels: 1, baseChannels: 32, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                                     attentionResolutions: [8], imageSize: 16, timeEmbeddingDim: 32, dropout: 0.1)
        case "small":
            return UNetConfiguration(channels: 1, baseChannels: 32, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                                     attentionResolutions: [8], imageSize: 16, timeEmbeddingDim: 64, dropout: 0)
        default: throw DDPMError(.unknownName, "preset '\(name)': unknown; expected default, tiny or small")
        }
    }

    /// Parses "1,2,2" (spaces allowed, empty for none).
    public static func integers(_ text: String, option: String) throws -> [Int] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return try parts.map { p in
            guard let v = Int(p) else { throw DDPMError(.invalidValue, "\(option) '\(text)': expected comma-separated integers, found '\(p)'") }
            return v
        }
    }
}

/// The named networks as values, for `DDPM(preset:)`; each is ``Presets/network(_:)`` of its name.
public enum NetworkPreset: String, Sendable, CaseIterable {
    /// The seed's network: 3 channels, 32×32, 20,912,259 parameters.
    case `default`
    /// 1 channel, 16×16, every block type, for golden files and tests.
    case tiny
    /// The demo's network: 1 channel, 16×16.
    case small

    /// The network's configuration.
    public var configuration: UNetConfiguration {
        // Every case is a name `Presets.network` knows (Tests/DDPMTests/LibraryEntryTests checks each).
        try! Presets.network(rawValue)
    }
}
