import DDPM
import Foundation

/// The one size check of every command: each option or file field that scales memory adds a term (what it is,
/// about how many bytes), and ``check()`` refuses, before anything is allocated, a total beyond what the
/// process may use (`MemoryBudget.limit`: physical memory, `ulimit -v`, the cgroup's memory.max), naming the
/// largest terms and the estimate.
struct Footprint {
    private(set) var terms: [(what: String, bytes: Double)] = []

    init() {}

    mutating func add(_ what: String, _ bytes: Double) { terms.append((what, bytes)) }

    /// Adds `copies` float64 arrays of `shape` (as a Double: absurd shapes cannot overflow).
    mutating func add(_ what: String, doubles shape: [Int], copies: Int = 1) { add(what, MemoryBudget.bytes(ofDoubles: shape, copies: copies)) }

    var total: Double { terms.reduce(0) { $0 + $1.bytes } }

    /// Refuses (`.exceedsMemory`) a total beyond the limit; the message names the largest terms.
    func check() throws {
        let limit = MemoryBudget.limit, total = self.total
        guard total <= limit else {
            let largest = terms.sorted { $0.bytes > $1.bytes }.filter { $0.bytes >= total / 10 }.prefix(2)
            let named = largest.map { "\($0.what) (\(MemoryBudget.describe($0.bytes)))" }.joined(separator: " and ")
            throw DDPMError(.exceedsMemory, "\(named): needs about \(MemoryBudget.describe(total)) in all, more than the \(MemoryBudget.describe(limit)) this process may use")
        }
    }

    // MARK: The terms

    /// The diffusion's tables: about 24 float64 arrays of T values (β, ᾱ, posterior coefficients, their logs, …).
    mutating func diffusion(timesteps: Int, _ what: String) { add(what, doubles: [timesteps], copies: 24) }

    /// A network: its weights (1 copy to run it; 5 to train it: weights, gradients, two Adam moments and the
    /// average) and the activations of `batch` images (`activationFactor` arrays per level element when
    /// training, 4 when only running forward). `network` names the network ("the network of --checkpoint C"),
    /// `images` what sets the batch ("--batch-size 32").
    mutating func network(_ c: UNetConfiguration, batch: Int, training: Bool, network: String, images: String) {
        let shape = "\(c.channels)×\(c.imageSize)×\(c.imageSize), width \(c.baseChannels) × \(c.channelMultipliers), \(c.residualBlocksPerLevel) blocks per level, time embedding \(c.timeEmbeddingDim)"
        add("\(network) (\(shape)): its weights" + (training ? ", gradients and optimiser state" : ""), 8 * Double(training ? 5 : 1) * Self.parameters(c))
        var perImage = 0.0
        for (l, m) in c.channelMultipliers.enumerated() {
            let side = Double(c.imageSize) / Double(1 << min(l, 62))
            perImage += Double(2 * c.residualBlocksPerLevel + 1) * Double(c.baseChannels) * Double(m) * side * side
        }
        add("\(network): the activations of \(images)", 8 * (training ? activationFactor : 4) * perImage * Double(batch))
    }

    /// About the parameter count of a U-Net configuration, from its layout without building it (within a few
    /// per cent of `UNet.parameterCount`; the norms' and biases' few values are left out).
    static func parameters(_ c: UNetConfiguration) -> Double {
        let l = c.layout, temb = Double(c.timeEmbeddingDim)
        func block(_ b: UNetLayout.Block) -> Double { block(b.input, b.output) }
        func block(_ input: Int, _ output: Int) -> Double {
            let (i, o) = (Double(input), Double(output))
            return 9 * i * o + 9 * o * o + temb * o + (input != output ? i * o : 0)
        }
        func attention(_ w: Int) -> Double { 4 * Double(w) * Double(w) }
        var p = 8 * temb * temb + 9 * Double(c.channels) * Double(l.stem) + 9 * Double(l.final) * Double(c.outputChannels)
        for level in l.down + l.up {
            p += level.blocks.map(block).reduce(0, +) + (level.attention ? attention(level.width) : 0)
        }
        p += 9 * Double(l.down.dropLast().reduce(0) { $0 + $1.width * $1.width }) + 9 * Double(l.up.dropLast().reduce(0) { $0 + $1.width * $1.width })
        p += 2 * block(l.middle, l.middle) + attention(l.middle)
        p += Double((c.classes ?? -1) + 1) * temb   // label_emb: K + 1 rows
        return p
    }
}
