import Foundation
import TestSupport
import Testing
import TensorIO
import HDF5
import Tensors
import UNet

/// The reduced configuration of `Fixtures/unet.h5` (see `Fixtures/make_unet_fixtures.py`).
func fixtureConfiguration(_ activation: OutputActivation = .identity) -> UNetConfiguration {
    UNetConfiguration(channels: 3, baseChannels: 32, channelMultipliers: [1, 2], residualBlocksPerLevel: 1,
                      attentionResolutions: [8], imageSize: 16, timeEmbeddingDim: 64, dropout: 0.1,
                      outputActivation: activation, normGroups: 32)
}

@Suite("The U-Net against an independent numpy forward pass (rtol 1e-10, atol 1e-12)")
struct UNetFixtureTests {
    let file = try! HDF5File(path: fixturesFolder + "/unet.h5")

    @Test("Fixtures/unet.h5 outputs/identity and outputs/sigmoid", arguments: OutputActivation.allCases)
    func matchesNumpy(_ activation: OutputActivation) throws {
        let net = try UNet(fixtureConfiguration(activation))
        try net.loadWeights(from: file)
        net.isTraining = false
        let x = try file.readDoubles("inputs/x"), t = try file.readInt64s("inputs/t").values.map { Int($0) }
        #expect(t.contains(0) && t.contains(999))
        let y = withoutGradients { net(Tensor(shape: x.shape, data: x.values), t) }
        let expected = try file.readDoubles("outputs/\(activation.rawValue)")
        let c = Comparison("unet \(activation)", actual: y, expected: Tensor(shape: expected.shape, data: expected.values), tolerance: .independentImplementation)
        print("fixture \(c)")
        #expect(c.passed, "\(c)")
    }

    @Test func loadingIsAllOrNothing() throws {
        let net = try UNet(fixtureConfiguration())
        let before = net.namedParameters().map { $0.tensor.data }
        // The fixture's weights for a network of another shape: every difference is reported, none loaded.
        var other = fixtureConfiguration(); other.residualBlocksPerLevel = 2; other.channels = 1
        let wrong = try UNet(other)
        let wrongBefore = wrong.namedParameters().map { $0.tensor.data }
        do {
            try wrong.loadWeights(from: file)
            Issue.record("loading mismatched weights succeeded")
        } catch let e as DDPMError {
            #expect(e.description.contains("missing 'down_resblocks.0.1.norm1.weight'"))
            #expect(e.description.contains("'init_conv.weight': expected shape [32, 1, 3, 3], found [32, 3, 3, 3]"))
            #expect(e.description.contains("none loaded"))
        }
        #expect(wrong.namedParameters().map { $0.tensor.data } == wrongBefore)
        // A file with an extra key.
        let dir = scratchFolder("ddpm-unet")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try HDF5Writer.write(to: dir + "/w.h5") { w in
            try net.saveWeights(to: w)
            try w.write([1.0], shape: [1], to: "/weights/extra.bias")
        }
        #expect(throws: DDPMError.self) { try net.loadWeights(from: HDF5File(path: dir + "/w.h5")) }
        #expect(net.namedParameters().map { $0.tensor.data } == before)
    }

    @Test func saveLoadRoundTrip() throws {
        let a = try UNet(fixtureConfiguration(), seed: 1), b = try UNet(fixtureConfiguration(), seed: 2)
        let dir = scratchFolder("ddpm-unet")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try HDF5Writer.write(to: dir + "/a.h5") { try a.saveWeights(to: $0) }
        #expect(a.namedParameters().map { $0.tensor.data } != b.namedParameters().map { $0.tensor.data })
        try b.loadWeights(from: HDF5File(path: dir + "/a.h5"))
        #expect(a.namedParameters().map { $0.tensor.data } == b.namedParameters().map { $0.tensor.data })
    }
}
