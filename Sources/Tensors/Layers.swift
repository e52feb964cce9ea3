// Group normalisation, softmax, channel dropout, nearest upsampling and the squared-error loss.

import Foundation
import Kernels

extension Tensor {
    /// Group normalisation (Wu & He 2018) of `x: [N, C, …]` with `groups` groups of C/G channels:
    ///
    ///     μ_{n,g} = mean over the group,  σ²_{n,g} = biased variance,  x̂ = (x − μ)/√(σ² + ε)
    ///     y = γ_c · x̂ + β_c
    ///
    /// Backward, with m elements per group and `d̂ = dy · γ_c`:
    /// `dx = (1/√(σ²+ε)) · (d̂ − mean(d̂) − x̂ · mean(d̂ · x̂))`, `dγ_c = Σ dy · x̂`, `dβ_c = Σ dy`.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Double = 1e-5) -> Tensor {
        normalizedGroups(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: false)
    }

    /// `groupNorm(x, …).silu()` in one pass (every residual block's `SiLU(GN(x))`): each group is
    /// normalised and then passed through SiLU while it is in cache, and the backward pass turns
    /// ∂L/∂SiLU into ∂L/∂GN group by group on its way into the normalisation's backward. The same
    /// operations in the same order as the two operations one after the other, so the same bits
    /// (`FusedKernelTests.groupNormSiLU`); one activation-sized array fewer per call (the
    /// normalised values are recomputed from x, μ and 1/√(σ² + ε) in the backward pass).
    ///
    ///     a = γ_c · (x − μ)/√(σ² + ε) + β_c,   y = a · σ(a)
    ///     ∂L/∂a = ∂L/∂y · σ(a) · (1 + a · (1 − σ(a))), then as ``groupNorm(_:groups:weight:bias:eps:)``
    public static func groupNormSiLU(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Double = 1e-5) -> Tensor {
        normalizedGroups(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: true)
    }

    /// ``groupNorm(_:groups:weight:bias:eps:)``, followed by SiLU group by group when `silu` is true.
    static func normalizedGroups(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Double, silu: Bool) -> Tensor {
        let op = silu ? "groupNormSiLU" : "groupNorm"
        precondition(x.rank >= 2, "\(op): input needs [N, C, …], got \(x.shape)")
        let n = x.shape[0], c = x.shape[1], spatial = x.shape[2...].reduce(1, *)
        precondition(groups > 0 && c % groups == 0, "\(op): \(c) channels of input \(x.shape) are not divisible into \(groups) groups")
        precondition(weight.shape == [c] && bias.shape == [c], "\(op): weight \(weight.shape) / bias \(bias.shape) do not match \(c) channels")
        let per = c / groups, m = per * spatial
        // Per (sample, group): the mean and 1/√(σ² + ε). x̂ is recomputed from them in the backward
        // pass rather than stored (one array fewer per normalisation in the recorded graph).
        var means = [Double](repeating: 0, count: n * groups), invStd = [Double](repeating: 0, count: n * groups)
        let gamma = weight.data, beta = bias.data, xv = x.data
        let records = GradientRecording.isEnabled && (x.requiresGrad || weight.requiresGrad || bias.requiresGrad)
        // σ(a) of the fused SiLU, kept for its backward (as `silu()` keeps it).
        var sigma = [Double]()
        if silu && records { sigma = uninitializedArray(x.count) { _ in } }
        // The per-group loops (C kernels, or the plain Swift loops they are tested against), chosen
        // once here on the calling thread and used by the backward pass too.
        let path = GroupNormKernels.path
        // Groups are independent: they are split over the cores (each writes only its own channels).
        let out = uninitializedArray(x.count) { po in
            xv.withUnsafeBufferPointer { px in invStd.withUnsafeMutableBufferPointer { pi in means.withUnsafeMutableBufferPointer { pm in
                sigma.withUnsafeMutableBufferPointer { psig in gamma.withUnsafeBufferPointer { pg in beta.withUnsafeBufferPointer { pb in
                    Parallel.chunks(groups, work: 4 * x.count) { range in
                        // Group gi of every sample: the n means, then the n sums of squared deviations, each sum
                        // as `Sums.sum` / `Sums.squaredDeviations` computes it (several at a time), then the values.
                        let stats = UnsafeMutablePointer<Double>.allocate(capacity: 2 * n)
                        defer { stats.deallocate() }
                        for gi in range {
                            let first = px.baseAddress! + gi * per * spatial
                            Sums.sums(first, stride: c * spatial, count: n, length: m, into: stats)
                            for s in 0..<n { stats[s] = stats[s] / Double(m) }
                            Sums.squaredDeviations(first, stride: c * spatial, count: n, length: m, from: stats, into: stats + n)
                            for s in 0..<n {
                                let base = (s * c + gi * per) * spatial
                                let mean = stats[s], variance = stats[n + s] / Double(m)
                                let inv = 1 / (variance + eps).squareRoot()
                                pi[s * groups + gi] = inv; pm[s * groups + gi] = mean
                                GroupNormKernels.normalize(px.baseAddress! + base, po + base, channels: per, spatial: spatial,
                                                           gamma: pg.baseAddress! + gi * per, beta: pb.baseAddress! + gi * per, mean: mean, inv: inv,
                                                           silu: silu, sigma: silu && records ? psig.baseAddress! + base : nil, path: path)
                            }
                        }
                    }
                } } }
            } } }
        }
        let inverse = invStd, mu = means, kept = sigma
        return operation(op, shape: x.shape, data: out, parents: [x, weight, bias]) { dy in
            var gg = [Double](repeating: 0, count: c), gb = [Double](repeating: 0, count: c)
            let gx = uninitializedArray(dy.count) { px in
                xv.withUnsafeBufferPointer { px0 in dy.withUnsafeBufferPointer { pdy in kept.withUnsafeBufferPointer { ps in
                    gamma.withUnsafeBufferPointer { pgamma in beta.withUnsafeBufferPointer { pbeta in gg.withUnsafeMutableBufferPointer { pgg in gb.withUnsafeMutableBufferPointer { pgb in
                        Parallel.chunks(groups, work: 4 * dy.count) { range in
                            // With SiLU: ∂L/∂a of one group at a time, in a buffer of this range's own.
                            let da = UnsafeMutablePointer<Double>.allocate(capacity: silu ? m : 0)
                            defer { da.deallocate() }
                            for gi in range { for s in 0..<n {
                                let base = (s * c + gi * per) * spatial
                                let inv = inverse[s * groups + gi], mean = mu[s * groups + gi]
                                let pg = pgamma.baseAddress! + gi * per
                                var pd = pdy.baseAddress! + base
                                if silu {
                                    GroupNormKernels.siluBackward(x: px0.baseAddress! + base, dy: pd, sigma: ps.baseAddress! + base, da: da,
                                                                  channels: per, spatial: spatial, gamma: pg, beta: pbeta.baseAddress! + gi * per,
                                                                  mean: mean, inv: inv, path: path)
                                    pd = UnsafePointer(da)
                                }
                                // Per channel: Σ dy and Σ dy·x̂ = (1/√(σ²+ε)) Σ dy·(x − μ); then Σ d̂ = γ Σ dy, Σ d̂·x̂ = γ Σ dy·x̂.
                                var sumD = 0.0, sumDX = 0.0
                                for ch in 0..<per {
                                    let cc = gi * per + ch, g = gamma[cc], q = ch * spatial
                                    let sb = Sums.sum(pd + q, spatial)
                                    let sg = Sums.dotDeviations(pd + q, px0.baseAddress! + base + q, spatial, from: mean) * inv
                                    sumD += g * sb; sumDX += g * sg
                                    pgg[cc] += sg; pgb[cc] += sb
                                }
                                let meanD = sumD / Double(m), meanDX = sumDX / Double(m)
                                GroupNormKernels.inputGradient(x: px0.baseAddress! + base, d: pd, dx: px + base, channels: per, spatial: spatial,
                                                               gamma: pg, mean: mean, inv: inv, meanD: meanD, meanDX: meanDX, path: path)
                            } }
                        }
                    } } } }
                } } }
            }
            return [gx, gg, gb]
        }
    }

    /// Softmax along the last axis, `y_i = e^{a_i − max} / Σ_j e^{a_j − max}`;
    /// backward `da_i = y_i (dy_i − Σ_j dy_j y_j)`.
    public func softmax() -> Tensor {
        precondition(rank >= 1, "softmax: needs rank ≥ 1, got a scalar")
        let width = shape[rank - 1], rows = width == 0 ? 0 : count / width
        let out = uninitializedArray(count) { o in data.withUnsafeBufferPointer { p in
            Parallel.chunks(rows, work: 16 * count) { range in for r in range {
                let base = r * width
                var mx = -Double.infinity
                for j in 0..<width { mx = Swift.max(mx, p[base + j]) }
                Exponential.exp(p.baseAddress! + base, minus: mx, o + base, count: width)
                let total = Sums.sum(o + base, width)
                for j in 0..<width { o[base + j] /= total }
            } }
        } }
        let y = out
        return Tensor.operation("softmax", shape: shape, data: out, parents: [self]) { g in
            [uninitializedArray(g.count) { ga in y.withUnsafeBufferPointer { py in g.withUnsafeBufferPointer { pg in
                Parallel.chunks(rows, work: 4 * g.count) { range in for r in range {
                    let base = r * width
                    let dot = Sums.dotDeviations(pg.baseAddress! + base, py.baseAddress! + base, width, from: 0)
                    for j in 0..<width { ga[base + j] = py[base + j] * (pg[base + j] - dot) }
                } }
            } } }]
        }
    }

    /// Log-softmax along the last axis, `log p_i = a_i − m − log Σ_j e^{a_j − m}` with m = max_j a_j held as a
    /// constant (it cancels: the result does not depend on m, so neither does the derivative), built from
    /// differentiable operations: ∂ log p_i/∂a_j = [i = j] − p_j.
    public func logSoftmax() -> Tensor {
        precondition(rank >= 1 && shape[rank - 1] > 0, "logSoftmax: needs a non-empty last axis, got shape \(shape)")
        let width = shape[rank - 1], rows = count / width
        let maxima = (0..<rows).map { r in data[(r * width)..<((r + 1) * width)].max()! }
        let m = Tensor(shape: Array(shape.dropLast()) + [1], data: maxima)
        let shifted = self - m
        return shifted - shifted.exp().sum(alongAxes: [rank - 1], keepingDimensions: true).log()
    }

    /// Channel dropout (PyTorch's `Dropout2d`) on `x: [N, C, …]`: each (n, c) plane is zeroed with
    /// probability `p` and otherwise scaled by `1/(1 − p)`; the same mask multiplies the gradient.
    /// One uniform draw per plane, in (n, c) order, from `generator`. Identity when `training` is false
    /// or `p == 0` (no draws are made then).
    public func dropout2d(probability p: Double, training: Bool, generator: inout RandomGenerator) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout2d: probability \(p) outside [0, 1)")
        precondition(rank >= 2, "dropout2d: input needs [N, C, …], got \(shape)")
        if !training || p == 0 { return self }
        let planes = shape[0] * shape[1], size = count / Swift.max(planes, 1)
        let scale = 1 / (1 - p)
        let mask = (0..<planes).map { _ in generator.nextUniform() < p ? 0.0 : scale }
        var out = data
        for q in 0..<planes { for i in 0..<size { out[q * size + i] *= mask[q] } }
        return Tensor.operation("dropout2d", shape: shape, data: out, parents: [self]) { g in
            var ga = g
            for q in 0..<planes { for i in 0..<size { ga[q * size + i] *= mask[q] } }
            return [ga]
        }
    }

    /// Nearest-neighbour upsampling ×2 of `x: [N, C, H, W]`: `y[n,c,2i+a,2j+b] = x[n,c,i,j]`;
    /// backward sums each 2×2 block of the output gradient.
    public func upsampleNearest2x() -> Tensor {
        precondition(rank == 4, "upsampleNearest2x: input needs [N, C, H, W], got \(shape)")
        let planes = shape[0] * shape[1], h = shape[2], w = shape[3]
        // Row by row: each input row becomes two output rows, each pixel two neighbours.
        let out = uninitializedArray(count * 4) { o in data.withUnsafeBufferPointer { p in
            Parallel.chunks(planes * h, work: 4 * count) { rows in for r in rows {
                let src = p.baseAddress! + r * w, dst = o + r * 4 * w
                for j in 0..<w { dst[2 * j] = src[j]; dst[2 * j + 1] = src[j] }
                (dst + 2 * w).update(from: dst, count: 2 * w)
            } }
        } }
        let n = count
        return Tensor.operation("upsampleNearest2x", shape: [shape[0], shape[1], 2 * h, 2 * w], data: out, parents: [self]) { g in
            // Each input pixel receives the four output pixels it was copied to, summed in the order
            // (top left + top right) + (bottom left + bottom right).
            [uninitializedArray(n) { ga in g.withUnsafeBufferPointer { pg in
                Parallel.chunks(planes * h, work: 4 * n) { rows in for r in rows {
                    let top = pg.baseAddress! + r * 4 * w, bottom = top + 2 * w, dst = ga + r * w
                    for j in 0..<w { dst[j] = (top[2 * j] + top[2 * j + 1]) + (bottom[2 * j] + bottom[2 * j + 1]) }
                } }
            } }]
        }
    }

    /// Mean squared error `(1/n) Σ_i (a_i − b_i)²` of equal-shaped tensors, a scalar;
    /// ∂/∂a_i = 2(a_i − b_i)/n, ∂/∂b_i = −2(a_i − b_i)/n.
    public static func meanSquaredError(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "meanSquaredError: shapes \(a.shape) and \(b.shape) differ")
        precondition(a.count > 0, "meanSquaredError: empty tensors")
        let n = Double(a.count)
        var diff = [Double](repeating: 0, count: a.count)
        var total = 0.0
        for i in 0..<a.count { let d = a.data[i] - b.data[i]; diff[i] = d; total += d * d }
        return operation("meanSquaredError", shape: [], data: [total / n], parents: [a, b]) { g in
            let ga = diff.map { 2 * $0 / n * g[0] }
            return [a.requiresGrad ? ga : nil, b.requiresGrad ? ga.map { -$0 } : nil]
        }
    }
}
