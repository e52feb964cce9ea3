// 2-D convolution lowered to one matrix product (im2col), and the direct loop it is tested against.

import Dispatch

/// Geometry of a 2-D cross-correlation over NCHW input with OIHW weights (PyTorch's `conv2d`).
///
/// Output size per axis: `out = (in + 2·padding − kernel) / stride + 1` (floor division).
public struct ConvGeometry: Sendable, Equatable {
    public var batch: Int, inChannels: Int, height: Int, width: Int
    public var outChannels: Int, kernel: Int, stride: Int, padding: Int
    public init(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int) {
        precondition(batch > 0 && inChannels > 0 && height > 0 && width > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                     "conv2d: invalid geometry batch=\(batch) C=\(inChannels) H=\(height) W=\(width) O=\(outChannels) k=\(kernel) s=\(stride) p=\(padding)")
        self.batch = batch; self.inChannels = inChannels; self.height = height; self.width = width
        self.outChannels = outChannels; self.kernel = kernel; self.stride = stride; self.padding = padding
        precondition(height + 2 * padding >= kernel && width + 2 * padding >= kernel,
                     "conv2d: kernel \(kernel) larger than padded input \(height + 2 * padding)×\(width + 2 * padding)")
    }
    public var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    /// Rows of the lowered matrix: one per (input channel, kernel row, kernel column).
    public var patch: Int { inChannels * kernel * kernel }
    public var outPixels: Int { outHeight * outWidth }
    /// Multiply–adds of the forward pass.
    public var macs: Int { batch * outChannels * outPixels * patch }
}

