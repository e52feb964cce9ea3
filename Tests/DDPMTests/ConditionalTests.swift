import DDPM
import Foundation
import TestSupport
import Testing

/// The micro network with K classes.
func conditionalMicroConfiguration(classes k: Int = 3) -> ModelConfiguration {
    var c = microConfiguration()
    c.network.classes = k
    return c
}

/// Eight 8×8 digits and labels 0, 1, 2, 0, 1, 2, 0, 1 (classes of a K = 3 run).
func labelledDigits() -> (images: Tensor, labels: [Int]) { (digits8(8), (0..<8).map { $0 % 3 }) }

@Suite("Class-conditional training (label dropout, Ho & Salimans 2022 Algorithm 1) and guided sampling from the command")
struct ConditionalTests {
    func trainer(dropout p: Double, seed: UInt64 = 2) throws -> Trainer {
        var options = TrainingOptions(); options.batchSize = 3; options.labelDropout = p
        return try Trainer(config: conditionalMicroConfiguration(), options: options, seed: seed)
    }

    @Test("label dropout draws one uniform per sample from the training generator and replaces the label by K when u < p")
    func dropLabels() {
        var g = RandomGenerator(seed: 9), copy = RandomGenerator(seed: 9)
        let out = Trainer.dropLabels([0, 1, 2, 1, 0, 2, 3, 1], probability: 0.4, nullClass: 3, generator: &g)
        let u = (0..<8).map { _ in copy.nextUniform() }
        print("label dropout: u = \(u.map { ($0 * 1000).rounded() / 1000 }), labels → \(out)")
        #expect(out == zip([0, 1, 2, 1, 0, 2, 3, 1], u).map { $1 < 0.4 ? 3 : $0 })
        #expect(out.contains(3) && out != [0, 1, 2, 1, 0, 2, 3, 1], "some labels are dropped at p = 0.4 with this seed")
        #expect(g.nextUniform() == copy.nextUniform(), "exactly one draw per sample")
        var a = RandomGenerator(seed: 9), b = RandomGenerator(seed: 9)
        #expect(Trainer.dropLabels([0, 1, 2], probability: 1, nullClass: 3, generator: &a) == [3, 3, 3])
        #expect(Trainer.dropLabels([0, 1, 2], probability: 0, nullClass: 3, generator: &b) == [0, 1, 2])
        #expect(a.nextUniform() == b.nextUniform(), "p = 0 and p = 1 consume the same stream")
    }

    @Test("label dropout 1 trains the unconditional (null-class) model: losses, weights and EMA equal, bit for bit, those of p = 0 with every label the null class; rows 0 ..< K never move")
    func dropoutOneIsUnconditional() throws {
        let (x, labels) = labelledDigits()
        let dropped = try trainer(dropout: 1), nullRun = try trainer(dropout: 0), labelled = try trainer(dropout: 0)
        let initialRows = Array(dropped.network.labelEmbedding!.weight.data[0..<(3 * 16)])
        var a: [Double] = [], b: [Double] = [], c: [Double] = []
        for _ in 0..<3 {
            a.append(try dropped.trainStep(on: x, labels: labels))
            b.append(try nullRun.trainStep(on: x, labels: [Int](repeating: 3, count: 8)))
            c.append(try labelled.trainStep(on: x, labels: labels))
        }
        print("losses: p = 1 \(a); p = 0 all null \(b); p = 0 labelled \(c)")
        #expect(a == b)
        #expect(zip(dropped.network.parameters, nullRun.network.parameters).allSatisfy { $0.data == $1.data })
        #expect(dropped.ema == nullRun.ema)
        #expect(Array(dropped.network.labelEmbedding!.weight.data[0..<(3 * 16)]) == initialRows, "Adam with zero gradients moves no class row")
        #expect(Array(dropped.network.labelEmbedding!.weight.data[(3 * 16)...]) != Array(labelled.network.labelEmbedding!.weight.data[(3 * 16)...]))
        #expect(a != c, "the labels matter at p = 0 (so the equality above can fail)")
    }

