// Issue 19, the rest: `ddpm train` writes a loss figure beside the checkpoint (with the held-out loss at the
// checkpoints of `--held-out`), drawn from the loss history the checkpoint holds, so that a resumed run draws
// the whole curve; the figure follows the one output rule. `ddpm evaluate --samples` prints the demo's sample
// statistics (`PixelStatistics`, pinned here by hand on a tiny input).

import Foundation
import FileOutput
@testable import DDPMCommand
import TestSupport
import Testing
import DDPM

/// The points of the SVG polyline whose title is `title` ("x,y" pairs), and the steps and values of the circles
/// titled "held-out loss at step N: V".
func lossFigureContents(_ svg: String, line title: String = "loss of each step") -> (line: [String], heldOut: [(step: Int, value: String)]) {
    var line: [String] = []
    for part in svg.components(separatedBy: "<polyline").dropFirst() where part.contains("<title>\(title)</title>") {
        guard let start = part.range(of: "points=\""), let end = part[start.upperBound...].firstIndex(of: "\"") else { continue }
        line += part[start.upperBound..<end].split(separator: " ").map(String.init)
    }
    var heldOut: [(Int, String)] = []
    for part in svg.components(separatedBy: "<title>held-out loss at step ").dropFirst() {
        let head = part.prefix { $0 != "<" }
        let fields = head.split(separator: ":", maxSplits: 1)
        if fields.count == 2, let step = Int(fields[0]) { heldOut.append((step, fields[1].trimmingCharacters(in: .whitespaces))) }
    }
    return (line, heldOut)
}

/// Four 1×16×16 held-out images in [0, 1] (drawn apart from `writeImages`'s training images).
func writeHeldOut(_ path: String) throws {
    let x = randomTensor([4, 1, 16, 16], seed: 11, in: 0...1)
    try HDF5Writer.write(to: path) { try $0.write(x.data, shape: x.shape, to: "/images") }
}

