import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm bench`: the default network's forward and forward+backward speed, against the machine's DGEMM rate.
struct Bench: FileCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the U-Net forward and forward+backward passes (float64) and compare with cblas_dgemm.",
        discussion: """
        FLOPs are counted as 2 × the multiply–adds of every convolution, linear layer and attention product \
        (UNet.forwardMultiplyAdds); forward+backward is counted as 3 × the forward FLOPs (the backward pass \
        computes two products per forward product), and so is the training step (forward+backward, clipping, \
        Adam and the weight average, as `ddpm train` runs it). Elementwise work is not counted. Each figure is the \
        minimum over --runs timed runs after one warm-up run. Build with -c release.
        """)

    @OptionGroup var network: NetworkOptions
    @Option(help: "Batch sizes to time, comma-separated.") var batches: String = "1,8"
    @Option(help: "Timed runs per measurement (the minimum is reported).") var runs: Int = 3
    @Option(help: "Side of the square matrices for the DGEMM reference rate.") var gemmSize: Int = 2048
    @Option(help: "Also time DDIM sampling (η = 0, improved-diffusion 'ddimN', T = 1000) of 8 images in this many steps, against N × the batch-8 forward time + 5 % (0: skip).")
    var ddimSteps: Int = 0
    @Option(help: "Also time DPM-Solver++(2M) (N evaluations) and Heun (2N − 1) on Karras σ (ρ = 7, T = 1000) of 8 images in this many steps N, against the evaluations × the batch-8 forward time + 5 % (0: skip).")
    var solverSteps: Int = 0

    /// T of the diffusion `--ddim-steps` samples from.
    static let ddimTimesteps = 1000

    func batchSizes() throws -> [Int] {
        let sizes = try Presets.integers(batches, option: "--batches")
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }) else { throw DDPMError(.invalidValue, "--batches '\(batches)': expected positive batch sizes") }
        return sizes
    }

    func checkOptions() throws {
        try requireRange("--runs", runs, 1...Int.max)
        try requireRange("--gemm-size", gemmSize, 1...Int.max)
        try requireRange("--ddim-steps", ddimSteps, 0...Self.ddimTimesteps, "0 (no DDIM timing) or a number of steps from 1 to \(Self.ddimTimesteps)")
        if ddimSteps > 0 { _ = try Respacing.improvedDiffusionTimesteps(timesteps: Self.ddimTimesteps, sectionCounts: "ddim\(ddimSteps)") }
        try requireRange("--solver-steps", solverSteps, 0...Self.ddimTimesteps, "0 (no solver timing) or a number of steps from 1 to \(Self.ddimTimesteps)")
        _ = try batchSizes()
        _ = try network.configuration()
    }

    func files() throws -> OutputPlan { OutputPlan() }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.add("--gemm-size \(gemmSize): three \(gemmSize)×\(gemmSize) matrices", doubles: [gemmSize, gemmSize], copies: 3)
        let c = try network.configuration()
        f.network(c, batch: try batchSizes().max() ?? 1, training: true, network: "the network", images: "--batches \(batches) (forward and backward of the largest)")
        f.add("--batches \(batches): inputs and noise", doubles: [try batchSizes().max() ?? 1, c.channels, c.imageSize, c.imageSize], copies: 2)
        if ddimSteps > 0 || solverSteps > 0 { f.diffusion(timesteps: Self.ddimTimesteps, "T = \(Self.ddimTimesteps) diffusion tables") }
        return f
    }

    func work() throws {
        let sizes = try batchSizes()
        printMachine()
        print("results: the same bits on any number of cores and under OPENBLAS_NUM_THREADS (products and batches are cut into pieces chosen from their shapes, not from the core count)")
        let gemmRate = dgemmRate(gemmSize)
        print(String(format: "dgemm %d×%d×%d: %.2f GFLOP/s (min of %d runs)", gemmSize, gemmSize, gemmSize, gemmRate / 1e9, runs))
        let net = try UNet(network.configuration(), seed: 0)
        net.isTraining = false
        let c = net.configuration
        print("network: \(net.parameterCount) parameters, \(c.channels)×\(c.imageSize)×\(c.imageSize) input")
        // The network's products are one lowered group of samples each, much smaller than the square DGEMM
        // above; the first level's 3×3 convolution of one sample is the most common shape. Its rate (operands
        // in cache, OpenBLAS's packing included) is the ceiling for a network made of such products: the gap
        // between it and the network's rate is the lowering, the elementwise passes and the waits between them.
        // The direct 3×3 kernels (ConvolutionKernels.runsDirect…, AVX-512 release builds) do not go through
        // OpenBLAS, so a network that runs them is not bound by this line.
        let (pm, pn, pk) = (c.baseChannels, c.imageSize * c.imageSize, 9 * c.baseChannels)
        let small = Machine.concurrentProductRate(m: pm, n: pn, k: pk, repeats: max(1, 200_000_000 / (pm * pn * pk)), runs: runs)
        print(String(format: "small products: %d×%d×%d (a first-level 3×3 convolution of one sample: O × output pixels × C·9), unsplit, one per core at once: %.2f GFLOP/s (%.0f%% of dgemm), the ceiling for a network of such OpenBLAS products (lowering, elementwise passes and waits below it; the direct 3×3 kernels, where they run, are not bound by it)",
                     pm, pn, pk, small / 1e9, 100 * small / gemmRate))
        var forwardFLOPs: [Int: Double] = [:]
        for n in sizes {
            let flops = 2 * Double(net.forwardMultiplyAdds(batch: n))
            forwardFLOPs[n] = flops
            var g = RandomGenerator(seed: 1)
            let x = Tensor.randomNormal([n, c.channels, c.imageSize, c.imageSize], generator: &g)
            let noise = Tensor.randomNormal(x.shape, generator: &g)
            let t = (0..<n).map { ($0 * 997) % 1000 }
            let forward = minimumTime { _ = withoutGradients { net(x, t) } }
            let both = minimumTime {
                net.zeroGradients()
                Tensor.meanSquaredError(net(x, t), noise).backward()
            }
            let fr = flops / forward, br = 3 * flops / both
            print(String(format: "batch %d: forward %.3f s, %.2f GFLOP/s (%.0f%% of dgemm); forward+backward %.3f s, %.2f GFLOP/s (%.0f%% of dgemm); %.2f GFLOP per image forward",
                         n, forward, fr / 1e9, 100 * fr / gemmRate, both, br / 1e9, 100 * br / gemmRate, flops / Double(n) / 1e9))
        }
        print(String(format: "peak resident memory: %.2f GiB", peakResidentGiB()))
        // The whole training step as `ddpm train` runs it (batch draw, t and ε, forward, backward, clipping, Adam, EMA),
        // after the peak above: a trainer holds a second network, Adam's moments and the weight average.
        for n in sizes {
            var options = TrainingOptions()
            options.batchSize = n
            let trainer = try Trainer(config: ModelConfiguration(network: c), options: options, seed: 0)
            var g = RandomGenerator(seed: 4)
            let images = Tensor(shape: [n, c.channels, c.imageSize, c.imageSize], data: (0..<(n * c.channels * c.imageSize * c.imageSize)).map { _ in g.nextUniform() })
            let step = try minimumTime { _ = try trainer.trainStep(on: images) }
            print(String(format: "batch %d: training step %.3f s (%.0f%% of dgemm)", n, step, 100 * 3 * forwardFLOPs[n]! / step / gemmRate))
        }
        print(String(format: "peak resident memory with a trainer: %.2f GiB", peakResidentGiB()))
        if ddimSteps > 0 || solverSteps > 0 {
            let x = Tensor.zeros([8, c.channels, c.imageSize, c.imageSize])
            let forward = minimumTime { _ = withoutGradients { net(x, [Int](repeating: 500, count: 8)) } }
            let d = try GaussianDiffusion(DiffusionConfiguration(timesteps: Self.ddimTimesteps))
            if ddimSteps > 0 {
                let sampler = try SamplerChoice(kind: .ddim, steps: ddimSteps, spacing: .improvedDiffusion("ddim\(ddimSteps)")).makeSampler(for: d)
                try benchSampler("DDIM \(ddimSteps) steps", sampler, evaluations: ddimSteps, net: net, diffusion: d, forward: forward)
            }
            if solverSteps > 0 {
                for (name, solver, evaluations) in [("DPM-Solver++(2M)", SigmaSolver.dpmpp2M, solverSteps),
                                                    ("Heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1), 2 * solverSteps - 1)] {
                    let sampler = try SolverChoice(solver: solver, sigmas: .karras(rho: 7)).makeSampler(for: d, steps: solverSteps)
                    try benchSampler("\(name) \(solverSteps) steps (Karras σ)", sampler, evaluations: evaluations, net: net, diffusion: d, forward: forward)
                }
            }
        }
    }

    /// What the figures were measured on: CPU, BLAS library and version, core, threads.
    func printMachine() {
        let (lines, warning) = Machine.report()
        for line in lines { print(line) }
        if let warning { print(warning) }
    }

    /// One sampling run of 8 images (one timed run: it is `evaluations` forward passes) against `evaluations` ×
    /// the minimum batch-8 forward time `forward` + 5 %. On a shared machine the forward time varies between calls,
    /// so the run also reports the time spent inside the network during sampling, the network evaluations counted
    /// there (checked against `evaluations`), and the sampler's own overhead (total − network), which is what the
    /// 5 % allows for.
    func benchSampler(_ name: String, _ sampler: ReverseSampler, evaluations: Int, net: UNet, diffusion d: GaussianDiffusion, forward: Double) throws {
        let c = net.configuration
        let timed = TimedPredictor(net)
        var g = RandomGenerator(seed: 3)
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try d.sampleLoop(model: timed, shape: [8, c.channels, c.imageSize, c.imageSize], generator: &g, sampler: sampler)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let budget = Double(evaluations) * forward * 1.05
        print(String(format: "%@, batch 8: %.2f s; budget %d evaluations × forward %.3f s + 5%% = %.2f s: %@ (%.3f of the budget)",
                     name, seconds, evaluations, forward, budget, seconds <= budget ? "within" : "OVER", seconds / budget))
        print(String(format: "%@, batch 8: %d network evaluations (%@), %.2f s inside the network (%.3f s per forward), sampler overhead %.3f s = %.2f%% of the network time",
                     name, timed.calls, timed.calls == evaluations ? "as counted" : "EXPECTED \(evaluations)", timed.seconds, timed.seconds / Double(timed.calls),
                     seconds - timed.seconds, 100 * (seconds - timed.seconds) / timed.seconds))
    }

    func minimumTime(_ body: () throws -> Void) rethrows -> Double {
        try body()  // warm-up
        var best = Double.infinity
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    func dgemmRate(_ n: Int) -> Double {
        var g = RandomGenerator(seed: 2)
        let a = g.normals(n * n), b = g.normals(n * n)
        var c = [Double](repeating: 0, count: n * n)
        let seconds = minimumTime { Machine.multiplySquare(a, b, into: &c, size: n) }
        return 2 * pow(Double(n), 3) / seconds
    }
}

/// Peak resident set size of this process (VmHWM in /proc/self/status), in GiB.
func peakResidentGiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
    return kb / 1024 / 1024
}

/// A network wrapper that accumulates the wall-clock time spent in forward passes.
final class TimedPredictor: NoisePredictor {
    let inner: UNet
    var seconds = 0.0, calls = 0
    init(_ inner: UNet) { self.inner = inner }
    var isTraining: Bool { get { inner.isTraining } set { inner.isTraining = newValue } }
    func namedParameters() -> [(name: String, tensor: Tensor)] { inner.namedParameters() }
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9; calls += 1 }
        return inner(x, t)
    }
}