    @Test("exact resume of a conditional run (label dropout 0.5): 2 + save/load + 2 steps equal 4 steps bit for bit; the checkpoint records K and p")
    func resume() throws {
        let (x, labels) = labelledDigits()
        let straight = try trainer(dropout: 0.5), first = try trainer(dropout: 0.5)
        var lossesStraight: [Double] = [], lossesResumed: [Double] = []
        for _ in 0..<4 { lossesStraight.append(try straight.trainStep(on: x, labels: labels)) }
        for _ in 0..<2 { lossesResumed.append(try first.trainStep(on: x, labels: labels)) }
        let path = scratchFolder() + "/c.h5"
        try first.save(to: path)
        let file = try HDF5File(path: path)
        #expect(try file.int64Attribute("num_classes", of: "/config") == 3)
        #expect(try file.doubleAttribute("label_dropout", of: "/training") == 0.5)
        let resumed = try Trainer.load(from: path)
        #expect(resumed.config.network.classes == 3 && resumed.options.labelDropout == 0.5)
        for _ in 0..<2 { lossesResumed.append(try resumed.trainStep(on: x, labels: labels)) }
        print("losses straight \(lossesStraight), resumed \(lossesResumed)")
        #expect(lossesStraight == lossesResumed)
        #expect(zip(straight.network.parameters, resumed.network.parameters).allSatisfy { $0.data == $1.data })
        #expect(straight.ema == resumed.ema)
        // An unconditional checkpoint has neither attribute; labels are refused for it, and required by a conditional one.
        let plain = try Trainer(config: microConfiguration(), options: TrainingOptions(), seed: 1)
        expectError(.invalidValue, mentioning: ["unconditional"]) { try plain.trainStep(on: x, labels: labels) }
        expectError(.invalidValue, mentioning: ["class-conditional", "3 classes"]) { try straight.trainStep(on: x) }
        expectError(.invalidValue, mentioning: ["class 4", "0 ..< 3"]) { try straight.trainStep(on: x, labels: [4] + labels.dropFirst()) }
    }

    @Test("on the conditional U-Net: w = 0 is the conditional output bit for bit (the batch of 2N leaves each half's values), w = −1 the unconditional one")
    func guidedUNet() throws {
        let net = try UNet(conditionalMicroConfiguration().network, seed: 5)
        net.isTraining = false
        let x = randomTensor([3, 1, 8, 8], seed: 6), t = [0, 7, 19], y = [2, 0, 1]
        let conditional = withoutGradients { net(x, t, labels: y) }, unconditional = withoutGradients { net(x, t) }
        let zero = try ClassifierFreeGuidedPredictor(net, labels: y, strength: .paper(w: 0), meanChannels: 1)
        #expect(withoutGradients { zero.predictNoise(x, at: t) }.data == conditional.data)
        let one = try ClassifierFreeGuidedPredictor(net, labels: y, strength: .scale(s: 1), meanChannels: 1)
        #expect(withoutGradients { one.predictNoise(x, at: t) }.data == conditional.data)
        let minus = try ClassifierFreeGuidedPredictor(net, labels: y, strength: .paper(w: -1), meanChannels: 1)
        #expect(withoutGradients { minus.predictNoise(x, at: t) }.data == unconditional.data)
        expectError(.invalidValue, mentioning: ["class 3", "0 ..< 3"]) { _ = try ClassifierFreeGuidedPredictor(net, labels: [3, 0, 1], strength: .paper(w: 1), meanChannels: 1) }
        expectError(.invalidValue, mentioning: ["unconditional"]) {
            _ = try ClassifierFreeGuidedPredictor(UNet(microConfiguration().network), labels: [0], strength: .paper(w: 1), meanChannels: 1)
        }
    }

    /// A conditional micro checkpoint (K = 3, one step) and a data file with labels.
    func checkpoint() throws -> (dir: String, path: String, trainer: Trainer) {
        let dir = scratchFolder()
        let t = try trainer(dropout: 0.2, seed: 4)
        let (x, labels) = labelledDigits()
        try t.trainStep(on: x, labels: labels)
        try t.save(to: dir + "/c.h5")
        return (dir, dir + "/c.h5", t)
    }