@Suite("Issue 19: the training-loss figure of ddpm train, and the loss history in checkpoints")
struct LossFigureTests {
    @Test("train: one polyline point per step, held-out circles at the start and at every checkpoint, the checkpoint's own values")
    func figureOfATinyRun() throws {
        let dir = scratchFolder()
        try writeImages(dir + "/data.h5"); try writeHeldOut(dir + "/ho.h5")
        let r = try runDDPM(["train", "--data", dir + "/data.h5", "--held-out", dir + "/ho.h5", "--out", dir + "/c.h5",
                             "--train-steps", "5", "--checkpoint-every", "2"] + tinyRun)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("wrote \(dir)/c.h5 and \(dir)/c.loss.svg at step 5; held-out loss "), "\(r.stdout)")
        let svg = try String(contentsOfFile: dir + "/c.loss.svg", encoding: .utf8)
        let (line, heldOut) = lossFigureContents(svg)
        print("polyline points \(line.count), held-out circles \(heldOut.map(\.step))")
        #expect(line.count == 5, "\(line)")
        // Checkpoints at 2, 4 and the last step 5; the start (step 0) before any training.
        #expect(heldOut.map(\.step) == [0, 2, 4, 5])
        // The checkpoint holds the histories the figure draws; its last held-out point is the held-out loss of
        // its own weights (evaluated before the save, with t and ε from seed 0 in batches of the batch size 2).
        let trainer = try Trainer.load(from: dir + "/c.h5")
        #expect(trainer.lossHistory.map(\.step) == [1, 2, 3, 4, 5])
        #expect(trainer.heldOutHistory.map(\.step) == [0, 2, 4, 5])
        #expect(heldOut.map(\.value) == trainer.heldOutHistory.map { String(format: "%.6g", $0.loss) })
        let images = try ImageData.load(path: dir + "/ho.h5", dataset: nil, channels: 1, imageSize: 16)
        let now = try trainer.heldOutLoss(images, seed: 0, batchSize: 2)
        print("held-out loss at step 5: stored \(trainer.heldOutHistory.last!.loss), recomputed \(now)")
        #expect(trainer.heldOutHistory.last!.loss == now)
    }

    @Test("resume: the figure beside a checkpoint resumed in place is redrawn with the whole curve; the run equals an uninterrupted one bit for bit")
    func resumeDrawsTheWholeCurve() throws {
        let dir = scratchFolder()
        try writeImages(dir + "/data.h5"); try writeHeldOut(dir + "/ho.h5")
        let base = ["train", "--data", dir + "/data.h5", "--held-out", dir + "/ho.h5", "--checkpoint-every", "2"]
        let first = try runDDPM(base + ["--out", dir + "/c.h5", "--train-steps", "4"] + tinyRun)
        #expect(first.status == 0, "\(first.stderr)")
        let before = try Trainer.load(from: dir + "/c.h5")
        // No --force: the default figure of a checkpoint resumed in place is replaced with it.
        let resumed = try runDDPM(base + ["--resume", dir + "/c.h5", "--out", dir + "/c.h5", "--train-steps", "7"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let (line, heldOut) = lossFigureContents(try String(contentsOfFile: dir + "/c.loss.svg", encoding: .utf8))
        print("after resume: polyline points \(line.count), held-out circles \(heldOut.map(\.step))")
        #expect(line.count == 7)
        #expect(heldOut.map(\.step) == [0, 2, 4, 6, 7])
        let after = try Trainer.load(from: dir + "/c.h5")
        #expect(Array(after.lossHistory.prefix(4)) == before.lossHistory)
        #expect(Array(after.heldOutHistory.prefix(3)) == before.heldOutHistory)
        // The same seven steps in one run: the same weights, losses and held-out points, bit for bit (the
        // held-out loss and the figure take nothing from the training's random streams).
        let straight = try runDDPM(base + ["--out", dir + "/s.h5", "--train-steps", "7"] + tinyRun)
        #expect(straight.status == 0, "\(straight.stderr)")
        let s = try Trainer.load(from: dir + "/s.h5")
        #expect(s.network.parameters.map(\.data) == after.network.parameters.map(\.data))
        #expect(s.lossHistory == after.lossHistory && s.heldOutHistory == after.heldOutHistory)
        #expect(try String(contentsOfFile: dir + "/s.loss.svg", encoding: .utf8) == String(contentsOfFile: dir + "/c.loss.svg", encoding: .utf8))
    }

    @Test("an existing figure is refused without --force (one error line, nothing changed); --loss-figure and --no-loss-figure")
    func figureFollowsTheOutputRule() throws {
        let dir = scratchFolder()
        try writeImages(dir + "/data.h5")
        try "precious".write(toFile: dir + "/c.loss.svg", atomically: false, encoding: .utf8)
        let run = ["train", "--data", dir + "/data.h5", "--out", dir + "/c.h5", "--train-steps", "1"] + tinyRun
        let before = snapshot(dir)
        try expectUserError(run, "--loss-figure \(dir)/c.loss.svg: exists and was not written by this run; it is kept; pass --force to replace it")
        #expect(snapshot(dir) == before)
        // An explicit figure elsewhere; then none at all.
        let named = try runDDPM(run + ["--loss-figure", dir + "/named.svg"])
        #expect(named.status == 0 && FileManager.default.fileExists(atPath: dir + "/named.svg"), "\(named.stderr)")
        #expect(try String(contentsOfFile: dir + "/c.loss.svg", encoding: .utf8) == "precious")
        let none = try runDDPM(["train", "--data", dir + "/data.h5", "--out", dir + "/d.h5", "--train-steps", "1", "--no-loss-figure"] + tinyRun)
        #expect(none.status == 0 && !FileManager.default.fileExists(atPath: dir + "/d.loss.svg"), "\(none.stderr)")
        try expectUserError(run + ["--force", "--loss-figure", dir + "/x.svg", "--no-loss-figure"], "contradict")
        // Resuming into a new checkpoint: its default figure is new; an explicit existing figure needs --force even in place.
        try expectUserError(["train", "--data", dir + "/data.h5", "--resume", dir + "/c.h5", "--out", dir + "/c.h5", "--train-steps", "2",
                             "--loss-figure", dir + "/named.svg"], "pass --force")
        try expectUserError(run + ["--force", "--held-out", dir + "/missing.h5"], "missing.h5")
    }

    @Test("checkpoint histories: saved and loaded as they were; out-of-order or too-late steps are refused by name")
    func historiesInTheCheckpoint() throws {
        let data = digits8(16)
        var options = TrainingOptions(); options.batchSize = 4
        let trainer = try Trainer(config: microConfiguration(), options: options, seed: 2)
        let heldOut = data.slice(axis: 0, start: 0, length: 5)
        try trainer.recordHeldOutLoss(heldOut, seed: 3)
        for _ in 0..<3 { try trainer.trainStep(on: data) }
        try trainer.recordHeldOutLoss(heldOut, seed: 3, batchSize: 2)
        let dir = scratchFolder()
        try trainer.save(to: dir + "/c.h5")
        let loaded = try Trainer.load(from: dir + "/c.h5")
        #expect(loaded.lossHistory.map(\.step) == [1, 2, 3] && loaded.lossHistory == trainer.lossHistory)
        #expect(loaded.heldOutHistory.map(\.step) == [0, 3] && loaded.heldOutHistory == trainer.heldOutHistory)
        trainer.lossHistory = [LossRecord(step: 2, loss: 1), LossRecord(step: 1, loss: 1)]
        try trainer.save(to: dir + "/order.h5")
        expectError(.malformedFile, mentioning: ["/training/loss_history/step", "found 1 at index 1"]) { _ = try Trainer.load(from: dir + "/order.h5") }
        trainer.lossHistory = []
        trainer.heldOutHistory = [LossRecord(step: 4, loss: 1)]
        try trainer.save(to: dir + "/late.h5")
        expectError(.malformedFile, mentioning: ["/training/held_out_history/step", "checkpoint's step 3", "found 4"]) { _ = try Trainer.load(from: dir + "/late.h5") }
    }

    @Test("TrainingLoop: afterSave runs after each checkpoint is on disk, and held-out points are recorded before each save")
    func afterSaveFollowsEachCheckpoint() throws {
        let data = digits8(8)
        var options = TrainingOptions(); options.batchSize = 2
        let trainer = try Trainer(config: microConfiguration(), options: options, seed: 1)
        let path = scratchFolder() + "/c.h5"
        var seen: [(step: Int, onDisk: Int, heldOut: [Int])] = []
        var progressSteps: [Int] = []
        try TrainingLoop.run(trainer, images: data, until: 5, checkpointEvery: 2, checkpoint: path,
                             heldOut: HeldOutSchedule(images: data.slice(axis: 0, start: 0, length: 3), seed: 1, every: 2)) { p in
            progressSteps.append(p.step)
        } afterSave: { t in
            let onDisk = try Trainer.load(from: path)
            seen.append((t.step, onDisk.step, onDisk.heldOutHistory.map(\.step)))
        }
        #expect(progressSteps == [1, 2, 3, 4, 5])
        #expect(seen.map(\.step) == [2, 4, 5] && seen.map(\.onDisk) == [2, 4, 5], "\(seen)")
        #expect(seen.map(\.heldOut) == [[0, 2], [0, 2, 4], [0, 2, 4, 5]], "\(seen)")
    }

    @Test("the held-out loss in batches is the one-batch loss (batch means weighted by their sizes)")
    func batchedHeldOutLoss() throws {
        let data = digits8(7)
        let trainer = try Trainer(config: microConfiguration(), options: TrainingOptions(), seed: 4)
        let whole = try trainer.heldOutLoss(data, seed: 8)
        for b in [1, 3, 7, 100] {
            let batched = try trainer.heldOutLoss(data, seed: 8, batchSize: b)
            print("held-out loss: one batch \(whole), batches of \(b) \(batched), relative difference \(abs(batched - whole) / whole)")
            #expect(abs(batched - whole) <= 1e-13 * whole)
        }
    }

    @Test("an output committed at each write is in place during the work, with the plan's other outputs still staged")
    func outputsCommittedAtEachWrite() throws {
        let dir = scratchFolder()
        var plan = OutputPlan()
        plan.output("--a", dir + "/a", mayReplace: false, atEachWrite: true)
        plan.output("--b", dir + "/b", mayReplace: false, atEachWrite: true)
        #expect(!plan.commitsTogether)
        try plan.check()
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try plan.run {
                try writeText("a1", to: dir + "/a")
                #expect(try String(contentsOfFile: dir + "/a", encoding: .utf8) == "a1")
                try writeText("b1", to: dir + "/b"); try writeText("a2", to: dir + "/a")
                #expect(try String(contentsOfFile: dir + "/a", encoding: .utf8) == "a2" && String(contentsOfFile: dir + "/b", encoding: .utf8) == "b1")
                throw Stop()
            }
        }
        // A failure keeps what was committed (a training run's last checkpoint and its figure).
        #expect(try String(contentsOfFile: dir + "/a", encoding: .utf8) == "a2" && String(contentsOfFile: dir + "/b", encoding: .utf8) == "b1")
        var mixed = OutputPlan()
        mixed.output("--c", dir + "/c", mayReplace: false, atEachWrite: true)
        mixed.output("--d", dir + "/d", mayReplace: false)
        mixed.output("--e", dir + "/e", mayReplace: false)
        #expect(mixed.commitsTogether)
        try mixed.run {
            try writeText("c", to: dir + "/c"); try writeText("d", to: dir + "/d"); try writeText("e", to: dir + "/e")
            #expect(FileManager.default.fileExists(atPath: dir + "/c") && !FileManager.default.fileExists(atPath: dir + "/d"))
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/d") && FileManager.default.fileExists(atPath: dir + "/e"))
        #expect(temporaries(dir).isEmpty)
    }
}

@Suite("Issue 19: the sample statistics of ddpm evaluate")
struct EvaluateSampleStatisticsTests {
    @Test("PixelStatistics by hand: mean, ink, 10-bin histogram (clamped), mean image, both distances")
    func pixelStatisticsByHand() {
        // Two 1×1×2 images, values inside bins 0, 6 / 9 (1.0 is the last bin), 3.
        let a = PixelStatistics(Tensor(shape: [2, 1, 1, 2], data: [0.05, 0.65, 1.0, 0.35]), range: 0...1)
        #expect(abs(a.mean - 0.5125) < 1e-15 && a.inkFraction == 0.5)
        #expect(a.histogram == [0.25, 0, 0, 0.25, 0, 0, 0.25, 0, 0, 0.25])
        #expect(abs(a.meanImage[0] - 0.525) < 1e-15 && abs(a.meanImage[1] - 0.5) < 1e-15)
        let b = PixelStatistics(Tensor(shape: [1, 1, 1, 2], data: [0.25, 0.95]), range: 0...1)
        // ½ (|.25| + |0 − .5| + |.25| + |.25| + |.25 − .5|) = 0.75; √(((.525 − .25)² + (.5 − .95)²)/2) = √0.1390625.
        #expect(abs(a.histogramDistance(to: b) - 0.75) < 1e-15)
        #expect(abs(a.meanImageDistance(to: b) - 0.1390625.squareRoot()) < 1e-15, "\(a.meanImageDistance(to: b))")
        // Range [−1, 1]: −3 is clamped into bin 0 and 1.5 into bin 9 (and is ink); the mean is of the raw values.
        let c = PixelStatistics(Tensor(shape: [1, 1, 1, 2], data: [-3, 1.5]), range: -1...1)
        #expect(c.mean == -0.75 && c.inkFraction == 0.5 && c.histogram == [0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0.5])
    }

    @Test("evaluate --samples prints the statistics of the samples `ddpm sample` draws with the same seed and sampler, against the evaluated images")
    func statisticsOfTheSameSamples() throws {
        let dir = scratchFolder()
        let checkpoint = try makeCheckpoint(dir)
        for sampler in [[String](), ["--sampler", "ddim", "--sample-steps", "4"]] {
            let e = try runDDPM(["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data.h5", "--images", "5", "--samples", "3", "--seed", "4"] + sampler)
            #expect(e.status == 0, "\(e.stderr)")
            print(e.stdout)
            #expect(e.stderr.contains("evaluate: 3 samples × \(sampler.isEmpty ? 10 : 4) sampler steps"), "\(e.stderr)")
            let s = try runDDPM(["sample", "--checkpoint", checkpoint, "--count", "3", "--seed", "4", "--out", dir + "/s.png", "--h5", dir + "/s.h5", "--force"] + sampler)
            #expect(s.status == 0, "\(s.stderr)")
            let drawn = try HDF5File(path: dir + "/s.h5").readDoubles("/samples")
            let samples = PixelStatistics(Tensor(shape: drawn.shape, data: drawn.values), range: 0...1)
            let images = try ImageData.load(path: dir + "/data.h5", dataset: nil, channels: 1, imageSize: 16)
            let data = PixelStatistics(images.slice(axis: 0, start: 0, length: 5), range: 0...1)
            let first3 = PixelStatistics(images.slice(axis: 0, start: 0, length: 3), range: 0...1)
            let f = { (v: Double) in String(format: "%.4f", v) }
            for expected in [
                "mean pixel: data \(f(data.mean)), samples \(f(samples.mean))",
                "ink fraction (pixels above the middle of the range): data \(f(data.inkFraction)), samples \(f(samples.inkFraction))",
                "(total variation, 10 bins; 0 identical, 1 disjoint): samples \(f(data.histogramDistance(to: samples))); the first 3 evaluated images: \(f(data.histogramDistance(to: first3)))",
                "mean-image distance to the data (RMS): samples \(f(data.meanImageDistance(to: samples))); the first 3 evaluated images: \(f(data.meanImageDistance(to: first3)))",
            ] {
                #expect(e.stdout.contains(expected), "missing '\(expected)' in \(e.stdout)")
            }
        }
        let none = try runDDPM(["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data.h5", "--images", "2", "--samples", "0"])
        #expect(none.status == 0 && !none.stdout.contains("mean pixel") && !none.stderr.contains("samples ×"), "\(none.stdout)")
        try expectUserError(["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data.h5", "--samples", "-1"], "--samples: expected 0 or a positive number, got -1")
        try expectUserError(["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data.h5", "--sample-steps", "50"], "--sample-steps: expected between 1 and 10")
        try expectUserError(["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data.h5", "--sampler", "bogus"], "--sampler 'bogus'")
        try expectUserError(["evaluate", "--checkpoint", checkpoint, "--data", dir + "/data.h5", "--samples", "0", "--sampler", "ddim", "--sample-steps", "4"],
                            "--sampler, --sample-steps apply to the samples, and --samples 0 draws none")
    }
}
