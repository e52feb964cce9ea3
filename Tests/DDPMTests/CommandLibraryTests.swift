import Foundation
import TestSupport
import Testing
import DDPM

/// A network small enough for many training steps in a debug build.
func microConfiguration() -> ModelConfiguration {
    ModelConfiguration(network: UNetConfiguration(channels: 1, baseChannels: 8, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                                                  attentionResolutions: [4], imageSize: 8, timeEmbeddingDim: 16, dropout: 0.1, normGroups: 4),
                       diffusion: DiffusionConfiguration(schedule: .linear(start: 1e-3, end: 0.2), timesteps: 20))
}

func digits8(_ n: Int) -> Tensor {
    var g = RandomGenerator(seed: 3)
    let d = DigitImages.make(count: n, generator: &g).images
    // Every other pixel of the 16×16 digits: 8×8 images.
    var out = [Double]()
    for i in 0..<n { for y in 0..<8 { for x in 0..<8 { out.append(d.data[i * 256 + 2 * y * 16 + 2 * x]) } } }
    return Tensor(shape: [n, 1, 8, 8], data: out)
}

@Suite("Golden files")
struct GoldenFileTests {
    @Test func exportThenCheckPasses() throws {
        let path = scratchFolder() + "/g.h5"
        try GoldenFile.export(to: path, config: ModelConfiguration(network: Presets.network("golden")), seed: 3, batch: 2)
        let rows = try GoldenFile.check(path: path, tolerance: .independentImplementation)
        #expect(rows.count == GoldenFile.outputNames.count + (try UNet(Presets.network("golden")).namedParameters().count))
        for r in rows { #expect(r.comparison.passed, "\(r.comparison)") }
        let file = try HDF5File(path: path)
        #expect(try file.stringAttribute("format") == "ddpm-golden" && file.int64Attribute("version") == GoldenFile.version)
        let t = try file.readInt64s("/inputs/t").values
        #expect(t.first == 0 && t.last == 999)
    }

    @Test func perturbedOutputFailsByName() throws {
        let dir = scratchFolder(), good = dir + "/g.h5", bad = dir + "/bad.h5"
        try GoldenFile.export(to: good, config: ModelConfiguration(network: Presets.network("golden")), seed: 3, batch: 2)
        try copyGolden(from: good, to: bad) { name, values in name == "/outputs/eps_pred" ? values.enumerated().map { $0.offset == 5 ? $0.element * (1 + 1e-8) : $0.element } : values }
        let rows = try GoldenFile.check(path: bad, tolerance: .independentImplementation)
        let failed = rows.filter { !$0.comparison.passed }.map(\.name)
        #expect(failed == ["eps_pred"], "failed: \(failed)")
    }

    @Test("a golden difference inside rtol but outside atol passes; ten times rtol fails")
    func toleranceRuleInTheCheck() throws {
        let dir = scratchFolder(), good = dir + "/g.h5"
        try GoldenFile.export(to: good, config: ModelConfiguration(network: Presets.network("golden")), seed: 3, batch: 2)
        // x_t has entries of order 1: a relative change of 5e-11 is an absolute change far above atol 1e-12.
        func perturbed(_ relative: Double) throws -> [GoldenFile.Row] {
            let path = dir + "/p\(relative).h5"
            try copyGolden(from: good, to: path) { name, v in name == "/outputs/x_t" ? v.map { $0 * (1 + relative) } : v }
            return try GoldenFile.check(path: path, tolerance: .independentImplementation)
        }
        let inside = try perturbed(5e-11).first { $0.name == "x_t" }!
        #expect(inside.comparison.passed && inside.comparison.maxAbsoluteError > 1e-12, "\(inside.comparison)")
        let outside = try perturbed(1e-9).first { $0.name == "x_t" }!
        #expect(!outside.comparison.passed, "\(outside.comparison)")
    }

    @Test("a version-1 golden file (no diffusion types in /config) still reads and checks; version 4 is refused")
    func versionOneStillChecks() throws {
        let dir = scratchFolder(), good = dir + "/g.h5", old = dir + "/v1.h5", future = dir + "/v4.h5"
        try GoldenFile.export(to: good, config: ModelConfiguration(network: Presets.network("golden")), seed: 3, batch: 2)
        try copyGolden(from: good, to: old, { _, v in v }, asVersionOne: true)
        let file = try HDF5File(path: old)
        #expect(try file.int64Attribute("version") == 1 && !(try file.attributeNames(of: "/config")).contains("mean_type"))
        let rows = try GoldenFile.check(path: old, tolerance: .independentImplementation)
        #expect(!rows.isEmpty && rows.allSatisfy { $0.comparison.passed }, "\(rows.filter { !$0.comparison.passed }.map(\.comparison))")
        try copyGolden(from: good, to: future, { _, v in v }, extra: { try $0.setAttribute("version", Int64(4)) })
        expectError(.unsupportedVersion, mentioning: ["version 4"]) { _ = try GoldenFile.check(path: future, tolerance: .independentImplementation) }
    }

    @Test func malformedFilesAreReportedByName() throws {
        let dir = scratchFolder(), good = dir + "/g.h5"
        try GoldenFile.export(to: good, config: ModelConfiguration(network: Presets.network("golden")), seed: 3, batch: 2)
        func expectError(_ contains: String, _ edit: @escaping (String, [Double]) -> [Double]?, extra: ((HDF5Writer) throws -> Void)? = nil) throws {
            let path = dir + "/case-\(UUID().uuidString).h5"
            try copyGolden(from: good, to: path, edit, extra: extra)
            do { _ = try GoldenFile.check(path: path, tolerance: .independentImplementation); Issue.record("no error for \(contains)") }
            catch { #expect("\(error)".contains(contains), "\(error)") }
        }
        try expectError("missing input '/inputs/z'") { name, v in name == "/inputs/z" ? nil : v }
        try expectError("missing 'final_conv.bias'") { name, v in name == "/weights/final_conv.bias" ? nil : v }
        try expectError("unknown output '/outputs/bogus'", { _, v in v }) { try $0.write([1.0], shape: [1], to: "/outputs/bogus") }
        try expectError("'/inputs/x0': expected rank 4 [2, 1, 16, 16], found rank 1 [32]") { name, v in name == "/inputs/x0" ? Array(v.prefix(32)) : v }
    }

    @Test func unsupportedConfigurationIsReported() throws {
        let dir = scratchFolder(), good = dir + "/g.h5", bad = dir + "/b.h5"
        try GoldenFile.export(to: good, config: ModelConfiguration(network: Presets.network("golden")), seed: 3, batch: 1)
        try copyGolden(from: good, to: bad, { _, v in v }, configEdit: { $0.network.baseChannels = 20 })
        #expect(throws: DDPMError.self) { _ = try GoldenFile.check(path: bad, tolerance: .independentImplementation) }
        expectError(.invalidConfiguration, mentioning: ["unsupported configuration", "not divisible by the 32 norm groups"]) {
            _ = try GoldenFile.check(path: bad, tolerance: .independentImplementation)
        }
        #expect(throws: HDF5Error.self) { _ = try GoldenFile.check(path: dir + "/absent.h5", tolerance: .independentImplementation) }
    }
}

/// Rewrites a golden file dataset by dataset; `edit` returns nil to drop a dataset.
func copyGolden(from source: String, to destination: String, _ edit: (String, [Double]) -> [Double]?,
                extra: ((HDF5Writer) throws -> Void)? = nil, configEdit: ((inout ModelConfiguration) -> Void)? = nil,
                asVersionOne: Bool = false) throws {
    let f = try HDF5File(path: source)
    var config = try ModelConfiguration(reading: f)
    configEdit?(&config)
    var datasets: [String] = []
    func walk(_ g: String) throws {
        for m in try f.members(ofGroup: g) {
            let p = (g == "/" ? "" : g) + "/" + m
            if try f.kind(of: p) == .group { try walk(p) } else { datasets.append(p) }
        }
    }
    try walk("/")
    try HDF5Writer.write(to: destination) { w in
        try w.setAttribute("format", try f.stringAttribute("format"))
        try w.setAttribute("version", asVersionOne ? 1 : try f.int64Attribute("version"))
        if asVersionOne { try writeVersionOneConfig(config, to: w) } else { try config.write(to: w) }
        for d in datasets where d != "/inputs/t" {
            let a = try f.readDoubles(d)
            guard let v = edit(d, a.values) else { continue }
            try w.write(v, shape: v.count == a.values.count ? a.shape : [v.count], to: d)
        }
        try w.write(try f.readInt64s("/inputs/t").values, shape: [try f.readInt64s("/inputs/t").values.count], to: "/inputs/t")
        try extra?(w)
    }
}

/// `/config` exactly as schema version 1 wrote it (before the diffusion's types and schedule parameters).
func writeVersionOneConfig(_ c: ModelConfiguration, to w: HDF5Writer) throws {
    let g = "/config", n = c.network, d = c.diffusion
    try w.createGroup(g)
    for (k, v) in [("image_size", n.imageSize), ("channels", n.channels), ("base_channels", n.baseChannels),
                   ("num_res_blocks", n.residualBlocksPerLevel), ("time_emb_dim", n.timeEmbeddingDim),
                   ("timesteps", d.timesteps), ("clip_denoised", d.clipDenoised ? 1 : 0), ("norm_groups", n.normGroups)] {
        try w.setAttribute(k, Int64(v), on: g)
    }
    try w.setAttribute("channel_mults", n.channelMultipliers.map(Int64.init), on: g)
    try w.setAttribute("attention_resolutions", n.attentionResolutions.map(Int64.init), on: g)
    try w.setAttribute("beta_schedule", "linear", on: g)
    try w.setAttribute("output_activation", n.outputActivation.rawValue, on: g)
    try w.setAttribute("beta_start", 1e-4, on: g)
    try w.setAttribute("beta_end", 0.02, on: g)
    try w.setAttribute("dropout", n.dropout, on: g)
    try w.setAttribute("data_min", d.dataRange.lowerBound, on: g)
    try w.setAttribute("data_max", d.dataRange.upperBound, on: g)
}

@Suite("Training, checkpoints and sampling")
struct TrainingTests {
    @Test("N + M steps in one run equal N steps, checkpoint, M resumed steps, bit for bit")
    func exactResume() throws {
        let data = digits8(64)
        var options = TrainingOptions(); options.batchSize = 4; options.learningRate = 1e-3; options.emaDecay = 0.9
        let straight = try Trainer(config: microConfiguration(), options: options, seed: 5)
        for _ in 0..<6 { try straight.trainStep(on: data) }
        let first = try Trainer(config: microConfiguration(), options: options, seed: 5)
        for _ in 0..<3 { try first.trainStep(on: data) }
        let path = scratchFolder() + "/c.h5"
        try first.save(to: path)
        let resumed = try Trainer.load(from: path)
        #expect(resumed.step == 3)
        for _ in 0..<3 { try resumed.trainStep(on: data) }
        #expect(resumed.network.parameters.map(\.data) == straight.network.parameters.map(\.data))
        #expect(resumed.ema == straight.ema)
        #expect(resumed.optimizer.m == straight.optimizer.m && resumed.optimizer.v == straight.optimizer.v)
        #expect(resumed.ddpm.generator == straight.ddpm.generator)
    }

    @Test func trainingReducesTheLoss() throws {
        let data = digits8(64)
        var options = TrainingOptions(); options.batchSize = 8; options.learningRate = 2e-3
        let trainer = try Trainer(config: microConfiguration(), options: options, seed: 1)
        let before = try trainer.heldOutLoss(data.slice(axis: 0, start: 0, length: 16), seed: 9)
        for _ in 0..<40 { try trainer.trainStep(on: data) }
        let after = try trainer.heldOutLoss(data.slice(axis: 0, start: 0, length: 16), seed: 9)
        print("training: held-out L_simple \(before) → \(after)")
        #expect(after < before)
    }

    @Test func samplingWithTheSameSeedWritesIdenticalFiles() throws {
        var options = TrainingOptions(); options.batchSize = 2
        let trainer = try Trainer(config: microConfiguration(), options: options, seed: 1)
        let dir = scratchFolder()
        func sampleFile(_ name: String, seed: UInt64) throws -> Data {
            trainer.ddpm.generator = RandomGenerator(seed: seed)
            let s = try trainer.ddpm.sample(batchSize: 3)
            try PNGWriter.writeGrid(s, range: 0...1, path: dir + "/" + name)
            return try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        let a = try sampleFile("a.png", seed: 4), b = try sampleFile("b.png", seed: 4), c = try sampleFile("c.png", seed: 5)
        #expect(a == b && a != c)
        #expect(a.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG signature")
    }

    @Test func badTrainingDataIsRejectedByName() throws {
        let dir = scratchFolder()
        try HDF5Writer.write(to: dir + "/nan.h5") { try $0.write([0.5, .nan, 0, 0], shape: [1, 1, 2, 2], to: "/images") }
        expectError(.invalidData, mentioning: ["'/images'", "nan", "element 1"]) {
            _ = try ImageData.load(path: dir + "/nan.h5", dataset: nil, channels: 1, imageSize: 2)
        }
        expectError(.shapeMismatch, mentioning: ["'/images'", "found [1"]) {
            _ = try ImageData.load(path: dir + "/nan.h5", dataset: nil, channels: 1, imageSize: 8)
        }
        try HDF5Writer.write(to: dir + "/ints.h5") { try $0.write([Int64(1), 2, 3, 4], shape: [1, 1, 2, 2], to: "/images") }
        expectError(.malformedFile, mentioning: ["'/images'", "found int64"]) {
            _ = try ImageData.load(path: dir + "/ints.h5", dataset: nil, channels: 1, imageSize: 2)
        }
        try HDF5Writer.write(to: dir + "/u8.h5") { try $0.write([UInt8(0), 51, 255, 102], shape: [1, 1, 2, 2], to: "/pixels") }
        #expect(try ImageData.load(path: dir + "/u8.h5", dataset: nil, channels: 1, imageSize: 2).data == [0, 0.2, 1, 0.4])
        expectError(.malformedFile, mentioning: ["'missing'"]) {
            _ = try ImageData.load(path: dir + "/u8.h5", dataset: "missing", channels: 1, imageSize: 2)
        }
        #expect(throws: HDF5Error.self) { _ = try ImageData.load(path: dir + "/none.h5", dataset: nil, channels: 1, imageSize: 2) }
        expectError(.unknownName, mentioning: ["'huge'"]) { _ = try Presets.network("huge") }
    }

    @Test func failedCheckpointWriteKeepsTheOldOne() throws {
        var options = TrainingOptions(); options.batchSize = 2
        let trainer = try Trainer(config: microConfiguration(), options: options, seed: 1)
        let dir = scratchFolder(), path = dir + "/c.h5"
        try trainer.save(to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(throws: HDF5Error.self) { try trainer.save(to: dir + "/missing-folder/c.h5") }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["c.h5"])
    }
}