    @Test("sample --class 1,2 --guidance 2: the library's guided chain (one 2N call per step) row per class; --guidance-scale 3 gives the same bits; the file records the convention")
    func guidedSampling() throws {
        let (dir, path, trainer) = try checkpoint()
        let args = ["sample", "--checkpoint", path, "--count", "2", "--seed", "7", "--class", "1,2", "--sampler", "ddim", "--sample-steps", "4"]
        let w = try runDDPM(args + ["--guidance", "2", "--guidance-rescale", "0.5", "--out", dir + "/w.png", "--h5", dir + "/w.h5"])
        #expect(w.status == 0, "\(w.stderr)")
        let s = try runDDPM(args + ["--guidance-scale", "3", "--guidance-rescale", "0.5", "--out", dir + "/s.png", "--h5", dir + "/s.h5"])
        #expect(s.status == 0, "\(s.stderr)")
        let fw = try HDF5File(path: dir + "/w.h5"), fs = try HDF5File(path: dir + "/s.h5")
        let guided = try ClassifierFreeGuidedPredictor(trainer.network, labels: [1, 1, 2, 2], strength: .paper(w: 2), rescale: 0.5, meanChannels: 1)
        var g = RandomGenerator(seed: 7)
        let sampler = try SamplerChoice(kind: .ddim, steps: 4, spacing: .improvedDiffusion("ddim4")).makeSampler(for: trainer.config.makeDiffusion())
        let expected = try trainer.ddpm.sample(batchSize: 4, sampler: sampler, generator: &g, predictor: guided)
        #expect(try fw.readDoubles("/samples").values == expected.data)
        #expect(try fs.readDoubles("/samples").values == expected.data, "s = 1 + w: the same arithmetic")
        #expect(try fw.readInt64s("/labels").values == [1, 1, 2, 2])
        #expect(try fw.stringAttribute("guidance_convention") == "paper-w" && fs.stringAttribute("guidance_convention") == "diffusers-s")
        #expect(try fw.doubleAttribute("guidance_w") == 2 && fw.doubleAttribute("guidance_s") == 3 && fs.doubleAttribute("guidance_w") == 2)
        #expect((w.stdout + w.stderr).contains("guidance w = 2.0 (paper; s = 3.0), rescale φ = 0.5")
                && (s.stdout + s.stderr).contains("guidance scale s = 3.0 (diffusers; w = 2.0)"), "\(w.stdout)\n\(s.stdout)")
        // --guidance-interval: the library's limited-interval chain (Kynkäänniemi et al. 2024).
        let i = try runDDPM(args + ["--guidance", "2", "--guidance-interval", "5,12", "--out", dir + "/i.png", "--h5", dir + "/i.h5"])
        #expect(i.status == 0, "\(i.stderr)")
        let limited = try ClassifierFreeGuidedPredictor(trainer.network, labels: [1, 1, 2, 2], strength: .paper(w: 2), meanChannels: 1, interval: 5...12)
        var gi = RandomGenerator(seed: 7)
        let expectedLimited = try trainer.ddpm.sample(batchSize: 4, sampler: sampler, generator: &gi, predictor: limited)
        #expect(try HDF5File(path: dir + "/i.h5").readDoubles("/samples").values == expectedLimited.data)
        #expect(expectedLimited.data != expected.data)
        #expect(try HDF5File(path: dir + "/i.h5").int64ArrayAttribute("guidance_interval") == [5, 12])
        // No guidance flag: the conditional model, unguided.
        let c = try runDDPM(["sample", "--checkpoint", path, "--count", "2", "--seed", "7", "--class", "0", "--out", dir + "/u.png", "--h5", dir + "/u.h5"])
        #expect(c.status == 0, "\(c.stderr)")
        var g2 = RandomGenerator(seed: 7)
        let unguided = try trainer.ddpm.sample(batchSize: 2, sampler: AncestralSampler(trainer.ddpm.diffuser), generator: &g2,
                                               predictor: ClassConditionedPredictor(trainer.network, labels: [0, 0]))
        #expect(try HDF5File(path: dir + "/u.h5").readDoubles("/samples").values == unguided.data)
    }

    @Test("conditioning options: one error line each (both scales, a class ≥ K, an unconditional checkpoint, guidance without a class, φ outside [0, 1]); --help names each convention")
    func errors() throws {
        let (dir, path, _) = try checkpoint()
        let base = ["sample", "--checkpoint", path, "--out", dir + "/x.png"]
        try expectUserError(base + ["--class", "1", "--guidance", "1", "--guidance-scale", "2"], "--guidance and --guidance-scale: give one of the two")
        try expectUserError(base + ["--class", "3"], "--class 3: expected a class in 0 ..< 3 (the checkpoint was trained with --classes 3)")
        try expectUserError(base + ["--class=-1"], "--class -1: expected a class 0 or more")
        try expectUserError(base + ["--guidance", "2"], "--guidance: classifier-free guidance needs --class")
        try expectUserError(base + ["--class", "1", "--guidance", "2", "--guidance-rescale", "1.5"], "--guidance-rescale: expected a value in [0, 1], got 1.5")
        try expectUserError(base + ["--class", "1", "--guidance-rescale", "0.5"], "--guidance-rescale: only with --guidance or --guidance-scale")
        try expectUserError(base + ["--class", "1", "--guidance", "1", "--guidance-interval", "9,3"], "--guidance-interval '9,3': expected lo,hi with 0 ≤ lo ≤ hi")
        let (_, plain, _) = try microSamplingCheckpoint()
        try expectUserError(["sample", "--checkpoint", plain, "--out", dir + "/x.png", "--class", "1"], "--class: the checkpoint's network is unconditional")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.png"))
        let help = try runDDPM(["sample", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("PAPER's convention") && help.contains("guidance_scale") && help.contains("cond_scale"), "\(help)")
    }

    @Test("ddpm params --classes 10 lists label_emb.weight 11×32 and adds 11 × 32 = 352 parameters to the tiny network; train refuses data without labels or with a label ≥ K")
    func commandLine() throws {
        let plain = try runDDPM(["params", "--preset", "golden"]), cond = try runDDPM(["params", "--preset", "golden", "--classes", "10"])
        #expect(plain.status == 0 && cond.status == 0, "\(cond.stderr)")
        func total(_ text: String) -> Int? { text.split(separator: "\n").last.flatMap { Int($0.split(separator: " ").last!) } }
        #expect(cond.stdout.contains("label_emb.weight\t11x32\t352"), "\(cond.stdout)")
        #expect(total(cond.stdout)! == total(plain.stdout)! + 11 * 32, "by hand: 11 rows (10 classes + null) × the tiny time-embedding width 32")
        let dir = scratchFolder()
        try writeImages(dir + "/nolabels.h5")
        let x = randomTensor([8, 1, 16, 16], seed: 3, in: 0...1)
        try HDF5Writer.write(to: dir + "/labels.h5") {
            try $0.write(x.data, shape: x.shape, to: "/images")
            try $0.write((0..<8).map { Int64($0) }, shape: [8], to: "/labels")
        }
        let train = ["train", "--out", dir + "/c.h5", "--train-steps", "1"] + tinyRun
        try expectUserError(train + ["--data", dir + "/nolabels.h5", "--classes", "3"], "needs a dataset 'labels'")
        try expectUserError(train + ["--data", dir + "/labels.h5", "--classes", "3"], "expected classes 0 ..< 3 (--classes 3), found 3 at element 3")
        try expectUserError(train + ["--data", dir + "/labels.h5", "--label-dropout", "0.2"], "--label-dropout: only for a class-conditional network")
        try expectUserError(train + ["--data", dir + "/labels.h5", "--classes", "8", "--label-dropout", "2"], "--label-dropout: expected a probability in [0, 1], got 2.0")
        let ok = try runDDPM(train + ["--data", dir + "/labels.h5", "--classes", "8"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let t = try Trainer.load(from: dir + "/c.h5")
        #expect(t.config.network.classes == 8 && t.options.labelDropout == 0.1, "p = 0.1 by default")
    }
}
