// The per-group loops of group normalisation (`Tensor.normalizedGroups`): the normalisation
// y = γ_c·((x − μ)·inv) + β_c (with SiLU after it when fused), SiLU's backward factor on the
// recomputed normalised values, and the input gradient. The fast versions are C kernels (Sources/CKernels)
// doing the same operations in the same order per element as the plain Swift loops kept here as the
// reference, so both give the same bits (`GroupNormKernelTests`).
//
// Every function works on one group: `channels` channels of `spatial` elements each, channel ch at
// offset ch·spatial of every array, `gamma` and `beta` pointing at the group's first channel.

import CKernels

public enum GroupNormKernels {
    /// Which loops run: the C kernels in a given build, or the plain Swift loops.
    public enum Path: Sendable, Equatable {
        case kernels(Exponential.Build)
        case reference
    }

    /// Set only inside ``withPath(_:_:)``.
    @TaskLocal static var pathOverride: Path?

    /// The loops `Tensor.normalizedGroups` runs: the C kernels in the build this CPU runs, or the path
    /// given to ``withPath(_:_:)``.
    public static var path: Path { pathOverride ?? .kernels(Exponential.active) }

    /// Runs `body` with ``path`` set to `path` (for tests: the kernels against the reference loops).
    /// Applies to the calling task; `Tensor.normalizedGroups` reads it once, on its calling thread,
    /// and uses that choice for its backward pass too.
    public static func withPath<R>(_ path: Path, _ body: () throws -> R) rethrows -> R {
        try $pathOverride.withValue(path) { try body() }
    }

    @inline(__always) static func code(_ build: Exponential.Build) -> Int32 { build.rawValue }

    @inline(__always) static func checkSizes(_ op: String, _ channels: Int, _ spatial: Int) {
        precondition(channels >= 0 && spatial >= 0, "GroupNormKernels.\(op): \(channels) channels of \(spatial) elements")
    }

    /// `y[k] = γ[ch]·((x[k] − mean)·inv) + β[ch]` for k = ch·spatial + i; with `silu`, then
    /// `y[k] = a·σ(a)` of that value a, and `sigma[k] = σ(a)` when `sigma` is given (σ as in
    /// ``Exponential/silu(_:_:sigma:count:)``). The reference path runs ``referenceNormalize(_:_:channels:spatial:gamma:beta:mean:inv:)``
    /// and then `Exponential.silu` over the group.
    public static func normalize(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, channels: Int, spatial: Int,
                                 gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>, mean: Double, inv: Double,
                                 silu: Bool, sigma: UnsafeMutablePointer<Double>?, path: Path) {
        checkSizes("normalize", channels, spatial)
        switch path {
        case .kernels(let build):
            if silu {
                ddpm_group_normalize_silu(code(build), x, y, sigma, channels, spatial, gamma, beta, mean, inv)
            } else {
                ddpm_group_normalize(code(build), x, y, channels, spatial, gamma, beta, mean, inv)
            }
        case .reference:
            referenceNormalize(x, y, channels: channels, spatial: spatial, gamma: gamma, beta: beta, mean: mean, inv: inv)
            if silu { Exponential.silu(y, y, sigma: sigma, count: channels * spatial) }
        }
    }

    /// SiLU's backward on the normalised values: `da[k] = dy[k]·(σ[k]·(1 + a·(1 − σ[k])))` with
    /// `a = γ[ch]·((x[k] − mean)·inv) + β[ch]`, recomputed exactly as ``normalize(_:_:channels:spatial:gamma:beta:mean:inv:silu:sigma:path:)`` computes it.
    public static func siluBackward(x: UnsafePointer<Double>, dy: UnsafePointer<Double>, sigma: UnsafePointer<Double>,
                                    da: UnsafeMutablePointer<Double>, channels: Int, spatial: Int,
                                    gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>, mean: Double, inv: Double, path: Path) {
        checkSizes("siluBackward", channels, spatial)
        switch path {
        case .kernels(let build):
            ddpm_silu_grad_from_normalized(code(build), x, dy, sigma, da, channels, spatial, gamma, beta, mean, inv)
        case .reference:
            referenceSiLUBackward(x: x, dy: dy, sigma: sigma, da: da, channels: channels, spatial: spatial,
                                  gamma: gamma, beta: beta, mean: mean, inv: inv)
        }
    }

