// Network + diffusion settings as one value, stored as attributes of an HDF5 group (`/config`).
// Golden files and checkpoints share this layout.

import HDF5

public struct ModelConfiguration: Sendable, Equatable {
    public var network: UNetConfiguration
    public var timesteps = 1000
    public var betaSchedule = "linear"
    public var betaStart = 1e-4
    public var betaEnd = 0.02
    public var clipDenoised = true
    public var dataRange: ClosedRange<Double> = 0...1

    public init(network: UNetConfiguration, timesteps: Int = 1000, betaSchedule: String = "linear", betaStart: Double = 1e-4,
                betaEnd: Double = 0.02, clipDenoised: Bool = true, dataRange: ClosedRange<Double> = 0...1) {
        self.network = network; self.timesteps = timesteps; self.betaSchedule = betaSchedule
        self.betaStart = betaStart; self.betaEnd = betaEnd; self.clipDenoised = clipDenoised; self.dataRange = dataRange
    }

    public func diffusion() throws -> GaussianDiffusion {
        try GaussianDiffusion(schedule: BetaSchedule.named(betaSchedule, start: betaStart, end: betaEnd), timesteps: timesteps, dataRange: dataRange)
    }

    /// Builds the seed's DDPM (a fresh U-Net initialised from `seed`).
    public func makeDDPM(seed: UInt64) throws -> DDPM {
        try network.validate()
        let net = try UNet(network, seed: seed)
        return try DDPM(model: net, imageSize: network.imageSize, channels: network.channels, timesteps: timesteps,
                        diffuser: GaussianDiffuser(diffusion: diffusion()), clipDenoised: clipDenoised, dataRange: dataRange, seed: seed)
    }

    /// Writes the attributes of the golden-file schema onto `group`.
    public func write(to w: HDF5Writer, group: String = "/config") throws {
        try w.createGroup(group)
        let n = network
        for (k, v) in [("image_size", n.imageSize), ("channels", n.channels), ("base_channels", n.baseChannels),
                       ("num_res_blocks", n.residualBlocksPerLevel), ("time_emb_dim", n.timeEmbeddingDim),
                       ("timesteps", timesteps), ("clip_denoised", clipDenoised ? 1 : 0), ("norm_groups", n.normGroups)] {
            try w.setAttribute(k, Int64(v), on: group)
        }
        try w.setAttribute("channel_mults", n.channelMultipliers.map(Int64.init), on: group)
        try w.setAttribute("attention_resolutions", n.attentionResolutions.map(Int64.init), on: group)
        try w.setAttribute("beta_schedule", betaSchedule, on: group)
        try w.setAttribute("output_activation", n.outputActivation.rawValue, on: group)
        try w.setAttribute("beta_start", betaStart, on: group)
        try w.setAttribute("beta_end", betaEnd, on: group)
        try w.setAttribute("dropout", n.dropout, on: group)
        try w.setAttribute("data_min", dataRange.lowerBound, on: group)
        try w.setAttribute("data_max", dataRange.upperBound, on: group)
    }

    /// Reads and validates the attributes of `group`; every problem names the attribute.
    public init(reading file: HDF5File, group: String = "/config") throws {
        guard file.exists(group) else { throw DDPMError(.malformedFile, "\(file.path): no group '\(group)' (the model configuration)") }
        func int(_ k: String) throws -> Int { Int(try file.int64Attribute(k, of: group)) }
        var n = UNetConfiguration()
        n.imageSize = try int("image_size"); n.channels = try int("channels"); n.baseChannels = try int("base_channels")
        n.residualBlocksPerLevel = try int("num_res_blocks"); n.timeEmbeddingDim = try int("time_emb_dim")
        n.channelMultipliers = try file.int64ArrayAttribute("channel_mults", of: group).map { Int($0) }
        n.attentionResolutions = try file.int64ArrayAttribute("attention_resolutions", of: group).map { Int($0) }
        n.dropout = try file.doubleAttribute("dropout", of: group)
        let activation = try file.stringAttribute("output_activation", of: group)
        guard let a = OutputActivation(rawValue: activation) else {
            throw DDPMError(.invalidConfiguration, "\(file.path) \(group) attribute 'output_activation': expected identity or sigmoid, found '\(activation)'")
        }
        n.outputActivation = a
        if try file.attributeNames(of: group).contains("norm_groups") { n.normGroups = try int("norm_groups") }
        do { try n.validate() } catch { throw DDPMError(.invalidConfiguration, "\(file.path) \(group): unsupported configuration: \(error)") }
        network = n
        timesteps = try int("timesteps")
        betaSchedule = try file.stringAttribute("beta_schedule", of: group)
        betaStart = try file.doubleAttribute("beta_start", of: group)
        betaEnd = try file.doubleAttribute("beta_end", of: group)
        let clip = try int("clip_denoised")
        guard clip == 0 || clip == 1 else { throw DDPMError(.invalidConfiguration, "\(file.path) \(group) attribute 'clip_denoised': expected 0 or 1, found \(clip)") }
        clipDenoised = clip == 1
        let names = try file.attributeNames(of: group)
        let lo = names.contains("data_min") ? try file.doubleAttribute("data_min", of: group) : 0
        let hi = names.contains("data_max") ? try file.doubleAttribute("data_max", of: group) : 1
        guard lo < hi else { throw DDPMError(.invalidConfiguration, "\(file.path) \(group): data_min \(lo) must be below data_max \(hi)") }
        dataRange = lo...hi
        do { _ = try diffusion() } catch { throw DDPMError(.invalidConfiguration, "\(file.path) \(group): unsupported configuration: \(error)") }
    }
}
