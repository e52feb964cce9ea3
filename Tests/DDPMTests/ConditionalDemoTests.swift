import DDPM
import Foundation
import TestSupport
import Testing

/// A fake classifier: image i's logits are one-hot at round(first pixel) (K classes); it records the timesteps it saw.
final class FirstPixelClassifier: NoisyClassifier {
    let classes: Int
    var isTraining = true
    var seenTimesteps: [Int] = []
    var modesSeen: [Bool] = []
    init(classes: Int) { self.classes = classes }
    func namedParameters() -> [(name: String, tensor: Tensor)] { [] }
    func classifierLogits(_ x: Tensor, at t: [Int]) -> Tensor {
        seenTimesteps += t; modesSeen.append(isTraining)
        let n = x.shape[0], per = x.count / n
        var out = [Double](repeating: 0, count: n * classes)
        for i in 0..<n { out[i * classes + Int(x.data[i * per].rounded())] = 1 }
        return Tensor(shape: [n, classes], data: out)
    }
}

@Suite("Issue 20: the demo's class grid, its classifier and the recognition rates")
struct ConditionalDemoTests {
    /// N×1×2×2 images whose first pixel is `first[i]`.
    static func images(_ first: [Double]) -> Tensor {
        Tensor(shape: [first.count, 1, 2, 2], data: first.flatMap { [$0, 0, 0, 0] })
    }

    @Test("recognition: predictions [0, 1, 2, 2, 1, 0] for requests [0, 1, 1, 2, 0, 0] are 4 of 6 by hand (class 0: 2/3, 1: 1/2, 2: 1/1)")
    func recognitionByHand() throws {
        let fake = FirstPixelClassifier(classes: 3)
        let predicted = ConditionalDemo.predictions(fake, images: Self.images([0, 1, 2, 2, 1, 0]))
        #expect(predicted == [0, 1, 2, 2, 1, 0])
        #expect(fake.seenTimesteps == [0, 0, 0, 0, 0, 0], "judged at t = 0: \(fake.seenTimesteps)")
        #expect(fake.modesSeen == [false] && fake.isTraining, "evaluation mode during the call, restored after")
        let r = ConditionalDemo.recognition(predicted: predicted, requested: [0, 1, 1, 2, 0, 0], classes: 3)
        print("recognition: \(r), per class \(r.perClass)")
        #expect(r.correct == [2, 1, 1] && r.counts == [3, 2, 1])
        #expect(r.recognised == 4 && r.total == 6 && r.rate == 4.0 / 6.0)
        #expect(r.description == "66.7 % (4/6)" && r.perClass == "0: 2/3, 1: 1/2, 2: 1/1")
        // A class never requested is left out of the per-class list; nothing requested is a rate of 0.
        #expect(ConditionalDemo.recognition(predicted: [1], requested: [1], classes: 3).perClass == "1: 1/1")
        #expect(ConditionalDemo.recognition(predicted: [], requested: [], classes: 3).rate == 0)
    }

    @Test("predictions in batches of 64: 70 images with first pixel i mod 3 are predicted i mod 3; a tie goes to the first class")
    func predictionsAcrossBatches() throws {
        let fake = FirstPixelClassifier(classes: 3)
        let predicted = ConditionalDemo.predictions(fake, images: Self.images((0..<70).map { Double($0 % 3) }), t: 5)
        #expect(predicted == (0..<70).map { $0 % 3 })
        #expect(fake.modesSeen.count == 2 && fake.seenTimesteps == [Int](repeating: 5, count: 70))
        // All-zero logits (image first pixel 0 → one-hot at 0; a row of equal logits needs another fake).
        final class Flat: NoisyClassifier {
            let classes = 4; var isTraining = false
            func namedParameters() -> [(name: String, tensor: Tensor)] { [] }
            func classifierLogits(_ x: Tensor, at t: [Int]) -> Tensor { Tensor(shape: [x.shape[0], 4], data: [Double](repeating: 0.5, count: 4 * x.shape[0])) }
        }
        #expect(ConditionalDemo.predictions(Flat(), images: Self.images([3, 3])) == [0, 0])
    }

    @Test("grid labels: perClass copies of each class in turn (row k is class k)")
    func gridLabels() {
        #expect(ConditionalDemo.gridLabels(classes: 3, perClass: 2) == [0, 0, 1, 1, 2, 2])
    }

