import TestSupport
import Testing
import Tensors
import UNet

/// A tiny network for gradient checks: every block type, widths small enough for many evaluations.
func tinyConfiguration() -> UNetConfiguration {
    UNetConfiguration(channels: 2, baseChannels: 8, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                      attentionResolutions: [4], imageSize: 8, timeEmbeddingDim: 16, dropout: 0.1, normGroups: 4)
}

func seeded(_ shape: [Int], _ seed: UInt64) -> Tensor {
    var g = RandomGenerator(seed: seed)
    return Tensor.randomNormal(shape, generator: &g)
}

@Suite("U-Net gradients by finite differences (rtol 1e-5, atol 1e-7, dropout off)")
struct UNetGradientTests {
    @Test("L_simple w.r.t. every parameter tensor and the input")
    func wholeNetwork() throws {
        let net = try UNet(tinyConfiguration(), seed: 3)
        net.isTraining = false
        let x = seeded([2, 2, 8, 8], 4), noise = seeded([2, 2, 8, 8], 5)
        let t = [0, 999]
        let inputs = net.parameters + [x]
        let r = GradientCheck.check("U-Net L_simple", inputs: inputs, tolerance: .network,
                                    mode: .directional(seed: 6, sampledCoordinates: 3)) {
            Tensor.meanSquaredError(net(x, t), noise)
        }
        print("gradcheck \(r)")
        #expect(r.passed, "\(r)")
        #expect(r.compared == inputs.count * 4 - inputs.filter { $0.count < 3 }.reduce(0) { $0 + 3 - $1.count })
    }

    @Test("each block type on its own")
    func blocks() throws {
        let net = try UNet(tinyConfiguration(), seed: 7)
        net.isTraining = false
        var g = RandomGenerator(seed: 0)
        let temb = net.timeEmbedding([3, 400]).detached()
        func check(_ name: String, _ inputs: [Tensor], _ f: @escaping () -> Tensor) {
            let r = GradientCheck.check(name, inputs: inputs, tolerance: .network, mode: .directional(seed: 8, sampledCoordinates: 4), f)
            print("gradcheck \(r)")
            #expect(r.passed, "\(r)")
        }
        let x8 = seeded([2, 8, 8, 8], 9), x16 = seeded([2, 16, 4, 4], 10), t = temb
        let withShortcut = net.down[1].blocks[0], plain = net.down[0].blocks[0]
        #expect(withShortcut.residual != nil && plain.residual == nil)
        check("residual block with 1×1 shortcut", [x8, t] + withShortcut.parametersList) { withShortcut(x8, t, training: false, generator: &g) }
        check("residual block, identity shortcut", [x8, t] + plain.parametersList) { plain(x8, t, training: false, generator: &g) }
        let attention = net.down[1].attention!
        check("attention block", [x16] + attention.parametersList) { attention(x16) }
        let mlp = net.timeMLP
        check("time MLP", [mlp.0.weight, mlp.0.bias, mlp.1.weight, mlp.1.bias]) { net.timeEmbedding([0, 17, 999]) }
        let up = net.upsamples[0]
        check("upsample (nearest ×2 + conv)", [x16, up.weight, up.bias]) { up(x16.upsampleNearest2x()) }
        let down = net.downsamples[0]
        check("downsample (3×3 stride 2)", [x8, down.weight, down.bias]) { down(x8) }
    }

    @Test("dropout is active in training mode only, and seeded")
    func dropoutModes() throws {
        let net = try UNet(tinyConfiguration(), seed: 3)
        let x = seeded([2, 2, 8, 8], 4)
        net.isTraining = false
        let e1 = withoutGradients { net(x, [1, 2]) }.data, e2 = withoutGradients { net(x, [1, 2]) }.data
        #expect(e1 == e2)
        net.isTraining = true
        let tr = withoutGradients { net(x, [1, 2]) }.data
        #expect(tr != e1)
        // Seeded: the masks come from the network's own generator, fixed by the seed, and advance with it.
        let same = try UNet(tinyConfiguration(), seed: 3), other = try UNet(tinyConfiguration(), seed: 4)
        #expect(withoutGradients { same(x, [1, 2]) }.data == tr, "same seed, same masks")
        let second = withoutGradients { same(x, [1, 2]) }.data
        #expect(second != tr, "the generator advances: the next pass draws new masks")
        other.assignParameters(from: net)
        #expect(withoutGradients { other(x, [1, 2]) }.data != tr, "another seed draws other masks (same weights)")
    }
}

extension UNet {
    /// Copies every parameter's values from `source` (same configuration).
    func assignParameters(from source: UNet) {
        for (p, q) in zip(parameters, source.parameters) { p.assign(q.data) }
    }
}

extension ResidualBlock {
    var parametersList: [Tensor] {
        [norm1.weight, norm1.bias, conv1.weight, conv1.bias, timeProjection.weight, timeProjection.bias,
         norm2.weight, norm2.bias, conv2.weight, conv2.bias] + (residual.map { [$0.weight, $0.bias] } ?? [])
    }
}
extension AttentionBlock {
    var parametersList: [Tensor] { [norm.weight, norm.bias, qkv.weight, qkv.bias, projection.weight, projection.bias] }
}
