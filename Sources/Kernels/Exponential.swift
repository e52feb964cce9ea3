// e^x and SiLU four or eight elements at a time (the C kernels in Sources/CKernels). The sigmoid in every
// SiLU and the softmax in every attention block call exp once per element; glibc's exp is accurate
// to half an ULP but is one call per element, and the dependent division after it kept the SiLU
// loop waiting on latencies (a tenth of the small network's time, `perf annotate`). The vector
// version does the same float64 arithmetic for four lanes at once, within one ULP of glibc's exp;
// tests hold it against Foundation.exp (`KernelTests.vectorExponential`).

import CKernels

public enum Exponential {
    /// The three builds of the C kernels: the x86-64 baseline (SSE2), AVX2 and AVX-512. Same operations
    /// in the same order, so the same results; AVX2 does four lanes per instruction instead of two,
    /// AVX-512 eight (its elementwise kernels; the lane sums run in AVX2).
    public enum Build: Int32, Sendable, CaseIterable { case baseline = 0, avx2 = 1, avx512 = 2 }

    /// The build this CPU runs (the widest that CPUID and the OS allow).
    public static var active: Build { Build(rawValue: ddpm_kernels_variant()) ?? .baseline }

    /// ``exp(_:_:count:)`` through a chosen build (one the CPU lacks falls back to the widest it has below it).
    public static func exp(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, count: Int, build: Build) {
        ddpm_exp_variant(build.rawValue, x, y, count)
    }

    /// ``silu(_:_:sigma:count:)`` through a chosen build.
    public static func silu(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, sigma: UnsafeMutablePointer<Double>?,
                            count: Int, build: Build) {
        ddpm_silu_variant(build.rawValue, x, y, sigma, count)
    }

    /// `y[i] = e^{x[i]}` for `count` elements; `x` and `y` may be the same.
    public static func exp(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, count: Int) {
        ddpm_exp(x, y, count)
    }

    /// `y[i] = e^{x[i] − shift}` (the softmax's shifted exponentials).
    public static func exp(_ x: UnsafePointer<Double>, minus shift: Double, _ y: UnsafeMutablePointer<Double>, count: Int) {
        ddpm_exp_shifted(x, y, count, shift)
    }

    /// `y[i] = x[i] · σ(x[i])`, and `sigma[i] = σ(x[i])` when `sigma` is given, with
    /// σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) for x < 0, e = e^{−|x|} (no overflow for any x).
    public static func silu(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, sigma: UnsafeMutablePointer<Double>?, count: Int) {
        ddpm_silu(x, y, sigma, count)
    }
}