    @Test("class grid: 2 panels of 3 classes × 2 tiles of 16×16: 20 + 2·(2·65 + 1) + 8 = 290 wide, caption 24 + heading 20 + 3·65 + 1 = 240 high; labels beside each row, headings above each panel")
    func classGridLayout() throws {
        let dir = scratchFolder()
        let white = Tensor.full([6, 1, 16, 16], 1)
        var data = [Double](repeating: 1, count: 6 * 256)
        for j in 0..<256 { data[3 * 256 + j] = 0 }   // panel 1, tile 3: row 1 (class 1), column 1, black
        let marked = Tensor(shape: [6, 1, 16, 16], data: data)
        try ConditionalDemo.writeClassGrid([white, marked], classes: 3, perClass: 2, headings: ["w=0", "w=3"], caption: "grid",
                                           range: 0...1, path: dir + "/classes.png")
        let p = try PNGImage.read(path: dir + "/classes.png")
        print("classes.png: \(p.width)×\(p.height)×\(p.channels)")
        #expect((p.width, p.height, p.channels) == (290, 240, 1))
        let dark = PictureTests.dark
        // Panel 0 spans x 20 ..< 151, the gap 151 ..< 159, panel 1 159 ..< 290; the tiles start at y = 24 + 20 + 1 = 45.
        #expect(p.pixel(x: 20, y: 44) == [128] && p.pixel(x: 21, y: 45) == [255] && p.pixel(x: 155, y: 100) == [255])
        #expect(dark(p, 20..<151, 44..<240) == 0, "panel 0 is all white tiles")
        #expect(dark(p, 159..<290, 44..<240) == 64 * 64, "panel 1: one black tile of 64 × 64")
        #expect(p.pixel(x: 159 + 1 + 65, y: 45 + 65) == [0] && p.pixel(x: 159 + 65 + 64, y: 45 + 65 + 63) == [0] && p.pixel(x: 159 + 1 + 65 - 2, y: 45 + 65) == [255])
        for k in 0..<3 {
            let n = dark(p, 0..<20, (45 + 65 * k)..<(45 + 65 * k + 64))
            print("row label \(k): \(n) dark pixels")
            #expect(n > 0, "row \(k) has its label")
        }
        #expect(dark(p, 0..<20, 24..<45) == 0, "no label beside the headings")
        for (x, heading) in [(20..<151, "w=0"), (159..<290, "w=3")] {
            #expect(dark(p, x, 24..<44) > 0, "heading \(heading) above its panel")
        }
        #expect(dark(p, 0..<290, 0..<24) > 0, "the caption is drawn")
        // "W=0" and "W=3" differ in the last glyph only: their heading strips differ.
        #expect(dark(p, 20..<151, 24..<44) != dark(p, 159..<290, 24..<44))
    }

    @Test("class samples: one K·n batch per strength from the same starts; w = 0 is the conditional model (equal to guidance at w = 0 bit for bit); an unconditional trainer is refused")
    func classSamplesTiny() throws {
        var config = conditionalMicroConfiguration(classes: 3)
        config.diffusion.timesteps = 6
        let trainer = try Trainer(config: config, options: TrainingOptions(), seed: 2)
        let labels = ConditionalDemo.gridLabels(classes: 3, perClass: 2)
        let choice = SamplerChoice.ddim(steps: 3)
        let panels = try ConditionalDemo.classSamples(trainer, labels: labels, strengths: [.paper(w: 0), .paper(w: 3)], choice: choice, seed: 9)
        #expect(panels.count == 2 && panels.allSatisfy { $0.shape == [6, 1, 8, 8] })
        var g = RandomGenerator(seed: 9)
        let guidedZero = try trainer.ddpm.sample(batchSize: 6, sampler: try trainer.ddpm.makeSampler(choice), generator: &g,
                                                 predictor: try ClassifierFreeGuidedPredictor(trainer.network, labels: labels, strength: .paper(w: 0), meanChannels: 1))
        #expect(panels[0].data == guidedZero.data, "w = 0 through ClassConditionedPredictor equals the guided predictor at w = 0")
        let worst = zip(panels[0].data, panels[1].data).map { abs($0 - $1) }.max()!
        print("w = 0 vs w = 3: largest pixel difference \(worst)")
        #expect(worst > 0, "guidance at w = 3 changes the samples")
        let plain = try Trainer(config: microConfiguration(), options: TrainingOptions(), seed: 1)
        #expect(throws: DDPMError.self) { try ConditionalDemo.classSamples(plain, labels: labels, strengths: [.paper(w: 0)], choice: choice, seed: 9) }
    }

    @Test("the classifier trains for the given steps on labelled images, and a label outside 0 ..< K is refused")
    func classifierTraining() throws {
        let c = microConfiguration()
        let images = digits8(8)
        let labels = [0, 1, 2, 0, 1, 2, 0, 1]
        var options = TrainingOptions(); options.batchSize = 2
        var seen: [Int] = []
        let trainer = try ConditionalDemo.trainClassifier(images: images, labels: labels, classes: 3, network: ConditionalDemo.classifierNetwork(for: c.network),
                                                          diffusion: c.diffusion, steps: 2, options: options, seed: 4) { step, loss in
            seen.append(step); #expect(loss.isFinite)
        }
        #expect(trainer.step == 2 && seen == [1, 2] && trainer.classes == 3)
        #expect(throws: DDPMError.self) {
            try ConditionalDemo.trainClassifier(images: images, labels: labels.map { $0 + 1 }, classes: 3, network: c.network, diffusion: c.diffusion,
                                                steps: 1, options: options, seed: 4)
        }
        #expect(ConditionalDemo.classifierSteps(denoiserSteps: 900) == 300 && ConditionalDemo.classifierSteps(denoiserSteps: 2) == 1)
    }
}
