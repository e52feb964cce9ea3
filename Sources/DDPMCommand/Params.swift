import ArgumentParser
import DDPM

/// `ddpm params`: the parameter ledger of a U-Net configuration, ending in `total N`.
struct Params: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the U-Net's parameter ledger (name, shape, count) and the total.")

    @OptionGroup var network: NetworkOptions

    func run() throws {
        let net = try UNet(network.configuration())
        for (name, shape, count) in net.ledger {
            print("\(name)\t\(shape.map(String.init).joined(separator: "x"))\t\(count)")
        }
        print("total \(net.parameterCount)")
    }
}
