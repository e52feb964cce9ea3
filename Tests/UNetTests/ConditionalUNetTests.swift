import Foundation
import TestSupport
import Testing
import Tensors
import TensorIO
import UNet

/// The tiny gradient-check network with K classes.
func conditionalConfiguration(classes k: Int = 3) -> UNetConfiguration {
    var c = tinyConfiguration()
    c.classes = k
    return c
}

/// Rows `labels` of `table` with a backward off by `factor` (a planted wrong derivative of the lookup).
func wrongLookup(_ table: Tensor, _ labels: [Int], factor: Double) -> Tensor {
    let width = table.shape[1]
    let out = labels.flatMap { table.data[($0 * width)..<(($0 + 1) * width)] }
    return Tensor.operation("planted lookup", shape: [labels.count, width], data: out, parents: [table]) { g in
        var gt = [Double](repeating: 0, count: table.count)
        for (n, y) in labels.enumerated() { for j in 0..<width { gt[y * width + j] += factor * g[n * width + j] } }
        return [gt]
    }
}

@Suite("Class-conditional U-Net: label_emb (improved-diffusion), K + 1 rows, row K the null class")
struct ConditionalUNetTests {
    @Test("the unconditional network is unchanged; label_emb adds (K + 1) × width parameters, named label_emb.weight after time_mlp")
    func counts() throws {
        let plain = try UNet(.seed(channels: 1))
        #expect(plain.parameterCount == 20_907_649)
        var c = UNetConfiguration.seed(channels: 1)
        c.classes = 10
        let net = try UNet(c)
        // By hand: 11 rows (10 classes and the null class) of the time-embedding width 512 = 5,632.
        #expect(11 * 512 == 5_632)
        #expect(net.parameterCount == 20_907_649 + 5_632)
        let ledger = net.ledger
        let row = try #require(ledger.first { $0.name == "label_emb.weight" })
        #expect(row.shape == [11, 512] && row.count == 5_632)
        let names = ledger.map(\.name)
        #expect(names.firstIndex(of: "label_emb.weight") == names.firstIndex(of: "time_mlp.2.bias")! + 1, "after the time embedding, as improved-diffusion registers it")
        #expect(plain.ledger.map(\.name) == names.filter { $0 != "label_emb.weight" })
        var bad = c; bad.classes = 0
        expectError(.invalidConfiguration, mentioning: ["classes", "got 0"]) { _ = try UNet(bad) }
    }

    @Test("every weight but label_emb is the unconditional network's of the same seed; a zero null row gives its output bit for bit; labels select rows")
    func embeddingIsAddedToTheTimeEmbedding() throws {
        let plain = try UNet(tinyConfiguration(), seed: 3), cond = try UNet(conditionalConfiguration(), seed: 3)
        plain.isTraining = false; cond.isTraining = false
        let shared = cond.namedParameters().filter { $0.name != "label_emb.weight" }
        #expect(shared.map(\.name) == plain.namedParameters().map(\.name))
        #expect(zip(shared, plain.namedParameters()).allSatisfy { $0.tensor.data == $1.tensor.data })
        let table = try #require(cond.labelEmbedding).weight
        #expect(table.shape == [4, 16])
        let x = seeded([2, 2, 8, 8], 4), t = [5, 900]
        var values = table.data
        for j in 0..<16 { values[3 * 16 + j] = 0 }
        table.assign(values)
        let reference = withoutGradients { plain(x, t) }.data
        #expect(withoutGradients { cond(x, t) }.data == reference, "no labels: the null class, row K = 0")
        #expect(withoutGradients { cond(x, t, labels: [3, 3]) }.data == reference)
        let y01 = withoutGradients { cond(x, t, labels: [0, 1]) }
        #expect(y01.data != reference)
        // The embedding the blocks see is time_mlp(t) + label_emb[y], row by row.
        let e = withoutGradients { cond.embedding(t, labels: [0, 1]) }.data, temb = withoutGradients { cond.timeEmbedding(t) }.data
        let rows: [Double] = table.data
        var expected: [Double] = []
        for i in 0..<32 { expected.append(temb[i] + rows[i]) }   // sample 0 takes row 0, sample 1 row 1
        #expect(e == expected)
    }

