import Foundation
import TestSupport
import Testing
import DDPM

/// Per-module activations in golden files (schema version 3): what export stores, and that the check names
/// the first module whose output fails (values edited in memory after reading a file we wrote, so the
/// expected answer — the edited module — is known independently of the check).
@Suite("Golden files: per-module activations and the first failing module")
struct GoldenActivationTests {
    static let folder = scratchFolder()
    static let path: String = {
        let p = folder + "/act.h5"
        try! GoldenFile.export(to: p, config: microConfiguration(), seed: 3, batch: 2, activations: true)
        return p
    }()

    @Test("export stores every module's output in execution order, with kind and gradient; our own file passes at float64")
    func stored() throws {
        let result = try GoldenFile.check(path: Self.path, rule: .elementwise(Tolerance(rtol: 1e-10, atol: 1e-12)))
        let a = try #require(result.activations)
        let names = a.outputs.map(\.name)
        print("activations: \(names.count) modules: \(names.prefix(5).joined(separator: ", ")), …, \(names.suffix(2).joined(separator: ", "))")
        // The forward pass: the time embedding and its MLP first, then init_conv, then the first block's layers before the block.
        #expect(Array(names.prefix(5)) == ["time_embedding", "time_mlp.0", "time_mlp.2", "init_conv", "down_resblocks.0.0.norm1"])
        #expect(names.last == "final_conv" && names.contains("mid_attn") && names.contains("up_resblocks.1.0.residual"))
        #expect(names.firstIndex(of: "down_resblocks.0.0.conv2")! < names.firstIndex(of: "down_resblocks.0.0")!)
        #expect(a.kind(of: "mid_attn") == "AttentionBlock" && a.kind(of: "final_norm") == "GroupNorm" && a.kind(of: "time_embedding") == "SinusoidalEmbedding")
        // Every module but the parameter-free time embedding has a gradient.
        #expect(a.gradients.count == names.count - 1 && !a.gradients.contains { $0.name == "time_embedding" })
        #expect(result.passed && a.passed && a.firstFailingOutput == nil)
        let file = try HDF5File(path: Self.path)
        #expect(try file.int64Attribute("version") == 3)
    }

    @Test("an output edited by 1e-3 (relative) is named first at float32; the modules before it pass", arguments: ["down_resblocks.1.0.norm2", "mid_attn.qkv", "up_resblocks.0.0"])
    func firstFailing(_ module: String) throws {
        let r = try GoldenFile.recompute(path: Self.path)
        let a = try #require(r.activations)
        var stored = a.stored
        let k = try #require(stored.firstIndex { $0.name == module })
        // Every output from k on is off by 1e-3 relative, as if the fault were in module k.
        for j in k..<stored.count { stored[j].values.values = stored[j].values.values.map { $0 * (1 + 1e-3) } }
        let check = try GoldenFile.judgeActivations(ours: a.ours, stored: stored, storedGradients: a.storedGradients, path: Self.path,
                                                    configuration: r.configuration, batch: r.batch, parameterKeys: r.parameterKeys,
                                                    rule: .tier(GoldenTier(storage: .float32)))
        let first = try #require(check.firstFailingOutput)
        print(check.lines.joined(separator: "\n"))
        #expect(first.name == module && ActivationCheck.ratio(first) > 1)
        #expect(check.outputs.prefix(k).allSatisfy { $0.passed })
    }

    @Test("a gradient edited for one module is the first failing one walking backwards")
    func backwards() throws {
        let r = try GoldenFile.recompute(path: Self.path)
        let a = try #require(r.activations)
        var grads = a.storedGradients
        // A backward bug in down_attn.1's backward corrupts ∂L/∂(input of down_attn.1) = ∂L/∂(output of the module before it) and everything earlier.
        let order = a.stored.map(\.name).filter { grads[$0] != nil }
        let target = order[order.firstIndex(of: "down_attn.1")! - 1]
        for name in order[...order.firstIndex(of: target)!] { grads[name]!.values = grads[name]!.values.map { -$0 } }
        let check = try GoldenFile.judgeActivations(ours: a.ours, stored: a.stored, storedGradients: grads, path: Self.path,
                                                    configuration: r.configuration, batch: r.batch, parameterKeys: r.parameterKeys,
                                                    rule: .tier(GoldenTier(storage: .float32)))
        print(check.lines.joined(separator: "\n"))
        #expect(check.firstFailingOutput == nil && check.firstFailingGradientBackwards?.name == target)
    }

