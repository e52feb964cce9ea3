// 2-D convolution as a differentiable operation (the arithmetic lives in Kernels.ConvolutionKernels).

import Kernels

extension Tensor {
    /// Cross-correlation `y[n,o,p] = Σ_{c,i,j} w[o,c,i,j] · x[n,c,s·p + (i,j) − pad] + b[o]`
    /// for `x: [N, C, H, W]`, `w: [O, C, k, k]`, `b: [O]`, square kernel, stride `s`, zero padding.
    /// Backward: `dw = dY · colsᵀ`, `dx = col2im(Wᵀ · dY)`, `db = Σ_{n,p} dY` (see ``ConvolutionKernels/backward``).
    ///
    /// With `addingPerChannel: c` (`[N, O]`) and `adding: r` (the output's shape), the sums that follow the
    /// convolution in a residual block are part of it: `y = ((conv + b) + c[n, o]) + r[n, o, p]`, the same
    /// values as `conv2d(…) + c.reshaped([N, O, 1, 1])` followed by `+ r`, without their passes and arrays
    /// (`FusedKernelTests.convolutionAdding`, bit for bit); gradients `dc[n, o] = Σ_p dY` (the same
    /// plane sums as the broadcast's adjoint) and `dr = dY`.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0,
                              addingPerChannel perChannel: Tensor? = nil, adding elementwise: Tensor? = nil) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && weight.shape[2] == weight.shape[3] && weight.shape[1] == x.shape[1],
                     "conv2d: input \(x.shape) and weight \(weight.shape) do not match (expected [N, C, H, W] and [O, C, k, k])")
        let g = ConvGeometry(batch: x.shape[0], inChannels: x.shape[1], height: x.shape[2], width: x.shape[3],
                             outChannels: weight.shape[0], kernel: weight.shape[2], stride: stride, padding: padding)
        if let bias { precondition(bias.shape == [g.outChannels], "conv2d: bias \(bias.shape) does not match weight \(weight.shape)") }
        let outShape = [g.batch, g.outChannels, g.outHeight, g.outWidth]
        if let perChannel { precondition(perChannel.shape == [g.batch, g.outChannels], "conv2d: addingPerChannel \(perChannel.shape) does not match output \(outShape) (expected [N, O])") }
        if let elementwise { precondition(elementwise.shape == outShape, "conv2d: adding \(elementwise.shape) does not match output \(outShape)") }
        let xv = x.data, wv = weight.data
        let cv = perChannel?.data ?? [], rv = elementwise?.data ?? []
        // ConvolutionKernels.forward writes every output element, so the array is not zero-filled first.
        let out = uninitializedArray(g.batch * g.outChannels * g.outPixels) { py in
            xv.withUnsafeBufferPointer { px in wv.withUnsafeBufferPointer { pw in cv.withUnsafeBufferPointer { pc in rv.withUnsafeBufferPointer { pr in
                let adding = OutputAddition(perChannel: perChannel == nil ? nil : pc.baseAddress, elementwise: elementwise == nil ? nil : pr.baseAddress)
                if let bias {
                    bias.data.withUnsafeBufferPointer { pb in
                        ConvolutionKernels.forward(g, x: px.baseAddress!, weight: pw.baseAddress!, bias: pb.baseAddress!, y: py, adding: adding)
                    }
                } else {
                    ConvolutionKernels.forward(g, x: px.baseAddress!, weight: pw.baseAddress!, bias: nil, y: py, adding: adding)
                }
            } } } }
        }
        let parents = (bias.map { [x, weight, $0] } ?? [x, weight]) + (perChannel.map { [$0] } ?? []) + (elementwise.map { [$0] } ?? [])
        return operation("conv2d", shape: outShape, data: out, parents: parents) { dy in
            // gx is written, not added to, by the kernel (overwritingDx), so it is not zero-filled here.
            var gx: [Double]? = x.requiresGrad ? uninitializedArray(xv.count) { _ in } : nil
            var gw: [Double]? = weight.requiresGrad ? [Double](repeating: 0, count: wv.count) : nil
            var gb: [Double]? = (bias?.requiresGrad ?? false) ? [Double](repeating: 0, count: g.outChannels) : nil
            xv.withUnsafeBufferPointer { px in wv.withUnsafeBufferPointer { pw in dy.withUnsafeBufferPointer { pdy in
                withOptionalPointer(&gx) { pgx in withOptionalPointer(&gw) { pgw in withOptionalPointer(&gb) { pgb in
                    ConvolutionKernels.backward(g, x: px.baseAddress!, weight: pw.baseAddress!, dy: pdy.baseAddress!, dx: pgx, dWeight: pgw, dBias: pgb,
                                                overwritingDx: true)
                } } }
            } } }
            var grads = bias == nil ? [gx, gw] : [gx, gw, gb]
            // Σ_p dY[n, o, p], one plane at a time: the adjoint of the broadcast (`Broadcast.reduce`'s plane sums).
            if let perChannel { grads.append(perChannel.requiresGrad ? Broadcast.reduce(dy, from: outShape, to: [g.batch, g.outChannels, 1, 1]) : nil) }
            if let elementwise { grads.append(elementwise.requiresGrad ? dy : nil) }
            return grads
        }
    }
}

/// Gives `body` a mutable pointer into an optional array, or nil.
func withOptionalPointer<R>(_ a: inout [Double]?, _ body: (UnsafeMutablePointer<Double>?) -> R) -> R {
    if a == nil { return body(nil) }
    return a!.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}
