import Foundation
import TestSupport
import Testing
import DDPM

/// An untrained micro checkpoint (T = 20) in a new scratch folder: enough to check the wiring of every sampler option.
func microSamplingCheckpoint() throws -> (dir: String, path: String, trainer: Trainer) {
    let dir = scratchFolder()
    var options = TrainingOptions()
    options.batchSize = 2
    let trainer = try Trainer(config: microConfiguration(), options: options, seed: 4)
    try trainer.save(to: dir + "/c.h5")
    return (dir, dir + "/c.h5", trainer)
}

@Suite("ddpm sample --sampler … and ddpm interpolate")
struct SamplerCommandTests {
    func checkpoint() throws -> (dir: String, path: String, trainer: Trainer) { try microSamplingCheckpoint() }

    @Test("the command runs the chosen sampler: its samples are the library's for the same choice and seed")
    func wiring() throws {
        let (dir, path, trainer) = try checkpoint()
        let cases: [([String], SamplerChoice)] = [
            (["--sampler", "ddim", "--sample-steps", "5"], SamplerChoice(kind: .ddim, steps: 5, spacing: .improvedDiffusion("ddim5"))),
            (["--sampler", "ddim", "--sample-steps", "4", "--spacing", "trailing", "--eta", "0.5", "--threshold", "dynamic:0.9"],
             SamplerChoice(kind: .ddim, steps: 4, spacing: .diffusersTrailing, eta: 0.5, thresholding: .dynamic(percentile: 0.9, maxScale: .infinity))),
            (["--sampler", "ancestral", "--sample-steps", "6", "--spacing", "sections:3,3", "--threshold", "none"],
             SamplerChoice(kind: .ancestral, steps: 6, spacing: .improvedDiffusion("3,3"), thresholding: Thresholding.unchanged)),
            (["--sampler", "ddim", "--sample-steps", "5", "--spacing", "leading:1", "--no-set-alpha-to-one", "--epsilon", "original"],
             SamplerChoice(kind: .ddim, steps: 5, spacing: .diffusersLeading(stepsOffset: 1), rederivation: .original, setAlphaToOne: false)),
        ]
        for (i, (args, choice)) in cases.enumerated() {
            let r = try runDDPM(["sample", "--checkpoint", path, "--count", "2", "--seed", "7", "--out", dir + "/s\(i).png", "--h5", dir + "/s\(i).h5"] + args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            let stored = try HDF5File(path: dir + "/s\(i).h5").readDoubles("/samples")
            trainer.ddpm.generator = RandomGenerator(seed: 7)
            let expected = try trainer.ddpm.sample(batchSize: 2, sampler: choice.makeSampler(for: trainer.config.makeDiffusion()))
            #expect(stored.values == expected.data, "\(args)")
        }
        // The default is still the full ancestral chain (the seed's behaviour): same as DDPM.sample.
        let r = try runDDPM(["sample", "--checkpoint", path, "--count", "2", "--seed", "7", "--out", dir + "/d.png", "--h5", dir + "/d.h5"])
        #expect(r.status == 0, "\(r.stderr)")
        trainer.ddpm.generator = RandomGenerator(seed: 7)
        #expect(try HDF5File(path: dir + "/d.h5").readDoubles("/samples").values == trainer.ddpm.sample(batchSize: 2).data)
    }

    @Test("sampler options: wrong values are one error line naming the option")
    func errors() throws {
        let (dir, path, _) = try checkpoint()
        let base = ["sample", "--checkpoint", path, "--out", dir + "/s.png"]
        try expectUserError(base + ["--sampler", "eulr"], "--sampler 'eulr': expected ancestral, ddim, euler")
        try expectUserError(base + ["--sample-steps", "0"], "--sample-steps: expected a positive number, got 0")
        try expectUserError(base + ["--sample-steps", "5", "--spacing", "cubic"], "--spacing 'cubic'")
        try expectUserError(base + ["--threshold", "dynamic:2"], "--threshold 'dynamic:2'")
        try expectUserError(base + ["--eta=-1"], "--eta: expected a finite value ≥ 0, got -1.0")
        try expectUserError(base + ["--sample-steps", "30"], "--sample-steps: expected between 1 and 20 (the checkpoint's T), got 30")
        try expectUserError(base + ["--sample-steps", "6", "--spacing", "ddim"], "no integer stride gives exactly 6 steps out of 20")
        #expect(!FileManager.default.fileExists(atPath: dir + "/s.png"))
    }

    @Test("interpolate writes a strip between two seeds' latents and between two images; --help lists it")
    func interpolate() throws {
        let (dir, path, _) = try checkpoint()
        let r = try runDDPM(["interpolate", "--checkpoint", path, "--from", "1", "--to", "2", "--frames", "3", "--sample-steps", "5", "--out", dir + "/strip.png"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/strip.png"))
        let images = digits8(4)
        try HDF5Writer.write(to: dir + "/d.h5") { try $0.write(images.data, shape: images.shape, to: "/images") }
        let r2 = try runDDPM(["interpolate", "--checkpoint", path, "--data", dir + "/d.h5", "--from", "0", "--to", "3", "--frames", "3",
                              "--sample-steps", "5", "--out", dir + "/strip2.png"])
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/strip2.png"))
        try expectUserError(["interpolate", "--checkpoint", path, "--data", dir + "/d.h5", "--from", "0", "--to", "9", "--sample-steps", "5", "--out", dir + "/x.png"],
                            "--to 9: expected an image index in [0, 4)")
        #expect(try runDDPM(["--help"]).stdout.contains("interpolate"))
    }

    @Test("sampler-figures writes the terminal-SNR figure without a checkpoint")
    func figures() throws {
        let dir = scratchFolder()
        let r = try runDDPM(["sampler-figures", "--out", dir])
        #expect(r.status == 0, "\(r.stderr)")
        let svg = try String(contentsOfFile: dir + "/zero-terminal-snr.svg", encoding: .utf8)
        #expect(svg.contains("<polyline") && svg.contains("zero terminal SNR"))
    }
}

@Suite("Golden files: the sampler outputs")
struct GoldenSamplerTests {
    @Test("an exported golden file's respaced tables are samplers.h5's respaced/T1000/ddim10 (≤ 4 ULP), and it checks")
    func respacedTablesInGolden() throws {
        let dir = scratchFolder()
        let path = dir + "/g.h5"
        try GoldenFile.export(to: path, config: ModelConfiguration(network: Presets.network("golden")), seed: 3, batch: 2)
        let file = try HDF5File(path: path)
        let fixture = FixtureFile("samplers.h5")
        #expect(try file.stringAttribute("respacing", of: "/outputs").contains("ddim10"))
        #expect(try file.readDoubles("/outputs/respaced_timestep_map").values.map { Int($0) } == fixture.ints("respaced/T1000/ddim10/timestep_map"))
        for table in ["betas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance", "posterior_log_variance_clipped",
                      "posterior_mean_coef1", "posterior_mean_coef2"] {
            let ours = try file.readDoubles("/outputs/respaced_" + table).values, theirs = fixture.values("respaced/T1000/ddim10/" + table)
            let worst = zip(ours, theirs).map { ulpDistance($0, $1) }.max() ?? 0
            print("golden respaced_\(table) vs samplers.h5: worst \(worst) ULP")
            #expect(ours.count == theirs.count && worst <= 4)
        }
        let rows = try GoldenFile.check(path: path, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
        for name in GoldenFile.samplerOutputNames { #expect(rows.contains { $0.name == name && $0.comparison.passed }, "\(name)") }
    }
}