    /// The input gradient: `dx[k] = inv·(d[k]·γ[ch] − meanD − (x[k] − mean)·inv·meanDX)`, evaluated
    /// left to right as written (k = ch·spatial + i).
    public static func inputGradient(x: UnsafePointer<Double>, d: UnsafePointer<Double>, dx: UnsafeMutablePointer<Double>,
                                     channels: Int, spatial: Int, gamma: UnsafePointer<Double>,
                                     mean: Double, inv: Double, meanD: Double, meanDX: Double, path: Path) {
        checkSizes("inputGradient", channels, spatial)
        switch path {
        case .kernels(let build):
            ddpm_group_norm_dx(code(build), x, d, dx, channels, spatial, gamma, mean, inv, meanD, meanDX)
        case .reference:
            referenceInputGradient(x: x, d: d, dx: dx, channels: channels, spatial: spatial, gamma: gamma,
                                   mean: mean, inv: inv, meanD: meanD, meanDX: meanDX)
        }
    }

    // The plain loops (the Swift of `Tensor.normalizedGroups` before the C kernels).

    /// `γ·((x − mean)·inv) + β`: the normalised value, one expression for the forward loop and the
    /// SiLU backward's recomputation.
    @inline(__always)
    static func normalized(_ x: Double, _ gamma: Double, _ beta: Double, _ mean: Double, _ inv: Double) -> Double {
        gamma * ((x - mean) * inv) + beta
    }

    /// `y[k] = γ[ch]·((x[k] − mean)·inv) + β[ch]`, k = ch·spatial + i, one element at a time.
    public static func referenceNormalize(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, channels: Int, spatial: Int,
                                          gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>, mean: Double, inv: Double) {
        for ch in 0..<channels {
            for i in 0..<spatial { let k = ch * spatial + i; y[k] = normalized(x[k], gamma[ch], beta[ch], mean, inv) }
        }
    }

    /// `da[k] = dy[k]·(σ[k]·(1 + a·(1 − σ[k])))`, `a = γ[ch]·((x[k] − mean)·inv) + β[ch]`, one element at a time.
    public static func referenceSiLUBackward(x: UnsafePointer<Double>, dy: UnsafePointer<Double>, sigma: UnsafePointer<Double>,
                                             da: UnsafeMutablePointer<Double>, channels: Int, spatial: Int,
                                             gamma: UnsafePointer<Double>, beta: UnsafePointer<Double>, mean: Double, inv: Double) {
        for ch in 0..<channels {
            for i in 0..<spatial {
                let k = ch * spatial + i, a = normalized(x[k], gamma[ch], beta[ch], mean, inv), sg = sigma[k]
                da[k] = dy[k] * (sg * (1 + a * (1 - sg)))
            }
        }
    }

    /// `dx[k] = inv·(d[k]·γ[ch] − meanD − (x[k] − mean)·inv·meanDX)`, one element at a time.
    public static func referenceInputGradient(x: UnsafePointer<Double>, d: UnsafePointer<Double>, dx: UnsafeMutablePointer<Double>,
                                              channels: Int, spatial: Int, gamma: UnsafePointer<Double>,
                                              mean: Double, inv: Double, meanD: Double, meanDX: Double) {
        for ch in 0..<channels {
            let g = gamma[ch]
            for i in 0..<spatial {
                let k = ch * spatial + i
                dx[k] = inv * (d[k] * g - meanD - (x[k] - mean) * inv * meanDX)
            }
        }
    }
}
