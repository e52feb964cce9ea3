// The noisy classifier's training (library and `ddpm train-classifier`) and `ddpm sample --classifier`.

import Foundation
import TestSupport
import Testing
import DDPM

/// Two classes a classifier must tell apart at small t: dark images (class 0, values in [0, 0.3]) and bright ones
/// (class 1, values in [0.7, 1]), 1×8×8, alternating.
func separableImages(_ n: Int, seed: UInt64) -> (images: Tensor, labels: [Int]) {
    let dark = randomTensor([n, 1, 8, 8], seed: seed, in: 0...0.3).data, bright = randomTensor([n, 1, 8, 8], seed: seed + 1, in: 0.7...1).data
    let labels = (0..<n).map { $0 % 2 }
    var data: [Double] = []
    for i in 0..<n { data += (labels[i] == 0 ? dark : bright)[(i * 64)..<((i + 1) * 64)] }
    return (Tensor(shape: [n, 1, 8, 8], data: data), labels)
}

/// A small encoder for 1×8×8 images.
let encoder8 = UNetConfiguration(channels: 1, baseChannels: 8, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                                 attentionResolutions: [4], imageSize: 8, timeEmbeddingDim: 16, dropout: 0, normGroups: 4)

@Suite("Noisy classifier: training and its checkpoint")
struct ClassifierTrainingTests {
    @Test("training separates two classes: held-out accuracy at the lowest quarter of t ≥ 90 % after 60 steps (chance: 50 %)")
    func learnsSeparableClasses() throws {
        var options = TrainingOptions(); options.batchSize = 8; options.learningRate = 3e-3
        let trainer = try ClassifierTrainer(config: ModelConfiguration(network: encoder8, diffusion: DiffusionConfiguration(timesteps: 20)),
                                            classes: 2, options: options, seed: 1)
        let train = separableImages(32, seed: 10), test = separableImages(64, seed: 20)
        let before = try trainer.evaluate(images: test.images, labels: test.labels, seed: 5)
        var losses: [Double] = []
        for _ in 0..<60 { losses.append(try trainer.trainStep(images: train.images, labels: train.labels)) }
        let after = try trainer.evaluate(images: test.images, labels: test.labels, seed: 5)
        print("classifier before: \(before)\nclassifier after 60 steps: \(after); loss \(losses.prefix(5).reduce(0, +) / 5) → \(losses.suffix(5).reduce(0, +) / 5)")
        let low = Double(after.correct[0]) / Double(after.counts[0])
        #expect(after.counts.reduce(0, +) == 64 && after.counts.allSatisfy { $0 > 0 })
        #expect(low >= 0.9, "accuracy at t in \(after.ranges[0]): \(low)")
        #expect(after.loss < before.loss, "held-out cross-entropy \(before.loss) → \(after.loss)")
    }

    @Test("a classifier checkpoint round-trips: weights, optimiser moments, step, random state; logits bit for bit")
    func roundTrip() throws {
        var options = TrainingOptions(); options.batchSize = 4
        let trainer = try ClassifierTrainer(config: ModelConfiguration(network: encoder8, diffusion: DiffusionConfiguration(timesteps: 20)),
                                            classes: 3, options: options, seed: 2)
        let data = separableImages(8, seed: 3)
        try trainer.trainStep(images: data.images, labels: data.labels.map { $0 + 1 })
        let path = scratchFolder() + "/cls.h5"
        try trainer.save(to: path)
        let loaded = try ClassifierTrainer.load(from: path)
        #expect(loaded.classes == 3 && loaded.step == 1 && loaded.config == trainer.config)
        #expect(loaded.generator.stateWords == trainer.generator.stateWords && loaded.optimizer.m == trainer.optimizer.m && loaded.optimizer.v == trainer.optimizer.v)
        trainer.network.isTraining = false; loaded.network.isTraining = false
        let a = withoutGradients { trainer.network.logits(data.images, [0, 5, 10, 19, 1, 2, 3, 4]) }
        let b = withoutGradients { loaded.network.logits(data.images, [0, 5, 10, 19, 1, 2, 3, 4]) }
        #expect(a.data == b.data)
        // A denoiser checkpoint is not a classifier checkpoint.
        let dir = scratchFolder()
        expectError(.malformedFile, mentioning: ["'ddpm-checkpoint'", "'ddpm-classifier'"]) { _ = try ClassifierTrainer.load(from: try makeCheckpoint(dir)) }
    }
}

