// Network + diffusion settings as one value, stored as attributes of an HDF5 group (`/config`).
// Golden files (schema version 2) and checkpoints share this layout; version-1 files, which lack the
// diffusion's mean, variance and loss types, read with the defaults those files were made with.

import HDF5

public struct ModelConfiguration: Sendable, Equatable {
    public var network: UNetConfiguration
    public var diffusion: DiffusionConfiguration

    /// The network's output channels follow the diffusion: 2 × channels (mean part first) when the
    /// variance is learned, so `network.outputsVariance` is set from `diffusion.varianceType`.
    public init(network: UNetConfiguration, diffusion: DiffusionConfiguration = DiffusionConfiguration()) {
        self.network = network; self.diffusion = diffusion
        self.network.outputsVariance = diffusion.varianceType.isLearned
    }

    /// T, the number of diffusion steps.
    public var timesteps: Int { diffusion.timesteps }

    /// Throws unless both the network and the diffusion can be built.
    public func validate() throws {
        try network.validate()
        try diffusion.validate()
        guard network.outputsVariance == diffusion.varianceType.isLearned else {
            throw DDPMError(.invalidConfiguration, "network output channels \(network.outputChannels): variance type '\(diffusion.varianceType.rawValue)' needs \(diffusion.varianceType.isLearned ? 2 * network.channels : network.channels) (\(network.channels) image channels)")
        }
    }

    public func makeDiffusion() throws -> GaussianDiffusion { try GaussianDiffusion(diffusion) }

    /// Builds the seed's DDPM (a fresh U-Net initialised from `seed`).
    public func makeDDPM(seed: UInt64) throws -> DDPM {
        try validate()
        let net = try UNet(network, seed: seed)
        return try DDPM(model: net, imageSize: network.imageSize, channels: network.channels, timesteps: timesteps,
                        diffuser: makeDiffusion(), seed: seed)
    }

    /// Writes the attributes of the golden-file schema (version 2) onto `group`.
    public func write(to w: HDF5Writer, group: String = "/config") throws {
        try w.createGroup(group)
        let n = network, d = diffusion
        for (k, v) in [("image_size", n.imageSize), ("channels", n.channels), ("base_channels", n.baseChannels),
                       ("num_res_blocks", n.residualBlocksPerLevel), ("time_emb_dim", n.timeEmbeddingDim),
                       ("timesteps", d.timesteps), ("clip_denoised", d.clipDenoised ? 1 : 0), ("norm_groups", n.normGroups)] {
            try w.setAttribute(k, Int64(v), on: group)
        }
        try w.setAttribute("channel_mults", n.channelMultipliers.map(Int64.init), on: group)
        try w.setAttribute("attention_resolutions", n.attentionResolutions.map(Int64.init), on: group)
        try w.setAttribute("output_activation", n.outputActivation.rawValue, on: group)
        try w.setAttribute("dropout", n.dropout, on: group)
        try w.setAttribute("beta_schedule", d.schedule.name, on: group)
        for (k, v) in d.schedule.parameters { try w.setAttribute(k, v, on: group) }
        try w.setAttribute("mean_type", d.meanType.rawValue, on: group)
        try w.setAttribute("variance_type", d.varianceType.rawValue, on: group)
        try w.setAttribute("loss_type", d.lossType.rawValue, on: group)
        try w.setAttribute("loss_weighting", d.weighting.name, on: group)
        if case .minSNR(let gamma) = d.weighting { try w.setAttribute("min_snr_gamma", gamma, on: group) }
        try w.setAttribute("out_channels", Int64(n.outputChannels), on: group)
        try w.setAttribute("data_min", d.dataRange.lowerBound, on: group)
        try w.setAttribute("data_max", d.dataRange.upperBound, on: group)
        // K of a class-conditional network (label_emb has K + 1 rows, row K the null class); absent when unconditional.
        if let k = n.classes { try w.setAttribute("num_classes", Int64(k), on: group) }
    }

