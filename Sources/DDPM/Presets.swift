import Foundation

// Named network configurations, shared by the command line and the library's users.

public enum Presets {
    /// The preset names, in the order `ddpm --help` lists them.
    public static let names = ["golden", "demo", "default"]

    /// Old names still read (old → new): `tiny` was `golden`'s, `small` was `demo`'s.
    public static let renamed = ["tiny": "golden", "small": "demo"]

    /// `golden`: a 16×16, 1-channel network with every block type (dropout 0.1, time embedding 32), for golden
    /// files and tests: 500,289 parameters (`ddpm params --preset golden`).
    /// `demo`: the demo's 16×16 grey network (no dropout, time embedding 64): 535,265 parameters.
    /// `default`: the seed's network (3 channels, 32×32): 20,912,259 parameters.
    /// The old names `tiny` (golden) and `small` (demo) are read too.
    public static func network(_ name: String) throws -> UNetConfiguration {
        switch renamed[name] ?? name {
        case "default": return .seed(channels: 3)
        case "golden":
            return UNetConfiguration(channels: 1, baseChannels: 32, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                                     attentionResolutions: [8], imageSize: 16, timeEmbeddingDim: 32, dropout: 0.1)
        case "demo":
            return UNetConfiguration(channels: 1, baseChannels: 32, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                                     attentionResolutions: [8], imageSize: 16, timeEmbeddingDim: 64, dropout: 0)
        default: throw DDPMError(.unknownName, "preset '\(name)': unknown; expected golden, demo or default")
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
    /// The golden-file and test network: 1 channel, 16×16, every block type, 500,289 parameters.
    case golden
    /// The demo's network: 1 channel, 16×16, 535,265 parameters.
    case demo
    /// The seed's network: 3 channels, 32×32, 20,912,259 parameters.
    case `default`

    /// The old name of ``golden``.
    @available(*, deprecated, renamed: "golden")
    public static var tiny: NetworkPreset { .golden }
    /// The old name of ``demo``.
    @available(*, deprecated, renamed: "demo")
    public static var small: NetworkPreset { .demo }

    /// The network's configuration.
    public var configuration: UNetConfiguration {
        // Every case is a name `Presets.network` knows (Tests/DDPMTests/LibraryEntryTests checks each).
        try! Presets.network(rawValue)
    }
}
