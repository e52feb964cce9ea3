import ArgumentParser
import DDPM

/// `--rng`: which random source a seed starts (beside every `--seed` of sampling).
struct RandomOption: ParsableArguments {
    @Option(help: """
        Random source of the seed: ddpm (the project's xoshiro256**) or torch (PyTorch's CPU generator, bit for bit: \
        torch.manual_seed(seed), then one torch.randn(N, C, H, W) of float64 for x_T and one per step's z).
        """)
    var rng: String = "ddpm"

    func kind() throws -> RandomSourceKind {
        guard let k = RandomSourceKind(rawValue: rng) else {
            throw DDPMError(.unknownName, "--rng '\(rng)': expected \(RandomSourceKind.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        return k
    }
}