    /// Reads and validates the attributes of `group`; every problem names the file, the group and the
    /// attribute. Attributes that version 1 did not have take the values version-1 files were made with.
    public init(reading file: HDF5File, group: String = "/config") throws {
        guard file.exists(group) else { throw DDPMError(.malformedFile, "\(file.path): no group '\(group)' (the model configuration)") }
        let names = Set(try file.attributeNames(of: group))
        func int(_ k: String) throws -> Int { Int(try file.int64Attribute(k, of: group)) }
        func double(_ k: String, default value: Double? = nil) throws -> Double? {
            names.contains(k) ? try file.doubleAttribute(k, of: group) : value
        }
        func choice<E: RawRepresentable & CaseIterable>(_ k: String, _ fallback: E) throws -> E where E.RawValue == String {
            guard names.contains(k) else { return fallback }
            let text = try file.stringAttribute(k, of: group)
            guard let v = E(rawValue: text) else {
                throw DDPMError(.invalidConfiguration, "\(file.path) \(group) attribute '\(k)': expected one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), found '\(text)'")
            }
            return v
        }
        var n = UNetConfiguration()
        n.imageSize = try int("image_size"); n.channels = try int("channels"); n.baseChannels = try int("base_channels")
        n.residualBlocksPerLevel = try int("num_res_blocks"); n.timeEmbeddingDim = try int("time_emb_dim")
        n.channelMultipliers = try file.int64ArrayAttribute("channel_mults", of: group).map { Int($0) }
        n.attentionResolutions = try file.int64ArrayAttribute("attention_resolutions", of: group).map { Int($0) }
        n.dropout = try file.doubleAttribute("dropout", of: group)
        n.outputActivation = try choice("output_activation", OutputActivation.identity)
        if names.contains("norm_groups") { n.normGroups = try int("norm_groups") }
        if names.contains("num_classes") { n.classes = try int("num_classes") }
        do { try n.validate() } catch { throw DDPMError(.invalidConfiguration, "\(file.path) \(group): unsupported configuration: \(error)") }
        network = n

        var d = DiffusionConfiguration()
        d.timesteps = try int("timesteps")
        var parameters: [String: Double] = [:]
        for k in ["beta_start", "beta_end", "beta", "cosine_s"] { parameters[k] = try double(k) }
        do { d.schedule = try BetaSchedule.named(try file.stringAttribute("beta_schedule", of: group), parameters: parameters) } catch let e as DDPMError {
            throw DDPMError(e.kind, "\(file.path) \(group) attribute 'beta_schedule': \(e.message)")
        }
        d.meanType = try choice("mean_type", ModelMeanType.epsilon)
        d.varianceType = try choice("variance_type", ModelVarianceType.fixedSmall)
        d.lossType = try choice("loss_type", LossType.simple)
        if names.contains("loss_weighting") {
            switch try file.stringAttribute("loss_weighting", of: group) {
            case "uniform": d.weighting = .uniform
            case "min-snr":
                guard let gamma = try double("min_snr_gamma") else {
                    throw DDPMError(.malformedFile, "\(file.path) \(group): loss_weighting 'min-snr' without attribute 'min_snr_gamma'")
                }
                d.weighting = .minSNR(gamma: gamma)
            case let other:
                throw DDPMError(.invalidConfiguration, "\(file.path) \(group) attribute 'loss_weighting': expected one of uniform, min-snr, found '\(other)'")
            }
        }
        let clip = try int("clip_denoised")
        guard clip == 0 || clip == 1 else {
            throw DDPMError(.invalidConfiguration, "\(file.path) \(group) attribute 'clip_denoised': expected 0 or 1, found \(clip)")
        }
        d.clipDenoised = clip == 1
        let lo = try double("data_min", default: 0)!, hi = try double("data_max", default: 1)!
        guard lo < hi else { throw DDPMError(.invalidConfiguration, "\(file.path) \(group): data_min \(lo) must be below data_max \(hi)") }
        d.dataRange = lo...hi
        do { try d.validate() } catch { throw DDPMError(.invalidConfiguration, "\(file.path) \(group): unsupported configuration: \(error)") }
        diffusion = d
        network.outputsVariance = d.varianceType.isLearned
        if names.contains("out_channels") {
            let out = try int("out_channels")
            guard out == network.outputChannels else {
                throw DDPMError(.invalidConfiguration, "\(file.path) \(group) attribute 'out_channels': variance type '\(d.varianceType.rawValue)' with \(network.channels) channels needs \(network.outputChannels), found \(out)")
            }
        }
    }
}
