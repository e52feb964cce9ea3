// The U-Net's blocks: time embedding, residual block, attention block.

import Foundation
import Tensors

/// The sinusoidal timestep embedding (Vaswani et al. 2017 as used by Ho et al.), width `dim` = 2·half:
///
///     f_i = exp(−i · ln(10000) / (half − 1)),  i = 0 … half−1
///     emb(t) = [sin(t·f_0) … sin(t·f_{half−1}), cos(t·f_0) … cos(t·f_{half−1})]     (N × dim)
public func sinusoidalEmbedding(_ t: [Int], dim: Int) -> Tensor {
    precondition(dim >= 4 && dim % 2 == 0, "sinusoidalEmbedding: width \(dim) must be even and ≥ 4")
    let half = dim / 2
    let scale = Foundation.log(10000.0) / Double(half - 1)
    let freqs = (0..<half).map { Foundation.exp(-Double($0) * scale) }
    var out = [Double](repeating: 0, count: t.count * dim)
    for (n, step) in t.enumerated() {
        for i in 0..<half {
            let arg = Double(step) * freqs[i]
            out[n * dim + i] = Foundation.sin(arg)
            out[n * dim + half + i] = Foundation.cos(arg)
        }
    }
    return Tensor(shape: [t.count, dim], data: out)
}

/// The residual block of the seed's U-Net:
///
///     h = conv1(SiLU(GN1(x))) + time_proj(temb)[:, :, None, None]
///     h = Dropout2d(conv2(SiLU(GN2(h))))
///     out = h + residual(x)        (residual: 1×1 conv when in ≠ out, identity otherwise)
public final class ResidualBlock: Module {
    public let norm1: GroupNorm, conv1: Conv2d, timeProjection: Linear, norm2: GroupNorm, conv2: Conv2d
    public let residual: Conv2d?
    public let dropout: Double

    public var children: [(name: String, module: any Module)] {
        [("norm1", norm1), ("conv1", conv1), ("time_proj", timeProjection), ("norm2", norm2), ("conv2", conv2)]
            + (residual.map { [("residual", $0)] } ?? [])
    }

    init(_ inChannels: Int, _ outChannels: Int, timeDim: Int, groups: Int, dropout: Double, generator: inout RandomGenerator) {
        norm1 = GroupNorm(groups: groups, channels: inChannels)
        conv1 = Conv2d(inChannels, outChannels, kernel: 3, padding: 1, generator: &generator)
        timeProjection = Linear(timeDim, outChannels, generator: &generator)
        norm2 = GroupNorm(groups: groups, channels: outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernel: 3, padding: 1, generator: &generator)
        residual = inChannels == outChannels ? nil : Conv2d(inChannels, outChannels, kernel: 1, generator: &generator)
        self.dropout = dropout
    }

    /// In training mode the dropout mask is drawn from `generator` (the caller owns the random state).
    /// Without an ``ActivationTap`` recording and without active dropout, the two sums are part of the
    /// convolutions before them (``Conv2d/callAsFunction(_:addingPerChannel:adding:)``): the same values, bit
    /// for bit, without their passes and arrays.
    public func callAsFunction(_ x: Tensor, _ temb: Tensor, training: Bool, generator: inout RandomGenerator) -> Tensor {
        if ActivationTap.isRecording || (training && dropout > 0) {
            var h = conv1(norm1.normalizedSiLU(x))
            let t = timeProjection(temb)
            h = h + t.reshaped([t.shape[0], t.shape[1], 1, 1])
            h = conv2(norm2.normalizedSiLU(h)).dropout2d(probability: dropout, training: training, generator: &generator)
            return ActivationTap.output(of: self, h + (residual.map { $0(x) } ?? x))
        }
        let h = conv1(norm1.normalizedSiLU(x), addingPerChannel: timeProjection(temb))
        return conv2(norm2.normalizedSiLU(h), adding: residual.map { $0(x) } ?? x)
    }
}

/// Single-head self-attention over the pixels of a feature map (C channels, P = H·W):
///
///     q, k, v = split(qkv(GN(x)))           each N × C × P (q first)
///     A = softmax_keys(qᵀ k / √C)           N × P × P  (rows: queries, columns: keys)
///     out = x + proj(v Aᵀ)                  N × C × H × W
public final class AttentionBlock: Module {
    public let norm: GroupNorm, qkv: Conv2d, projection: Conv2d

    public var children: [(name: String, module: any Module)] { [("norm", norm), ("qkv", qkv), ("proj", projection)] }

    init(_ channels: Int, groups: Int, generator: inout RandomGenerator) {
        norm = GroupNorm(groups: groups, channels: channels)
        qkv = Conv2d(channels, 3 * channels, kernel: 1, generator: &generator)
        projection = Conv2d(channels, channels, kernel: 1, generator: &generator)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let parts = qkv(norm(x)).reshaped([n, 3 * c, h * w]).split(into: 3, axis: 1)
        let (q, k, v) = (parts[0], parts[1], parts[2])
        let attention = (q.matmul(k, transposeA: true) / Double(c).squareRoot()).softmax()
        let out = v.matmul(attention, transposeB: true).reshaped([n, c, h, w])
        MultiplyAddCounter.add(2 * n * c * (h * w) * (h * w))   // qᵀk and v Aᵀ
        return ActivationTap.output(of: self, projection(out, adding: x))  // x + proj(…), as one operation
    }
}