/// Convolution kernels. `forward`/`backward…` go through ``Gemm/blas``; `referenceForward` is the
/// direct seven-fold loop.
public enum ConvolutionKernels {
    /// Runs `body` over `0 ..< count` split over the cores (see ``Parallel/chunks(_:work:_:)``).
    static func parallelChunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        Parallel.chunks(count, work: work, body)
    }

    /// The output columns `ox` whose input column `ox·s + offset` lies inside `0 ..< width`.
    @inline(__always)
    static func validColumns(_ ow: Int, stride s: Int, offset: Int, width: Int) -> Range<Int> {
        let lo = offset >= 0 ? 0 : (-offset + s - 1) / s
        let hi = width - offset <= 0 ? 0 : min(ow, (width - offset - 1) / s + 1)
        return lo..<max(lo, hi)
    }

    /// im2col: `cols[(c·k + i)·k + j, n·P + p] = x[n, c, oy·s − pad + i, ox·s − pad + j]` (zero outside),
    /// a `patch × (batch·P)` matrix, P = outH·outW and p = oy·outW + ox.
    public static func im2col(_ g: ConvGeometry, _ x: UnsafePointer<Double>, _ cols: UnsafeMutablePointer<Double>) {
        let (oh, ow, k, s, pad) = (g.outHeight, g.outWidth, g.kernel, g.stride, g.padding)
        let columns = g.batch * g.outPixels
        parallelChunks(g.inChannels, work: g.patch * columns) { channels in
            for c in channels { for i in 0..<k { for j in 0..<k {
                let row = cols + ((c * k + i) * k + j) * columns
                let valid = validColumns(ow, stride: s, offset: j - pad, width: g.width)
                for n in 0..<g.batch {
                    let plane = x + (n * g.inChannels + c) * g.height * g.width
                    let dst = row + n * g.outPixels
                    for oy in 0..<oh {
                        let y = oy * s - pad + i
                        let line = dst + oy * ow
                        if y < 0 || y >= g.height || valid.isEmpty { line.update(repeating: 0, count: ow); continue }
                        line.update(repeating: 0, count: valid.lowerBound)
                        (line + valid.upperBound).update(repeating: 0, count: ow - valid.upperBound)
                        let src = plane + y * g.width + (j - pad)
                        if s == 1 {
                            (line + valid.lowerBound).update(from: src + valid.lowerBound, count: valid.count)
                        } else {
                            for ox in valid { line[ox] = src[ox * s] }
                        }
                    }
                }
            } } }
        }
    }

    /// col2im: the adjoint of ``im2col``; adds every column entry back onto the input pixel it came from.
    public static func col2im(_ g: ConvGeometry, _ cols: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>) {
        let (oh, ow, k, s, pad) = (g.outHeight, g.outWidth, g.kernel, g.stride, g.padding)
        let columns = g.batch * g.outPixels
        parallelChunks(g.inChannels, work: g.patch * columns) { channels in
            for c in channels { for i in 0..<k { for j in 0..<k {
                let row = cols + ((c * k + i) * k + j) * columns
                let valid = validColumns(ow, stride: s, offset: j - pad, width: g.width)
                for n in 0..<g.batch {
                    let plane = dx + (n * g.inChannels + c) * g.height * g.width
                    let src = row + n * g.outPixels
                    for oy in 0..<oh {
                        let y = oy * s - pad + i
                        if y < 0 || y >= g.height { continue }
                        let dst = plane + y * g.width + (j - pad)
                        let line = src + oy * ow
                        if s == 1 {
                            let d = dst + valid.lowerBound, l = line + valid.lowerBound
                            for q in 0..<valid.count { d[q] += l[q] }
                        } else {
                            for ox in valid { dst[ox * s] += line[ox] }
                        }
                    }
                }
            } } }
        }
    }

    /// True when the lowered matrix of a sample is the sample itself (1×1, stride 1, no padding).
    static func isPointwise(_ g: ConvGeometry) -> Bool { g.kernel == 1 && g.stride == 1 && g.padding == 0 }

    /// `y[n, o, p] = Σ_{c,i,j} w[o, c, i, j] · x[n, c, p·s − pad + (i, j)] + b[o]`, via one dgemm
    /// `Y = W (O × patch) · cols (patch × N·P)`. `y` has `batch·O·P` elements.
    public static func forward(_ g: ConvGeometry, x: UnsafePointer<Double>, weight: UnsafePointer<Double>,
                               bias: UnsafePointer<Double>?, y: UnsafeMutablePointer<Double>) {
        let (o, pix) = (g.outChannels, g.outPixels)
        if isPointwise(g) {
            // Each sample is already a (C × P) matrix: Y_n = W · X_n.
            for n in 0..<g.batch {
                Gemm.blas(GemmShape(m: o, n: pix, k: g.patch), weight, x + n * g.inChannels * pix, y + n * o * pix)
            }
            if let bias {
                parallelChunks(g.batch * o, work: g.batch * o * pix) { planes in
                    for q in planes {
                        let row = y + q * pix, b = bias[q % o]
                        for p in 0..<pix { row[p] += b }
                    }
                }
            }
        } else {
            let columns = g.batch * pix
            let out = UnsafeMutablePointer<Double>.allocate(capacity: o * columns)
            defer { out.deallocate() }
            Scratch.withBuffer(g.patch * columns) { cols in
                im2col(g, x, cols)
                Gemm.blas(GemmShape(m: o, n: columns, k: g.patch), weight, cols, out)
            }
            // (O, N·P) → (N, O, P), adding the bias on the way (one pass over the output).
            parallelChunks(g.batch * o, work: g.batch * o * pix) { planes in
                for q in planes {
                    let (n, oc) = q.quotientAndRemainder(dividingBy: o)
                    let dst = y + q * pix, src = out + oc * columns + n * pix
                    if let bias {
                        let b = bias[oc]
                        for p in 0..<pix { dst[p] = src[p] + b }
                    } else {
                        dst.update(from: src, count: pix)
                    }
                }
            }
        }
    }

    /// Gradients of ``forward``: `dW = dY · colsᵀ`, `dcols = Wᵀ · dY` folded back by ``col2im``,
    /// `db[o] = Σ_{n,p} dY[n, o, p]`. Any of the outputs may be nil; gradients are *added* into them.
    public static func backward(_ g: ConvGeometry, x: UnsafePointer<Double>, weight: UnsafePointer<Double>,
                                dy: UnsafePointer<Double>, dx: UnsafeMutablePointer<Double>?,
                                dWeight: UnsafeMutablePointer<Double>?, dBias: UnsafeMutablePointer<Double>?) {
        let (o, pix) = (g.outChannels, g.outPixels)
        if let dBias {
            for n in 0..<g.batch { for oc in 0..<o {
                let row = dy + (n * o + oc) * pix
                var acc = 0.0
                for p in 0..<pix { acc += row[p] }
                dBias[oc] += acc
            } }
        }
        if dx == nil && dWeight == nil { return }
        if isPointwise(g) {
            for n in 0..<g.batch {
                let dyn = dy + n * o * pix, xn = x + n * g.inChannels * pix
                if let dWeight { Gemm.blas(GemmShape(m: o, n: g.patch, k: pix, transposeB: .transposed), dyn, xn, beta: 1, dWeight) }
                if let dx { Gemm.blas(GemmShape(m: g.patch, n: pix, k: o, transposeA: .transposed), weight, dyn, beta: 1, dx + n * g.inChannels * pix) }
            }
            return
        }
        let columns = g.batch * pix
        let dyMatrix = UnsafeMutablePointer<Double>.allocate(capacity: o * columns)
        defer { dyMatrix.deallocate() }
        parallelChunks(o, work: o * columns) { channels in  // (N, O, P) → (O, N·P)
            for oc in channels { for n in 0..<g.batch {
                (dyMatrix + oc * columns + n * pix).update(from: dy + (n * o + oc) * pix, count: pix)
            } }
        }
        Scratch.withBuffer(g.patch * columns) { cols in
            if let dWeight {
                im2col(g, x, cols)
                Gemm.blas(GemmShape(m: o, n: g.patch, k: columns, transposeB: .transposed), dyMatrix, cols, beta: 1, dWeight)
            }
            if let dx {
                Gemm.blas(GemmShape(m: g.patch, n: columns, k: o, transposeA: .transposed), weight, dyMatrix, cols)
                col2im(g, cols, dx)
            }
        }
    }

    /// The direct definition, one multiply–add at a time; the oracle for ``forward``.
    public static func referenceForward(_ g: ConvGeometry, x: [Double], weight: [Double], bias: [Double]?) -> [Double] {
        let (oh, ow, k) = (g.outHeight, g.outWidth, g.kernel)
        var y = [Double](repeating: 0, count: g.batch * g.outChannels * oh * ow)
        for n in 0..<g.batch { for o in 0..<g.outChannels { for oy in 0..<oh { for ox in 0..<ow {
            var acc = bias?[o] ?? 0
            for c in 0..<g.inChannels { for i in 0..<k { for j in 0..<k {
                let yy = oy * g.stride - g.padding + i, xx = ox * g.stride - g.padding + j
                if yy < 0 || yy >= g.height || xx < 0 || xx >= g.width { continue }
                acc += weight[((o * g.inChannels + c) * k + i) * k + j] * x[((n * g.inChannels + c) * g.height + yy) * g.width + xx]
            } } }
            y[((n * g.outChannels + o) * oh + oy) * ow + ox] = acc
        } } } }
        return y
    }

    /// Array convenience over ``forward`` for tests.
    public static func forward(_ g: ConvGeometry, x: [Double], weight: [Double], bias: [Double]?) -> [Double] {
        var y = [Double](repeating: 0, count: g.batch * g.outChannels * g.outPixels)
        x.withUnsafeBufferPointer { px in weight.withUnsafeBufferPointer { pw in y.withUnsafeMutableBufferPointer { py in
            if let bias {
                bias.withUnsafeBufferPointer { pb in forward(g, x: px.baseAddress!, weight: pw.baseAddress!, bias: pb.baseAddress!, y: py.baseAddress!) }
            } else {
                forward(g, x: px.baseAddress!, weight: pw.baseAddress!, bias: nil, y: py.baseAddress!)
            }
        } } }
        return y
    }
}
