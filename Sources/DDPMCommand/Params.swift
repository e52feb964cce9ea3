import ArgumentParser
import DDPM
import FileOutput

/// `ddpm params`: the parameter ledger of a U-Net configuration, ending in `total N`.
struct Params: FileCommand {
    static let configuration = CommandConfiguration(abstract: "Print the U-Net's parameter ledger (name, shape, count) and the total.")

    @OptionGroup var network: NetworkOptions

    func checkOptions() throws { _ = try network.configuration() }
    func files() throws -> OutputPlan { OutputPlan() }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.add("the network's weights", 8 * Footprint.parameters(try network.configuration()))
        return f
    }

    func work() throws {
        let net = try UNet(network.configuration())
        for (name, shape, count) in net.ledger {
            print("\(name)\t\(shape.map(String.init).joined(separator: "x"))\t\(count)")
        }
        print("total \(net.parameterCount)")
    }
}
