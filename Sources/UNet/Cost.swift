// How much arithmetic one forward pass costs, counted from the architecture.

extension UNet {
    /// Multiply–adds of one forward pass for a batch: every convolution (N·O·P·C·k²), every linear
    /// layer (N·in·out) and both attention products (2·N·C·P²). Elementwise work (norms, activations,
    /// softmax, additions) is not counted. FLOPs are conventionally 2 × this.
    public func forwardMultiplyAdds(batch n: Int) -> Int {
        let c = configuration
        func conv(_ layer: Conv2d, _ side: Int) -> Int {
            let s = layer.weight.shape, out = (side + 2 * layer.padding - s[2]) / layer.stride + 1
            return n * s[0] * out * out * s[1] * s[2] * s[3]
        }
        func linear(_ l: Linear) -> Int { n * l.weight.count }
        func block(_ b: ResidualBlock, _ side: Int) -> Int {
            conv(b.conv1, side) + linear(b.timeProjection) + conv(b.conv2, side) + (b.residual.map { conv($0, side) } ?? 0)
        }
        func attention(_ a: AttentionBlock, _ side: Int) -> Int {
            let ch = a.projection.weight.shape[0], p = side * side
            return conv(a.qkv, side) + conv(a.projection, side) + 2 * n * ch * p * p
        }
        var total = linear(timeMLP.0) + linear(timeMLP.1) + conv(initialConv, c.imageSize)
        var side = c.imageSize
        for i in downBlocks.indices {
            total += downBlocks[i].reduce(0) { $0 + block($1, side) }
            if let a = downAttention[i] { total += attention(a, side) }
            if i < downsamples.count { total += conv(downsamples[i], side); side /= 2 }
        }
        total += block(middle.0, side) + attention(middle.1, side) + block(middle.2, side)
        for i in upBlocks.indices {
            if i > 0 { side *= 2; total += conv(upsamples[i - 1], side) }
            total += upBlocks[i].reduce(0) { $0 + block($1, side) }
            if let a = upAttention[i] { total += attention(a, side) }
        }
        return total + conv(finalConv, side)
    }
}
