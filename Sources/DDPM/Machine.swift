// The machine the library computes on: the start-up set-up and what `ddpm bench` reports. The command
// reaches the kernels only through here, so the layer below (Kernels) stays behind the library.

import Dispatch
import Kernels

public enum Machine {
    /// Keeps large freed buffers for reuse instead of returning them to the system (call once at
    /// start-up, before any work; see `Allocator`).
    public static func prepare() { Allocator.retainFreedMemory() }

    /// CPU, BLAS library and version, the BLAS core and how it was chosen, threads, and whether the
    /// direct 3×3 convolution kernels run (`ConvolutionKernels.directAvailable`), one line each; and a
    /// warning when the core is a generic fallback for this CPU.
    public static func report() -> (lines: [String], warning: String?) {
        let blas = BLASLibrary.shared
        var lines = ["cpu: \(blas.cpu.summary)"]
        let name = blas.configuration.isEmpty ? "a BLAS that is not OpenBLAS" : blas.configuration
        lines.append("blas: \(name) (\(blas.path))")
        let how: String
        if let user = blas.userCoreType { how = "OPENBLAS_CORETYPE=\(user) set by the user" }
        else if let requested = blas.requestedCore { how = "requested \(requested) for this CPU" }
        else { how = "OpenBLAS's own choice" }
        let threads = blas.splitsProducts
            ? "OpenBLAS single-threaded, products split over \(Parallel.parts) cores by ddpm"
            : "\(blas.threads) OpenBLAS thread\(blas.threads == 1 ? "" : "s")"
        lines.append("blas core: \(blas.core.isEmpty ? "unknown" : blas.core) (\(how)); \(threads)")
        lines.append(ConvolutionKernels.directAvailable
            ? "direct 3×3 kernels: on (AVX-512, release build): small networks' 3×3 same convolutions on 8- and 16-wide planes skip im2col and OpenBLAS"
            : "direct 3×3 kernels: off (\(ConvolutionKernels.directOnThisCPU ? "debug build" : "no AVX-512 on this CPU")): every convolution goes through im2col + OpenBLAS")
        var warning: String?
        if blas.isFallback {
            let better = OpenBLASCore.preferred(for: blas.cpu.features) ?? "a wider core"
            warning = "warning: BLAS core \(blas.core) is a generic fallback on this CPU; expect several times slower products (unset OPENBLAS_CORETYPE or set it to \(better))"
        }
        return (lines, warning)
    }

    /// C = A·B for n×n row-major matrices through the library's matrix product (`Gemm.blas`): the
    /// reference rate a benchmark compares the network with.
    public static func multiplySquare(_ a: [Double], _ b: [Double], into c: inout [Double], size n: Int) {
        precondition(a.count == n * n && b.count == n * n && c.count == n * n, "multiplySquare: operands are not \(n)×\(n)")
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            Gemm.blas(GemmShape(m: n, n: n, k: n), pa.baseAddress!, pb.baseAddress!, pc.baseAddress!)
        } } }
    }
    /// The rate of small products as a convolution runs them: every core at once (``Kernels/Parallel/cores``
    /// lanes on the worker pool) repeats its own unsplit product `C (m × n) = A (m × k) · B (k × n)`
    /// (`Gemm.blas` with `split: false`, as a lane of a convolution calls it) `repeats` times; returns
    /// 2·m·n·k·repeats·cores / the elapsed seconds, the minimum over `runs` timed runs after a warm-up.
    public static func concurrentProductRate(m: Int, n: Int, k: Int, repeats: Int, runs: Int) -> Double {
        precondition(m > 0 && n > 0 && k > 0 && repeats > 0 && runs > 0, "concurrentProductRate: m=\(m) n=\(n) k=\(k) repeats=\(repeats) runs=\(runs)")
        let lanes = Parallel.cores, sizes = (a: m * k, b: k * n, c: m * n)
        let memory = UnsafeMutablePointer<Double>.allocate(capacity: lanes * (sizes.a + sizes.b + sizes.c))
        defer { memory.deallocate() }
        let total = lanes * (sizes.a + sizes.b + sizes.c)
        for i in 0..<total { memory[i] = Double(i % 17) / 17 - 0.5 }  // any finite values: the rate does not depend on them
        let operands = (0..<lanes).map { lane in
            let base = memory + lane * (sizes.a + sizes.b + sizes.c)
            return (a: UnsafePointer(base), b: UnsafePointer(base + sizes.a), c: base + sizes.a + sizes.b)
        }
        var best = Double.infinity
        for run in 0...runs {
            let start = DispatchTime.now().uptimeNanoseconds
            Parallel.forEachLane(lanes, threads: lanes) { lane in
                let o = operands[lane]
                for _ in 0..<repeats { Gemm.blas(GemmShape(m: m, n: n, k: k), o.a, o.b, o.c, split: false) }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if run > 0 { best = min(best, seconds) }
        }
        return 2 * Double(m * n * k * repeats * lanes) / best
    }
}
