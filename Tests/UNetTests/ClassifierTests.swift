// The noisy classifier of classifier guidance (EncoderUNet): its parameter ledger counted by hand, its
// derivatives by finite differences, and the input gradient ∇_x log p_φ(y | x_t, t) that guidance uses.

import Diffusion
import TestSupport
import Testing
import Tensors
import UNet

/// A tiny encoder: every block type (identity and 1×1 shortcuts, attention, a downsample), 1×8×8 images, 3 classes.
func tinyEncoderConfiguration() -> UNetConfiguration {
    UNetConfiguration(channels: 1, baseChannels: 8, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                      attentionResolutions: [4], imageSize: 8, timeEmbeddingDim: 16, dropout: 0.1, normGroups: 4)
}

@Suite("Noisy classifier (EncoderUNet): ledger by hand")
struct EncoderLedgerTests {
    @Test("encoder ledger by hand: 20,355 parameters for the tiny encoder, names as documented")
    func ledgerByHand() throws {
        let net = try EncoderUNet(tinyEncoderConfiguration(), classes: 3)
        // Counted by hand from the layout (weights + biases; GroupNorm: 2 per channel):
        let timeMLP = (16 * 64 + 64) + (64 * 16 + 16)                                   // time_mlp.0, time_mlp.2
        let initConv = 1 * 8 * 9 + 8                                                     // 1 → 8, 3×3
        let block0 = 2 * 8 + (8 * 8 * 9 + 8) + (16 * 8 + 8) + 2 * 8 + (8 * 8 * 9 + 8)    // 8 → 8, identity shortcut
        let block1 = 2 * 8 + (8 * 16 * 9 + 16) + (16 * 16 + 16) + 2 * 16 + (16 * 16 * 9 + 16) + (8 * 16 + 16)   // 8 → 16, 1×1 shortcut
        let downsample = 8 * 8 * 9 + 8                                                   // 3×3 stride 2 at 8 channels
        let attention = 2 * 16 + (16 * 48 + 48) + (16 * 16 + 16)                         // at resolution 4 (16 channels)
        let middleBlock = 2 * 16 + (16 * 16 * 9 + 16) + (16 * 16 + 16) + 2 * 16 + (16 * 16 * 9 + 16)
        let head = 2 * 16 + (16 * 3 + 3)                                                 // out.0 GroupNorm, out.3 1×1 conv to K = 3
        let byHand = timeMLP + initConv + block0 + block1 + downsample + attention + 2 * middleBlock + attention + head
        #expect(byHand == 20_355)
        #expect(net.parameterCount == byHand, "ledger \(net.parameterCount), by hand \(byHand)")
        let names = net.ledger.map(\.name)
        #expect(names.first == "time_mlp.0.weight")
        #expect(Array(names.suffix(4)) == ["out.0.weight", "out.0.bias", "out.3.weight", "out.3.bias"])
        #expect(net.ledger.last(where: { $0.name == "out.3.weight" })?.shape == [3, 16, 1, 1])
        #expect(names.contains("down_attn.1.qkv.weight") && names.contains("mid_block2.time_proj.bias") && names.contains("downsample.0.weight"))
        #expect(!names.contains { $0.hasPrefix("up") || $0.hasPrefix("final") }, "the encoder has no up path and no image output")
    }

    @Test("invalid classifiers are refused: one class, an image-output option")
    func refusals() {
        expectError(.invalidConfiguration, mentioning: ["classes", "got 1"]) { _ = try EncoderUNet(tinyEncoderConfiguration(), classes: 1) }
        var c = tinyEncoderConfiguration(); c.outputsVariance = true
        expectError(.invalidConfiguration, mentioning: ["classifier", "image output"]) { _ = try EncoderUNet(c, classes: 3) }
    }
}

@Suite("Noisy classifier gradients by finite differences (rtol 1e-5, atol 1e-7, dropout off)")
struct ClassifierGradientTests {
    let labels = [2, 0]
    let t = [3, 700]

    @Test("log p_φ(y | x_t, t) w.r.t. every parameter tensor and the input (the training loss's derivative)")
    func wholeNetwork() throws {
        let net = try EncoderUNet(tinyEncoderConfiguration(), classes: 3, seed: 5)
        net.isTraining = false
        let x = seeded([2, 1, 8, 8], 11)
        let inputs = net.parameters + [x]
        let r = GradientCheck.check("EncoderUNet log p_φ", inputs: inputs, tolerance: .network,
                                    mode: .directional(seed: 12, sampledCoordinates: 3)) {
            ClassifierGuidance.logProbabilities(logits: net.logits(x, t), labels: labels)
        }
        print("gradcheck \(r)")
        #expect(r.passed, "\(r)")
    }