    @Test("an activation with a name no module has, or the wrong shape, is an error naming it")
    func malformed() throws {
        let r = try GoldenFile.recompute(path: Self.path)
        let a = try #require(r.activations)
        var stored = a.stored
        stored[3].name = "down_resblocks.9.norm"
        expectError(.unknownName, mentioning: ["down_resblocks.9.norm"]) {
            try GoldenFile.judgeActivations(ours: a.ours, stored: stored, storedGradients: [:], path: Self.path, configuration: r.configuration,
                                            batch: r.batch, parameterKeys: r.parameterKeys, rule: .tier(GoldenTier(storage: .float32)))
        }
        stored = a.stored
        stored[3].values.shape = [stored[3].values.values.count]
        expectError(.shapeMismatch, mentioning: [stored[3].name]) {
            try GoldenFile.judgeActivations(ours: a.ours, stored: stored, storedGradients: [:], path: Self.path, configuration: r.configuration,
                                            batch: r.batch, parameterKeys: r.parameterKeys, rule: .tier(GoldenTier(storage: .float32)))
        }
    }

    @Test("without --activations the file has none and the check reports none")
    func optional() throws {
        let p = Self.folder + "/plain.h5"
        try GoldenFile.export(to: p, config: microConfiguration(), seed: 3, batch: 2)
        #expect(!(try HDF5File(path: p)).exists("/activations"))
        #expect(try GoldenFile.check(path: p, rule: .elementwise(Tolerance(rtol: 1e-10, atol: 1e-12))).activations == nil)
    }
}

/// The decoder's edge rule: golden x_0 lie on the data's 256-level grid and `/config` records grid and rule.
@Suite("Golden files: x_0 on the 256-level grid, the edge rule in /config")
struct GoldenGridTests {
    @Test("x_0 = lo + (hi − lo)·k/255 for integers k in 0 … 255 (within 1e-12), on [0, 1] and [−1, 1]; --continuous-x0 is off the grid")
    func grid() throws {
        let dir = scratchFolder()
        for (lo, hi) in [(0.0, 1.0), (-1.0, 1.0)] {
            var config = microConfiguration()
            config.diffusion.dataRange = lo...hi
            let p = dir + "/g\(lo).h5"
            try GoldenFile.export(to: p, config: config, seed: 5, batch: 4)
            let f = try HDF5File(path: p)
            let x0 = try f.readDoubles("/inputs/x0").values
            let k = x0.map { ($0 - lo) / (hi - lo) * 255 }
            let worst = k.map { abs($0 - $0.rounded()) }.max()!
            print("x0 on [\(lo), \(hi)]: \(x0.count) values, worst distance from an integer level \(worst), levels \(Int(k.min()!.rounded())) … \(Int(k.max()!.rounded()))")
            #expect(worst < 1e-12 && k.allSatisfy { $0 > -0.5 && $0 < 255.5 })
            #expect(try f.stringAttribute("x0_values", of: "/config") == GoldenFile.x0GridDescription)
            #expect(try f.stringAttribute("decoder_edge_rule", of: "/config").contains("(data_max - data_min)/510"))
            #expect(try GoldenFile.check(path: p, rule: .elementwise(Tolerance(rtol: 1e-10, atol: 1e-12))).passed)
        }
        let c = dir + "/c.h5"
        try GoldenFile.export(to: c, config: microConfiguration(), seed: 5, batch: 4, x0OnGrid: false)
        let x0 = try HDF5File(path: c).readDoubles("/inputs/x0").values
        #expect(x0.map { abs($0 * 255 - ($0 * 255).rounded()) }.max()! > 1e-3)
        #expect(try HDF5File(path: c).stringAttribute("x0_values", of: "/config").hasPrefix("continuous"))
    }
}

extension GoldenActivationTests {
    @Test("the per-tier line: our own file passes every tier")
    func perTier() throws {
        let result = try GoldenFile.check(path: Self.path, rule: .tier(GoldenTier(storage: .float32)))
        #expect(result.activationsByTier.map(\.tier) == [.float32, .bfloat16, .float16])
        #expect(result.activationTierLine == "first failing module per tier: float32 none; bfloat16 none; float16 none")
    }
}
