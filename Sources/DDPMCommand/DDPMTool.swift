// The `ddpm` command: wires the library's parts together; no mathematics lives here.
import ArgumentParser
import Kernels

@main
struct DDPMTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "A float64 reference implementation of Denoising Diffusion Probabilistic Models (Ho et al., 2020).",
        version: "0.1.0",
        subcommands: [Params.self, Bench.self]
    )
}