    @Test("log-softmax on its own (full Jacobian)")
    func logSoftmax() {
        let a = seeded([3, 5], 13) * 4
        expectGradient("logSoftmax", [a]) { a.logSoftmax() }
        let p = withoutGradients { a.logSoftmax() }
        for r in 0..<3 {   // each row's probabilities sum to 1
            let s = (0..<5).reduce(0.0) { $0 + Foundation.exp(p.data[r * 5 + $1]) }
            #expect(abs(s - 1) < 1e-15, "row \(r): Σ p = \(s)")
        }
    }

    @Test("the input gradient ∇_x log p_φ(y | x_t, t) that guidance uses, against central differences; a planted wrong gradient is rejected")
    func inputGradient() throws {
        let net = try EncoderUNet(tinyEncoderConfiguration(), classes: 3, seed: 5)
        let x = seeded([2, 1, 8, 8], 11)
        func total() -> Double { ClassifierGuidance.logProbabilities(logits: net.logits(x, t), labels: labels).data.reduce(0, +) }
        // Inside withoutGradients, as in the reverse chain, and with the network in training mode (it must switch to evaluation).
        net.isTraining = true
        let classifier = AsClassifier(net)
        let (logp, g) = withoutGradients { ClassifierGuidance.logProbabilityGradient(classifier, noisy: x, t: t, labels: labels) }
        #expect(net.isTraining, "the classifier's mode is restored")
        #expect(net.parameters.allSatisfy { $0.gradValues == nil && $0.requiresGrad }, "no parameter gradient is left, parameters still train")
        net.isTraining = false
        let direct = withoutGradients { ClassifierGuidance.logProbabilities(logits: net.logits(x, t), labels: labels) }.data
        #expect(logp == direct, "log p_φ returned beside the gradient is the forward value")
        let r = GradientCheck.compare("∇_x log p_φ(y | x_t, t)", gradient: g.data, at: x, tolerance: .network, total)
        print("gradcheck \(r)")
        #expect(r.passed && r.compared == 128, "\(r)")
        // Planted: one element 1 % off, and the gradient of another label; both must fail.
        var off = g.data; off[37] *= 1.01
        let planted = GradientCheck.compare("planted: element 37 × 1.01", gradient: off, at: x, tolerance: .network, total)
        print("gradcheck \(planted)")
        #expect(!planted.passed && planted.worstLocation.contains("element 37"), "\(planted)")
        let other = withoutGradients { ClassifierGuidance.logProbabilityGradient(classifier, noisy: x, t: t, labels: [1, 1]) }.gradient
        let wrong = GradientCheck.compare("planted: gradient of labels [1, 1]", gradient: other.data, at: x, tolerance: .network, total)
        print("gradcheck \(wrong)")
        #expect(!wrong.passed, "\(wrong)")
    }

    @Test("the classifier is deterministic in evaluation mode and its dropout is seeded in training mode")
    func modes() throws {
        let a = try EncoderUNet(tinyEncoderConfiguration(), classes: 3, seed: 5), b = try EncoderUNet(tinyEncoderConfiguration(), classes: 3, seed: 5)
        let x = seeded([2, 1, 8, 8], 11)
        a.isTraining = false; b.isTraining = false
        #expect(withoutGradients { a.logits(x, t) }.data == withoutGradients { b.logits(x, t) }.data)
        let eval = withoutGradients { a.logits(x, t) }.data
        a.isTraining = true
        #expect(withoutGradients { a.logits(x, t) }.data != eval, "dropout 0.1 changes the logits in training mode")
    }
}

import Foundation

/// The encoder as a ``NoisyClassifier`` (the library's own conformance lives in the DDPM module, which these tests do not link).
final class AsClassifier: NoisyClassifier {
    let net: EncoderUNet
    init(_ net: EncoderUNet) { self.net = net }
    var classes: Int { net.classes }
    var isTraining: Bool { get { net.isTraining } set { net.isTraining = newValue } }
    func namedParameters() -> [(name: String, tensor: Tensor)] { net.namedParameters() }
    func classifierLogits(_ x: Tensor, at t: [Int]) -> Tensor { net.logits(x, t) }
}
