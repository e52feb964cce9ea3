import Foundation
import TestSupport
import Testing
import DDPM

/// `--rng torch`: the command's x_T is PyTorch's `torch.manual_seed(0); torch.randn(16, 1, 16, 16, dtype=float64)`
/// (the values PyTorch wrote into `Fixtures/torch-rng.h5`, stream `sampler-shapes`, call 00), bit for bit.
@Suite("ddpm sample --rng torch starts from PyTorch's x_T")
struct TorchRandomCommandTests {
    @Test("--rng torch --seed 0: /x_T is torch.randn(16, 1, 16, 16) after manual_seed(0); --rng ddpm is the project's stream")
    func startingNoise() throws {
        let dir = scratchFolder()
        var config = microConfiguration()
        config.network.imageSize = 16
        config.network.attentionResolutions = [8]
        var options = TrainingOptions()
        options.batchSize = 2
        try Trainer(config: config, options: options, seed: 4).save(to: dir + "/c.h5")
        let base = ["sample", "--checkpoint", dir + "/c.h5", "--count", "16", "--seed", "0", "--sampler", "ddim", "--sample-steps", "2"]
        let r = try runDDPM(base + ["--rng", "torch", "--out", dir + "/t.png", "--h5", dir + "/t.h5"])
        #expect(r.status == 0, "\(r.stderr)")
        let xT = try HDF5File(path: dir + "/t.h5").readDoubles("/x_T")
        let torch = FixtureFile("torch-rng.h5").values("/streams/sampler-shapes/00")
        let differing = zip(xT.values, torch).filter { $0.bitPattern != $1.bitPattern }.count
        print("x_T of --rng torch --seed 0 against torch.randn(16, 1, 16, 16): \(differing) of \(torch.count) values differ in any bit")
        #expect(xT.shape == [16, 1, 16, 16] && differing == 0)

        let d = try runDDPM(base + ["--out", dir + "/d.png", "--h5", dir + "/d.h5"])
        #expect(d.status == 0, "\(d.stderr)")
        var g = RandomGenerator(seed: 0)
        #expect(try HDF5File(path: dir + "/d.h5").readDoubles("/x_T").values == g.normals(16 * 256))

        try expectUserError(base + ["--rng", "pytorch", "--out", dir + "/e.png"], "--rng 'pytorch': expected ddpm or torch")
    }
}
