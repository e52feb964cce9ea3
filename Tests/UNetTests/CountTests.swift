import Foundation
import TestSupport
import Testing
import Tensors
import UNet

@Suite("Parameter count and ledger of the default U-Net")
struct CountTests {
    @Test("channels = 1 gives the seed's documented 20,907,649")
    func singleChannel() throws {
        #expect(try UNet(.seed(channels: 1)).parameterCount == 20_907_649)
    }

    @Test("channels = 3 (the seed's default arguments) gives 20,912,259")
    func threeChannels() throws {
        #expect(try UNet(.seed(channels: 3)).parameterCount == 20_912_259)
    }

    @Test("channels = 1 at 28×28 gives 20,380,289 once the unreachable attention resolution is dropped")
    func twentyEight() throws {
        var c = UNetConfiguration.seed(channels: 1)
        c.imageSize = 28
        expectError(.invalidConfiguration, mentioning: ["resolution 16", "[28, 14, 7]"]) {
            _ = try UNet(c)
        }
        c.attentionResolutions = []  // what the seed silently does
        #expect(try UNet(c).parameterCount == 20_380_289)
    }

    @Test("the ledger matches Fixtures/unet-parameters.tsv line for line (names, shapes, counts)")
    func ledgerMatchesReference() throws {
        let text = try String(contentsOfFile: fixturesFolder + "/unet-parameters.tsv", encoding: .utf8)
        let rows = text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix("total") }.map { $0.split(separator: "\t").map(String.init) }
        let ledger = try UNet(.seed(channels: 3)).ledger
        #expect(rows.count == ledger.count, "reference has \(rows.count) parameters, ledger \(ledger.count)")
        for (row, entry) in zip(rows, ledger) {
            let shape = row[1].split(separator: "x").map { Int($0)! }
            #expect(row[0] == entry.name && shape == entry.shape && Int(row[2]) == entry.count,
                    "reference \(row) vs ledger \(entry.name) \(entry.shape) \(entry.count)")
        }
        let total = text.split(separator: "\n").first { $0.hasPrefix("total") }!.split(separator: "\t").last.map { Int($0)! }
        #expect(total == ledger.reduce(0) { $0 + $1.count })
    }

    @Test func invalidConfigurationsThrowNamingTheConstraint() {
        var c = UNetConfiguration(); c.baseChannels = 100
        expectError(.invalidConfiguration, mentioning: ["width 100", "32 norm groups"]) { _ = try UNet(c) }
        c = UNetConfiguration(); c.imageSize = 30
        expectError(.invalidConfiguration, mentioning: ["size 30", "divisible by 4"]) { _ = try UNet(c) }
        c = UNetConfiguration(); c.channels = 0
        expectError(.invalidConfiguration, mentioning: ["channels", "got 0"]) { _ = try UNet(c) }
        c = UNetConfiguration(); c.channelMultipliers = []
        #expect(throws: DDPMError.self) { _ = try UNet(c) }
        c = UNetConfiguration(); c.dropout = 1
        expectError(.invalidConfiguration, mentioning: ["dropout", "got 1.0"]) { _ = try UNet(c) }
    }
}

@Suite("The default network runs")
struct DefaultNetworkTests {
    @Test("default U-Net: output shape for a batch, finite, and deterministic for a fixed seed")
    func defaultForward() throws {
        let a = try UNet(.seed(channels: 3), seed: 42), b = try UNet(.seed(channels: 3), seed: 42)
        a.isTraining = false; b.isTraining = false
        var g = RandomGenerator(seed: 1)
        let x = Tensor.randomNormal([2, 3, 32, 32], generator: &g)
        let ya = withoutGradients { a(x, [0, 999]) }, yb = withoutGradients { b(x, [0, 999]) }
        #expect(ya.shape == [2, 3, 32, 32])
        #expect(ya.data.allSatisfy { $0.isFinite })
        #expect(ya.data == yb.data, "same seed, same weights, same output")
        #expect(ya.data.contains { $0 < 0 }, "the identity output activation lets ε̂ be negative")
    }
}
