import TestSupport
import Testing
import DDPM

/// The library's entry points for a Swift user: presets and network configurations, samplers by value.
@Suite("Entry points: DDPM(preset:), DDPM(network:), sample(batchSize:sampler:) by value")
struct LibraryEntryTests {
    @Test("every preset is a configuration Presets.network knows; DDPM(preset:) takes its size and channels")
    func presets() throws {
        for p in NetworkPreset.allCases { #expect(try Presets.network(p.rawValue) == p.configuration, "\(p)") }
        let small = try DDPM(preset: .demo, timesteps: 10, seed: 4)
        let net = try #require(small.model as? UNet)
        #expect(small.imageSize == 16 && small.channels == 1 && small.timesteps == 10)
        #expect(net.configuration == NetworkPreset.demo.configuration)
        // The same weights as the network built directly from the configuration and seed.
        #expect(net.parameters.map(\.data) == (try UNet(NetworkPreset.demo.configuration, seed: 4)).parameters.map(\.data))
    }

    @Test("DDPM(network:) doubles the output channels when the diffuser learns the variance, and checks T")
    func networkConfiguration() throws {
        let learned = try GaussianDiffusion(DiffusionConfiguration(timesteps: 10, varianceType: .learnedRange, lossType: .hybrid))
        let ddpm = try DDPM(network: NetworkPreset.golden.configuration, timesteps: 10, diffuser: learned)
        #expect((ddpm.model as? UNet)?.configuration.outputChannels == 2)
        expectError(.invalidConfiguration, mentioning: ["10 timesteps", "expected 20"]) {
            _ = try DDPM(network: NetworkPreset.golden.configuration, timesteps: 20, diffuser: learned)
        }
        expectError(.invalidValue, mentioning: ["timesteps", "got 0"]) { _ = try DDPM(preset: .golden, timesteps: 0) }
    }

    @Test("samplers by value: .ancestral() is sample(batchSize:), .ddim(steps:) is the DDIM sampler, no downcast")
    func samplersByValue() throws {
        func fresh() throws -> DDPM { try DDPM(model: stub(), imageSize: 4, channels: 1, timesteps: 20, seed: 6) }
        let a = try fresh(), b = try fresh()
        #expect(try a.sample(batchSize: 2, sampler: .ancestral()).data == b.sample(batchSize: 2).data)
        let c = try fresh(), d = try fresh()
        var indices: [Int] = []
        let byValue = try c.sample(batchSize: 2, sampler: .ddim(steps: 5)) { indices.append($0.index) }
        let explicit = try d.sample(batchSize: 2, sampler: SamplerChoice(kind: .ddim, steps: 5).makeSampler(for: GaussianDiffusion(timesteps: 20)))
        #expect(byValue.data == explicit.data)
        #expect(indices == [4, 3, 2, 1, 0], "the progress hook sees each of the 5 steps, index counting down")
        #expect(SamplerChoice.ddim(steps: 50, eta: 0.5) == SamplerChoice(kind: .ddim, steps: 50, eta: 0.5))
        #expect(SamplerChoice.ancestral(steps: 10) == SamplerChoice(kind: .ancestral, steps: 10))
    }

    @Test("a diffuser without Gaussian tables samples the full ancestral chain and refuses DDIM by name")
    func otherDiffusers() throws {
        let ddpm = try DDPM(model: stub(), imageSize: 2, channels: 1, timesteps: 20, diffuser: Wrapped(inner: try GaussianDiffusion(timesteps: 20)))
        #expect(try ddpm.sample(batchSize: 1, sampler: .ancestral()).shape == [1, 1, 2, 2])
        expectError(.invalidConfiguration, mentioning: ["ddim, 5 steps", "Wrapped", "Gaussian"]) {
            _ = try ddpm.sample(batchSize: 1, sampler: .ddim(steps: 5))
        }
    }
}

/// A diffuser that forwards to a Gaussian diffusion but does not expose its tables (a user's own diffuser).
struct Wrapped: Diffuser {
    let inner: GaussianDiffusion
    var timesteps: Int { inner.timesteps }
    func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int] { inner.sampleTimesteps(batchSize: batchSize, generator: &generator) }
    func addNoise(_ xStart: Tensor, at t: [Int], noise: Tensor) throws -> Tensor { try inner.addNoise(xStart, at: t, noise: noise) }
    func trainingLosses(modelOutput: Tensor, start: Tensor, noisy: Tensor, t: [Int], noise: Tensor) throws -> TrainingTerms {
        try inner.trainingLosses(modelOutput: modelOutput, start: start, noisy: noisy, t: t, noise: noise)
    }
    func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor) throws -> (sample: Tensor, predictedStart: Tensor) {
        try inner.denoise(model: model, x, at: t, noise: z)
    }
}