@Suite("Classifier guidance on a user's diffuser")
struct ClassifierDiffuserTests {
    @Test("a diffuser with only the seed's interface refuses the mean hook by name, and runs the plain step without it")
    func userDiffuser() throws {
        let wrapped = Wrapped(inner: try GaussianDiffusion(timesteps: 10))
        let model = AffineNoisePredictor(channels: 1, timesteps: 10)
        let x = randomTensor([2, 1, 8, 8], seed: 1)
        let classifier = try EncoderUNet(encoder8, classes: 2)
        expectError(.invalidConfiguration, mentioning: ["no Gaussian reverse step", "Wrapped"]) {
            _ = try wrapped.denoise(model: model, x, at: [1, 1], noise: x, condition: try ClassifierMeanGuidance(classifier: classifier, labels: [0], scale: 1))
        }
        let plain = try withoutGradients { try wrapped.denoise(model: model, x, at: [1, 1], noise: x) }
        let none = try withoutGradients { try wrapped.denoise(model: model, x, at: [1, 1], noise: x, condition: nil) }
        #expect(plain.sample.data == none.sample.data)
    }
}

@Suite("ddpm train-classifier and sample --classifier")
struct ClassifierCommandTests {
    @Test("train-classifier = the library's ClassifierTrainer bit for bit (golden preset, T = 10, 3 steps); held-out accuracy printed per quarter of t")
    func commandMatchesLibrary() throws {
        let dir = scratchFolder()
        try writeLabelledImages(dir + "/data.h5")
        let r = try runDDPM(["train-classifier", "--data", dir + "/data.h5", "--held-out", dir + "/data.h5", "--out", dir + "/cls.h5", "--train-steps", "3", "--seed", "4"] + tinyClassifier)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("wrote \(dir)/cls.h5 at step 3: 2 classes") && r.stdout.contains("held-out \(dir)/data.h5: accuracy"), "\(r.stdout)")
        #expect(r.stdout.contains("t 0–1:") && r.stdout.contains("t 7–9:"), "four buckets of T = 10: \(r.stdout)")
        var options = TrainingOptions(); options.batchSize = 2; options.learningRate = 3e-4
        let lib = try ClassifierTrainer(config: ModelConfiguration(network: try Presets.network("golden"), diffusion: DiffusionConfiguration(timesteps: 10)),
                                        classes: 2, options: options, seed: 4)
        let images = try ImageData.load(path: dir + "/data.h5", dataset: nil, channels: 1, imageSize: 16)
        let labels = try ImageData.loadLabels(path: dir + "/data.h5", count: 8)!
        for _ in 0..<3 { try lib.trainStep(images: images, labels: labels) }
        let cmd = try ClassifierTrainer.load(from: dir + "/cls.h5")
        #expect(cmd.config == lib.config && cmd.classes == 2)
        for (p, q) in zip(cmd.network.namedParameters(), lib.network.namedParameters()) {
            #expect(p.name == q.name && p.tensor.data == q.tensor.data, "\(p.name) differs")
        }
    }

    @Test("train-classifier refuses, in one error line: no labels, a label beyond --classifier-classes, a held-out label beyond K, an objective option, one class")
    func refusals() throws {
        let dir = scratchFolder()
        try writeLabelledImages(dir + "/data.h5")
        try writeImages(dir + "/plain.h5")
        try HDF5Writer.write(to: dir + "/three.h5") {
            let x = randomTensor([4, 1, 16, 16], seed: 3, in: 0...1)
            try $0.write(x.data, shape: x.shape, to: "/images")
            try $0.write([0, 1, 2, 1] as [Int64], shape: [4], to: "/labels")
        }
        let run = ["train-classifier", "--out", dir + "/cls.h5", "--train-steps", "1"] + tinyClassifier
        try expectUserError(run + ["--data", dir + "/plain.h5"], "--data \(dir)/plain.h5: no dataset 'labels'")
        try expectUserError(run + ["--data", dir + "/three.h5", "--classifier-classes", "2"], "label 2 at element 2 is not one of the classifier's 2 classes")
        try expectUserError(run + ["--data", dir + "/data.h5", "--held-out", dir + "/three.h5"], "--held-out \(dir)/three.h5 dataset 'labels': label 2")
        try expectUserError(run + ["--data", dir + "/data.h5", "--mean-type", "v"], "--mean-type is an option of the denoiser's objective")
        try expectUserError(run + ["--data", dir + "/data.h5", "--classifier-classes", "1"], "--classifier-classes: expected 2 to")
        try expectUserError(run + ["--data", dir + "/data.h5", "--classes", "2"], "--classes makes a class-conditional network")
        #expect(!FileManager.default.fileExists(atPath: dir + "/cls.h5"))
    }

    @Test("sample --classifier: scale 0 draws the unguided samples bit for bit (ancestral: mean form; DDIM and a σ-view solver: score form), also over a class-conditional checkpoint with and without classifier-free guidance; refusals name the option")
    func sampleWithClassifier() throws {
        let dir = scratchFolder()
        let checkpoint = try makeCheckpoint(dir)
        try writeLabelledImages(dir + "/labelled.h5")
        let cls = dir + "/cls.h5"
        let t = try runDDPM(["train-classifier", "--data", dir + "/labelled.h5", "--out", cls, "--train-steps", "2"] + tinyClassifier)
        #expect(t.status == 0, "\(t.stderr)")
        func samples(_ extra: [String], _ name: String) throws -> [Double] {
            let r = try runDDPM(["sample", "--checkpoint", checkpoint, "--count", "2", "--out", dir + "/\(name).png", "--h5", dir + "/\(name).h5"] + extra)
            #expect(r.status == 0, "\(extra): \(r.stderr)")
            return try HDF5File(path: dir + "/\(name).h5").readDoubles("/samples").values
        }
        for (name, sampler) in [("ancestral", [String]()), ("ddim", ["--sampler", "ddim", "--sample-steps", "5"]),
                                ("euler", ["--sampler", "euler", "--sample-steps", "3"])] {
            let plain = try samples(sampler, name + "-plain")
            let zero = try samples(sampler + ["--class", "1", "--classifier", cls, "--classifier-scale", "0"], name + "-zero")
            let guided = try samples(sampler + ["--class", "1", "--classifier", cls, "--classifier-scale", "50"], name + "-guided")
            #expect(plain == zero, "\(name): scale 0 differs from unguided sampling")
            #expect(plain != guided, "\(name): scale 50 changed nothing")
            let file = try HDF5File(path: dir + "/\(name)-guided.h5")
            #expect(try file.stringAttribute("classifier_form").hasPrefix(name == "ancestral" ? "condition_mean" : "condition_score"))
            #expect(try file.doubleAttribute("classifier_scale") == 50)
        }
        // On a class-conditional checkpoint, with classifier-free guidance too: scale 0 leaves exactly the conditional (guided) samples.
        let conditional = dir + "/cond.h5"
        let tc = try runDDPM(["train", "--data", dir + "/labelled.h5", "--out", conditional, "--train-steps", "1", "--classes", "2"] + tinyRun)
        #expect(tc.status == 0, "\(tc.stderr)")
        for (name, extra) in [("cond-ancestral", ["--class", "0,1"]), ("cond-cfg-ddim", ["--class", "1", "--guidance", "2", "--sampler", "ddim", "--sample-steps", "4"])] {
            func drawn(_ more: [String], _ tag: String) throws -> [Double] {
                let r = try runDDPM(["sample", "--checkpoint", conditional, "--count", "2", "--out", dir + "/\(name)-\(tag).png", "--h5", dir + "/\(name)-\(tag).h5"] + extra + more)
                #expect(r.status == 0, "\(name) \(more): \(r.stderr)")
                return try HDF5File(path: dir + "/\(name)-\(tag).h5").readDoubles("/samples").values
            }
            let without = try drawn([], "plain"), zero = try drawn(["--classifier", cls, "--classifier-scale", "0"], "zero")
            let guided = try drawn(["--classifier", cls, "--classifier-scale", "50"], "guided")
            #expect(without == zero && without != guided, "\(name): scale 0 must equal the conditional samples, scale 50 must differ")
        }
        let run = ["sample", "--checkpoint", checkpoint, "--count", "1", "--out", dir + "/x.png"]
        try expectUserError(run + ["--classifier", cls], "--classifier: classifier guidance needs --class")
        try expectUserError(run + ["--classifier-scale", "2"], "--classifier-scale needs --classifier")
        try expectUserError(run + ["--class", "2", "--classifier", cls], "--class 2: expected a class in 0 ..< 2 (the classes of --classifier")
        try expectUserError(run + ["--class", "1", "--classifier", cls, "--sampler", "ddim", "--sample-steps", "2", "--classifier-form", "mean"], "--classifier-form mean: shifts the ancestral sampler's mean")
        try expectUserError(run + ["--class", "1", "--classifier", checkpoint], "attribute 'format' is 'ddpm-checkpoint', expected 'ddpm-classifier'")
        let t20 = try runDDPM(["train-classifier", "--data", dir + "/labelled.h5", "--out", dir + "/cls20.h5", "--train-steps", "1", "--preset", "golden", "--timesteps", "20"])
        #expect(t20.status == 0, "\(t20.stderr)")
        try expectUserError(run + ["--class", "1", "--classifier", dir + "/cls20.h5"], "trained on T = 20 (linear schedule), the checkpoint has T = 10")
    }
}
