// e^x and SiLU four elements at a time (the C kernels in Sources/CKernels). The sigmoid in every
// SiLU and the softmax in every attention block call exp once per element; glibc's exp is accurate
// to half an ULP but is one call per element, and the dependent division after it kept the SiLU
// loop waiting on latencies (a tenth of the small network's time, `perf annotate`). The vector
// version does the same float64 arithmetic for four lanes at once, within one ULP of glibc's exp;
// tests hold it against Foundation.exp (`KernelTests.vectorExponential`).

import CKernels

public enum Exponential {
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