    @Test("gradient check of the conditional U-Net, the embedding rows included (rtol 1e-5); a planted wrong lookup derivative is rejected")
    func gradients() throws {
        let net = try UNet(conditionalConfiguration(), seed: 3)
        net.isTraining = false
        let x = seeded([3, 2, 8, 8], 4), noise = seeded([3, 2, 8, 8], 5)
        let t = [0, 400, 999], labels = [2, 0, 3]   // 3 = the null class
        let table = try #require(net.labelEmbedding).weight
        let inputs = net.parameters + [x]
        let r = GradientCheck.check("conditional U-Net L_simple", inputs: inputs, tolerance: .network,
                                    mode: .directional(seed: 6, sampledCoordinates: 3)) {
            Tensor.meanSquaredError(net(x, t, labels: labels), noise)
        }
        print("gradcheck \(r)")
        #expect(r.passed, "\(r)")
        // The embedding rows on their own: a direction and 12 coordinates.
        let rows = GradientCheck.check("label_emb rows", inputs: [table], tolerance: .network, mode: .directional(seed: 7, sampledCoordinates: 12)) {
            Tensor.meanSquaredError(net(x, t, labels: labels), noise) * 1e3
        }
        print("gradcheck \(rows)")
        #expect(rows.passed && rows.compared == 13, "\(rows)")
        // Row 1 is used by no sample: its gradient is exactly zero.
        net.zeroGradients()
        Tensor.meanSquaredError(net(x, t, labels: labels), noise).backward()
        #expect(table.gradValues![16..<32].allSatisfy { $0 == 0 } && table.gradValues![0..<16].contains { $0 != 0 })
        net.zeroGradients()
        // Planted: the lookup's backward off by 0.1 %.
        let bad = GradientCheck.check("planted label_emb lookup", inputs: [table], tolerance: .network, mode: .directional(seed: 7, sampledCoordinates: 12)) {
            Tensor.meanSquaredError(net(x, embedding: net.timeEmbedding(t) + wrongLookup(table, labels, factor: 1.001)), noise) * 1e3
        }
        print("gradcheck \(bad)")
        #expect(!bad.passed, "the check accepted a lookup derivative off by 0.1 %: \(bad)")
        let good = GradientCheck.check("correct lookup", inputs: [table], tolerance: .network, mode: .directional(seed: 7, sampledCoordinates: 12)) {
            Tensor.meanSquaredError(net(x, embedding: net.timeEmbedding(t) + wrongLookup(table, labels, factor: 1)), noise) * 1e3
        }
        #expect(good.passed, "\(good)")
    }

    @Test("weights round-trip under the state-dict name label_emb.weight; an unconditional file lacks it and is refused")
    func weightFiles() throws {
        let net = try UNet(conditionalConfiguration(), seed: 3), other = try UNet(conditionalConfiguration(), seed: 9)
        let path = scratchFolder() + "/w.h5"
        try HDF5Writer.write(to: path) { try net.saveWeights(to: $0) }
        let file = try HDF5File(path: path)
        #expect(try file.shape(of: "/weights/label_emb.weight") == [4, 16])
        try other.loadWeights(from: file)
        #expect(zip(other.parameters, net.parameters).allSatisfy { $0.data == $1.data })
        let plainPath = scratchFolder() + "/p.h5"
        try HDF5Writer.write(to: plainPath) { try UNet(tinyConfiguration(), seed: 3).saveWeights(to: $0) }
        expectError(.invalidValue, mentioning: ["missing 'label_emb.weight' [4, 16]"]) { try other.loadWeights(from: HDF5File(path: plainPath)) }
    }
}
