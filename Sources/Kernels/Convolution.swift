// 2-D convolution lowered to matrix products over groups of samples (im2col), and the direct loops it is tested against.

import CKernels
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

/// What ``ConvolutionKernels/forward(_:x:weight:bias:y:adding:)`` adds to a convolution's finished output, so that
/// the sums a network writes right after a convolution (the residual block's time embedding, a residual
/// connection) need no pass and no array of their own: `y[n, o, p] = ((conv + b[o]) + perChannel[n, o]) + elementwise[n, o, p]`,
/// each addition rounded as written, so the same values as adding them afterwards.
public struct OutputAddition: @unchecked Sendable {
    /// `batch × O` values, one per sample and output channel (nil: none).
    public var perChannel: UnsafePointer<Double>?
    /// `batch × O × P` values, the output's shape (nil: none).
    public var elementwise: UnsafePointer<Double>?
    public init(perChannel: UnsafePointer<Double>? = nil, elementwise: UnsafePointer<Double>? = nil) {
        self.perChannel = perChannel; self.elementwise = elementwise
    }
    public static let none = OutputAddition()
    var isEmpty: Bool { perChannel == nil && elementwise == nil }

    /// Adds this to sample `n` of `y` (`channels` planes of `pixels`).
    @inline(__always)
    func apply(to y: UnsafeMutablePointer<Double>, sample n: Int, channels: Int, pixels: Int) {
        let yn = y + n * channels * pixels
        if let perChannel {
            for oc in 0..<channels {
                let c = perChannel[n * channels + oc], plane = yn + oc * pixels
                for p in 0..<pixels { plane[p] = plane[p] + c }
            }
        }
        if let elementwise {
            let r = elementwise + n * channels * pixels
            for k in 0..<(channels * pixels) { yn[k] = yn[k] + r[k] }
        }
    }
}

/// Convolution kernels. `forward`/`backward` go through ``Gemm/blas``; `referenceForward` and
/// `referenceBackward` are the direct seven-fold loops.
public enum ConvolutionKernels {
    /// Runs `body` over the input channels, split over the cores unless `split` is false (inside
    /// work that is already split). Each channel's rows of the lowered matrix and planes of the image
    /// belong to it alone.
    static func overChannels(_ g: ConvGeometry, split: Bool, _ body: (Range<Int>) -> Void) {
        if split { Parallel.chunks(g.inChannels, work: g.patch * g.batch * g.outPixels, body) } else { body(0..<g.inChannels) }
    }

    /// The output columns `ox` whose input column `ox·s + offset` lies inside `0 ..< width`.
    @inline(__always)
    static func validColumns(_ ow: Int, stride s: Int, offset: Int, width: Int) -> Range<Int> {
        let lo = offset >= 0 ? 0 : (-offset + s - 1) / s
        let hi = width - offset <= 0 ? 0 : min(ow, (width - offset - 1) / s + 1)
        return lo..<max(lo, hi)
    }

    /// im2col: `cols[(c·k + i)·k + j, n·P + p] = x[n, c, oy·s − pad + i, ox·s − pad + j]` (zero outside),
    /// a `patch × (batch·P)` matrix, P = outH·outW and p = oy·outW + ox. `split`: spread the input
    /// channels over the cores (false inside work that is already split).
    public static func im2col(_ g: ConvGeometry, _ x: UnsafePointer<Double>, _ cols: UnsafeMutablePointer<Double>, split: Bool = true) {
        overChannels(g, split: split) { lower(g, x, cols, channels: $0) }
    }

    /// The walk shared by ``im2col`` and its adjoint ``col2im``: for every line of the lowered matrix
    /// (row (c, i, j) of the patch, sample n, output row oy) calls `body(line, pixel, valid)` with
    /// `line` the offset of that line in `cols`, `pixel` the offset in the image of the input pixel
    /// that output column 0 would read (column ox reads `pixel + ox·s`), nil when the input row lies
    /// in the padding, and `valid` the output columns whose input column lies inside the image.
    @inline(__always)
    static func forEachLine(_ g: ConvGeometry, channels: Range<Int>, _ body: (_ line: Int, _ pixel: Int?, _ valid: Range<Int>) -> Void) {
        let (oh, ow, k, s, pad) = (g.outHeight, g.outWidth, g.kernel, g.stride, g.padding)
        let columns = g.batch * g.outPixels
        for c in channels { for i in 0..<k { for j in 0..<k {
            let row = ((c * k + i) * k + j) * columns
            let valid = validColumns(ow, stride: s, offset: j - pad, width: g.width)
            for n in 0..<g.batch {
                let plane = (n * g.inChannels + c) * g.height * g.width, start = row + n * g.outPixels
                for oy in 0..<oh {
                    let y = oy * s - pad + i
                    body(start + oy * ow, y < 0 || y >= g.height ? nil : plane + y * g.width + (j - pad), valid)
                }
            }
        } } }
    }

    /// ``im2col`` for the rows of input channels `channels`.
    static func lower(_ g: ConvGeometry, _ x: UnsafePointer<Double>, _ cols: UnsafeMutablePointer<Double>, channels: Range<Int>) {
        let (ow, s) = (g.outWidth, g.stride)
        if isSame(g) { return lowerSame(g, x, cols, channels: channels) }
        forEachLine(g, channels: channels) { start, pixel, valid in
            let line = cols + start
            guard let pixel, !valid.isEmpty else { return line.update(repeating: 0, count: ow) }
            line.update(repeating: 0, count: valid.lowerBound)
            (line + valid.upperBound).update(repeating: 0, count: ow - valid.upperBound)
            let src = x + pixel
            if s == 1 {
                (line + valid.lowerBound).update(from: src + valid.lowerBound, count: valid.count)
            } else {
                for ox in valid { line[ox] = src[ox * s] }
            }
        }
    }

    /// ``lower`` for a "same" convolution (stride 1, output as large as the input, k = 2·pad + 1).
    /// Then output pixel p = oy·W + ox of row (c, i, j) reads input pixel p + (i − pad)·W + (j − pad):
    /// the row is the plane shifted by a constant, so it is one contiguous copy, after which the
    /// rows that fall outside the image and the columns that wrapped round to the other edge are zeroed.
    static func lowerSame(_ g: ConvGeometry, _ x: UnsafePointer<Double>, _ cols: UnsafeMutablePointer<Double>, channels: Range<Int>) {
        let (h, w, k, pad, pix) = (g.height, g.width, g.kernel, g.padding, g.outPixels)
        let columns = g.batch * pix
        for c in channels { for i in 0..<k { for j in 0..<k {
            let row = cols + ((c * k + i) * k + j) * columns
            let di = i - pad, dj = j - pad
            let lo = max(0, -di), hi = min(h, h - di)  // output rows whose input row is inside
            for n in 0..<g.batch {
                let plane = x + (n * g.inChannels + c) * pix, dst = row + n * pix
                if hi <= lo || abs(dj) >= w { dst.update(repeating: 0, count: pix); continue }
                dst.update(repeating: 0, count: lo * w)
                (dst + hi * w).update(repeating: 0, count: (h - hi) * w)
                let first = lo * w + max(0, -dj), last = hi * w - max(0, dj)
                (dst + first).update(from: plane + first + di * w + dj, count: last - first)
                if dj < 0 {
                    for oy in lo..<hi { for ox in 0..<(-dj) { dst[oy * w + ox] = 0 } }
                } else if dj > 0 {
                    for oy in lo..<hi { for ox in (w - dj)..<w { dst[oy * w + ox] = 0 } }
                }
            }
        } } }
    }

    /// True for a "same" convolution: stride 1 and the output as large as the input (so k = 2·pad + 1).
    static func isSame(_ g: ConvGeometry) -> Bool { g.stride == 1 && g.outHeight == g.height && g.outWidth == g.width }

    /// col2im: the adjoint of ``im2col``; adds every column entry back onto the input pixel it came from,
    /// `dx[n, c, oy·s − pad + i, ox·s − pad + j] += cols[(c·k + i)·k + j, n·P + oy·outW + ox]` over the
    /// entries whose pixel lies inside the image, each dx element's terms in increasing (i, j).
    /// `overwriting`: dx is set to those sums instead (it may start uninitialised). Same convolutions
    /// go through ``raiseSame``, the others (and all of them when `generic` is true, the reference
    /// for tests) zero the planes first when overwriting and go through ``raise``; both give the same
    /// sums bit for bit. `split`: spread the input channels over the cores.
    public static func col2im(_ g: ConvGeometry, _ cols: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>, split: Bool = true,
                              overwriting: Bool = false, generic: Bool = false) {
        overChannels(g, split: split) { channels in
            if !generic && isSame(g) { return raiseSame(g, cols, dx, channels: channels, overwriting: overwriting) }
            if overwriting {
                let plane = g.height * g.width
                for n in 0..<g.batch { for c in channels { (dx + (n * g.inChannels + c) * plane).update(repeating: 0, count: plane) } }
            }
            raise(g, cols, dx, channels: channels)
        }
    }

    /// ``col2im`` for the input channels `channels` (each writes only its own planes of `dx`).
    static func raise(_ g: ConvGeometry, _ cols: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>, channels: Range<Int>) {
        let s = g.stride
        forEachLine(g, channels: channels) { start, pixel, valid in
            guard let pixel else { return }
            let line = cols + start, dst = dx + pixel
            if s == 1 {
                let d = dst + valid.lowerBound, l = line + valid.lowerBound
                for q in 0..<valid.count { d[q] += l[q] }
            } else {
                for ox in valid { dst[ox * s] += line[ox] }
            }
        }
    }

    /// ``raise`` for a "same" convolution (see ``lowerSame``), the input channels `channels`: row
    /// (c, i, j) of sample n goes back as the plane shifted by di = i − pad rows and dj = j − pad
    /// columns, `dx[n, c, y, x] += cols[(c·k + i)·k + j, n·P + (y − di)·W + (x − dj)]` for (y, x) and
    /// (y − di, x − dj) both inside the image (the entries ``lowerSame`` zeroes, rows outside the
    /// image and wrapped columns, add nothing): one contiguous run per row of dx, or when dj = 0 one
    /// per block of whole rows that only add (or, at k = 1, only store). The rows (c, i, j) come in increasing (i, j), so each dx
    /// element receives the same terms in the same order as in ``raise``: the same sums, bit for bit.
    ///
    /// `overwriting`: dx may start uninitialised and nothing is zeroed; the first term an element
    /// receives is stored instead of added to 0 (the same value, except that a first term −0 stays
    /// −0 where 0 + (−0) is +0). Element (y, x) is first reached by the tap with
    /// di = max(−pad, y − H + 1) and dj = max(−pad, x − W + 1): tap di = −pad gives their first
    /// term to the rows y < H − pad, a tap −pad < di ≤ 0 to the one row y = H − 1 + di (if y ≥ 0),
    /// a tap di > 0 to none; columns alike. These are the last rows (columns) of those the tap
    /// reaches. The centre tap (di = dj = 0) reaches every element, so none is left unwritten, on
    /// any plane size (taps that leave a narrow image entirely reach nothing).
    static func raiseSame(_ g: ConvGeometry, _ cols: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>, channels: Range<Int>,
                          overwriting: Bool) {
        let (h, w, k, pad, pix) = (g.height, g.width, g.kernel, g.padding, g.outPixels)
        precondition(isSame(g), "raiseSame: not a same convolution: \(g)")
        let columns = g.batch * pix
        // Along an axis of `size` elements, the dx indices `from ..< to` that a tap of offset d
        // reaches, of which `first ..< to` receive their first term from it (`first == to`: none).
        func reach(_ d: Int, _ size: Int) -> (from: Int, first: Int, to: Int) {
            let from = max(0, d), to = max(from, min(size, size + d))
            guard overwriting && d <= 0 else { return (from, to, to) }
            return (from, d == -pad ? from : max(from, size - 1 + d), to)
        }
        for c in channels { for i in 0..<k {
            let di = i - pad, ys = reach(di, h)
            for j in 0..<k {
                let dj = j - pad, xs = reach(dj, w)
                let row = cols + ((c * k + i) * k + j) * columns
                let width = xs.to - xs.from, added = xs.first - xs.from  // per dx row: `added` terms added, then the rest stored
                let plain = added == width ? ys.to : ys.first  // the rows before `plain` only add
                for n in 0..<g.batch {
                    let plane = dx + (n * g.inChannels + c) * pix, src = row + n * pix
                    var y = ys.from
                    if dj == 0 {  // whole rows, contiguous in dx and in the row of cols: one run added, one stored
                        let d = plane + y * w, r = src + (y - di) * w
                        for q in 0..<((plain - y) * w) { d[q] += r[q] }
                        y = plain
                        if added == 0 {
                            let d = plane + y * w, r = src + (y - di) * w
                            for q in 0..<((ys.to - y) * w) { d[q] = r[q] }
                            continue
                        }
                    }
                    while y < ys.to {
                        let d = plane + y * w + xs.from, r = src + (y - di) * w + (xs.from - dj)
                        let a = y < plain ? width : added
                        for q in 0..<a { d[q] += r[q] }
                        for q in a..<width { d[q] = r[q] }
                        y += 1
                    }
                }
            }
        } }
    }

    /// True when the lowered matrix of a sample is the sample itself (1×1, stride 1, no padding).
    static func isPointwise(_ g: ConvGeometry) -> Bool { g.kernel == 1 && g.stride == 1 && g.padding == 0 }

    /// How many lanes (contiguous blocks of samples, ``Parallel/lanes`` at most) a batch is cut
    /// into: each lane lowers its samples a few at a time (``groupSize(_:)``) into its own thread's
    /// im2col buffer (small enough to stay in cache), runs unsplit products and sums its own share
    /// of the weight gradient. A function of the geometry alone, so that the groups, the products'
    /// shapes and the order of every sum are the same on any number of cores or threads; the cores
    /// only decide which thread runs which lane. One lane (a batch of one, or a small convolution):
    /// the groups run in order, each lowering and product split over the cores.
    static func sampleLanes(_ g: ConvGeometry) -> Int {
        g.macs < Parallel.minimumWork ? 1 : min(Parallel.lanes, g.batch)
    }

    /// Output pixels a lowered group spans at least. OpenBLAS packs the weights on every call, so the
    /// small products of 8×8 feature maps (64 columns a sample) are grouped four samples at a time.
    /// On the demo's network, 64 to 1024 measured the same within the machine's noise (`ddpm bench
    /// --preset small --batches 32`, 2026-11-27); larger groups cost memory: grouping whole halves of
    /// a batch of 8 on the default network raised its peak from 1.23 to 1.55 GiB.
    static let groupColumns = 256

    /// Samples lowered together: enough for ``groupColumns`` output pixels (1 from 16×16 outputs up).
    static func groupSize(_ g: ConvGeometry) -> Int { max(1, min(g.batch, (groupColumns + g.outPixels - 1) / g.outPixels)) }

    /// Calls `body(samples, lane, split)` for consecutive groups of at most ``groupSize(_:)`` samples
    /// covering the batch: with several lanes (``sampleLanes(_:)``), lane l's samples
    /// `batch·l/L ..< batch·(l+1)/L` in order, the lanes spread over the cores when OpenBLAS runs
    /// single-threaded (`split` false: the body must not start parallel work of its own); with one
    /// lane, every group in order on the calling thread (`split` true, `lane` 0). The groups depend
    /// only on the geometry, so a result is the same from run to run and on any number of cores.
    static func forEachGroup(_ g: ConvGeometry, _ body: (_ samples: Range<Int>, _ lane: Int, _ split: Bool) -> Void) {
        let lanes = sampleLanes(g), size = groupSize(g)
        if lanes < 2 {
            for group in groups(of: size, in: 0..<g.batch) { body(group, 0, true) }
            return
        }
        Parallel.forEachLane(lanes, threads: BLASLibrary.shared.splitsProducts ? Parallel.parts : 1) { lane in
            for group in groups(of: size, in: (g.batch * lane / lanes)..<(g.batch * (lane + 1) / lanes)) { body(group, lane, false) }
        }
    }

    /// `range` cut into consecutive pieces of `size` (the last one shorter).
    static func groups(of size: Int, in range: Range<Int>) -> [Range<Int>] {
        stride(from: range.lowerBound, to: range.upperBound, by: size).map { $0..<min(range.upperBound, $0 + size) }
    }

    /// The direct kernels' work as one job of pieces claimed by the cores as they come free (``Parallel/forEachLane(_:threads:)``):
    /// first `dWeightLanes` pieces (the weight gradient's lanes, whose sums are combined in lane order), then, when
    /// `weight` is given, one piece per sample of `ddpm_conv3x3_packed` with `weight` packed once (flipped or not;
    /// the kernel's `inChannels` → `outChannels`). A sample's output depends on no other piece, so the pieces may
    /// run on any thread in any order; small pieces keep both cores busy to the end of the job, where whole lanes
    /// left one core waiting for the other. `body(piece, packed, scratch)`: scratch of the running thread, large enough
    /// for either kind of piece. The lanes run on our threads in either OpenBLAS setting (no OpenBLAS call).
    static func directPieces(_ g: ConvGeometry, weight: UnsafePointer<Double>?, flipped: Bool, inChannels: Int, outChannels: Int,
                             dWeightLanes: Int, _ body: (_ piece: Int, _ packed: UnsafePointer<Double>, _ scratch: UnsafeMutablePointer<Double>) -> Void) {
        let packedCount = weight == nil ? 0 : ddpm_conv3x3_packed_size(inChannels, outChannels)
        let packed = UnsafeMutablePointer<Double>.allocate(capacity: packedCount)
        defer { packed.deallocate() }
        if let weight {  // output channels over the cores (each writes its own entries)
            Parallel.chunks(outChannels, work: packedCount) { r in
                ddpm_conv3x3_pack(weight, flipped ? 1 : 0, inChannels, outChannels, r.lowerBound, r.upperBound, packed)
            }
        }
        let scratchCount = max(dWeightLanes > 0 ? ddpm_conv3x3_weight_gradient_scratch(g.inChannels, g.outChannels, g.height, g.width) : 0,
                               weight == nil ? 0 : ddpm_conv3x3_strip_scratch(inChannels))
        Parallel.forEachLane(dWeightLanes + (weight == nil ? 0 : g.batch), threads: Parallel.parts) { piece in
            Scratch.withBuffer(scratchCount) { body(piece, packed, $0) }
        }
    }

    /// Whether this CPU can run the direct kernels (AVX-512 F and DQ, FMA), in any build.
    public static let directOnThisCPU: Bool = ddpm_conv3x3_available() != 0

    /// Whether the direct kernels of Sources/CKernels/direct_conv.c may run 3×3 same convolutions:
    /// `ddpm_conv3x3_packed` packs the inputs of 16 output pixels (a row of a 16-wide plane, two rows of an
    /// 8-wide one) straight from the image and multiplies them by an 8 × 16 AVX-512 tile, without the
    /// im2col copy; with the weights flipped it is the input gradient, without col2im. `ddpm_conv3x3_weight_gradient`
    /// sums the weight gradient of 16 output channels × the nine taps of an input channel in registers,
    /// reading the image and the output gradient directly. In release builds on CPUs with AVX-512, for
    /// batches that ``sampleLanes(_:)`` cuts into lanes (``runsDirect(_:)``, ``runsDirectInputGradient(_:)``,
    /// ``runsDirectWeightGradient(_:)``). Debug builds compile C without optimisation, where the kernels are
    /// four times slower than BLAS, so they keep the im2col path; `KernelTests.directConvolution` and
    /// `directConvolutionBackward` run the kernels in every build. Their sums run in a different order
    /// from BLAS's (the same values to rounding, not the same bits).
    public static let directAvailable: Bool = {
        #if DEBUG
        return false
        #else
        return directOnThisCPU
        #endif
    }()

    /// Set only inside ``withDirect(_:_:)``.
    @TaskLocal static var directOverride: Bool?

    /// Runs `body` with the direct kernels on (where the CPU has them) or off (for tests).
    public static func withDirect<R>(_ on: Bool, _ body: () throws -> R) rethrows -> R {
        try $directOverride.withValue(on && directOnThisCPU) { try body() }
    }

    /// The largest weight matrix (O × C·9 doubles) the direct kernels take: 2¹⁷ doubles, 1 MiB. They read
    /// the whole of it for every 16-pixel strip (forward, input gradient) and keep the weight gradient's
    /// total in a transposed copy, so they pay off while it stays in the core's cache (the demo's largest,
    /// 64 × 1152, is 576 KiB); the default network's 16×16 and 8×8 layers (256 × 2304 and up, 4.5 MiB)
    /// were slower through them than through BLAS (`ddpm bench --batches 8`, forward+backward 3.89–4.44 s
    /// against 3.27–3.77 s, alternating runs on the Xeon family 6 model 167, 2026-12-03).
    public static let directWeightLimit = 1 << 17

    /// A 3×3 same convolution whose batch runs in per-lane unsplit products, with the direct kernels on,
    /// and whose weights are at most ``directWeightLimit`` doubles.
    static func directCandidate(_ g: ConvGeometry) -> Bool {
        (directOverride ?? directAvailable) && isSame(g) && g.kernel == 3 && sampleLanes(g) >= 2
            && g.outChannels * g.inChannels * 9 <= directWeightLimit
    }

    /// The planes `ddpm_conv3x3_packed` takes: 8 or 16 pixels wide, a whole number of 16-pixel strips.
    static func directPlanes(_ g: ConvGeometry) -> Bool { (g.width == 16 || g.width == 8) && g.outPixels % 16 == 0 }

    /// True when ``forward`` runs `g` through `ddpm_conv3x3_packed` (see ``directAvailable``): ``directPlanes(_:)``,
    /// a multiple of 8 output channels.
    public static func runsDirect(_ g: ConvGeometry) -> Bool {
        directCandidate(g) && directPlanes(g) && g.outChannels % 8 == 0
    }

    /// True when ``backward``'s input gradient is `ddpm_conv3x3_packed` of dY with the flipped weights: the
    /// forward conditions with the roles of the channels swapped (a multiple of 8 input channels).
    public static func runsDirectInputGradient(_ g: ConvGeometry) -> Bool {
        directCandidate(g) && directPlanes(g) && g.inChannels % 8 == 0
    }

    /// True when ``backward``'s weight gradient is `ddpm_conv3x3_weight_gradient`: any width, a
    /// multiple of 16 output channels.
    public static func runsDirectWeightGradient(_ g: ConvGeometry) -> Bool {
        directCandidate(g) && g.outChannels % 16 == 0
    }

    /// `y[n, o, p] = Σ_{c,i,j} w[o, c, i, j] · x[n, c, p·s − pad + (i, j)] + b[o]`, one dgemm per group
    /// of samples, `Y = W (O × patch) · cols (patch × group·P)`. A one-sample group's product is
    /// written straight into `y` (which has `batch·O·P` elements) on top of the bias; a larger
    /// group's goes through a buffer that is then spread into the samples' planes. A 3×3 same convolution
    /// on 8- or 16-pixel-wide planes may go through the direct kernel instead, sample by sample (``runsDirect(_:)``,
    /// ``directPieces(_:weight:flipped:inChannels:outChannels:dWeightLanes:_:)``).
    ///
    /// `adding` is added to the finished output (`y = ((conv + b) + c[n, o]) + r[n, o, p]`, each sum rounded
    /// as written): by each direct piece to its own sample while it is in cache, else in one pass at the end.
    public static func forward(_ g: ConvGeometry, x: UnsafePointer<Double>, weight: UnsafePointer<Double>,
                               bias: UnsafePointer<Double>?, y: UnsafeMutablePointer<Double>, adding: OutputAddition = .none) {
        let (o, pix, plane) = (g.outChannels, g.outPixels, g.inChannels * g.height * g.width)
        if runsDirect(g) {  // (runsDirect reads a task-local: on the calling thread)
            directPieces(g, weight: weight, flipped: false, inChannels: g.inChannels, outChannels: o, dWeightLanes: 0) { n, packed, strip in
                // y = bias + the sums, started in registers (y is not read)
                ddpm_conv3x3_packed(x + n * plane, packed, bias, 0, y + n * o * pix, 1, g.inChannels, o, g.height, g.width, strip)
                adding.apply(to: y, sample: n, channels: o, pixels: pix)
            }
            return
        }
        defer {
            if !adding.isEmpty {
                Parallel.chunks(g.batch, work: g.batch * o * pix) { samples in
                    for n in samples { adding.apply(to: y, sample: n, channels: o, pixels: pix) }
                }
            }
        }
        forEachGroup(g) { samples, _, split in
            var group = g
            group.batch = samples.count
            let columns = samples.count * pix, xs = x + samples.lowerBound * plane, ys = y + samples.lowerBound * o * pix
            let shape = GemmShape(m: o, n: columns, k: g.patch)
            if samples.count == 1 {
                if let bias { for oc in 0..<o { (ys + oc * pix).update(repeating: bias[oc], count: pix) } }
                let beta: Double = bias == nil ? 0 : 1
                if isPointwise(g) { return Gemm.blas(shape, weight, xs, beta: beta, ys, split: split) }  // already its lowered matrix
                Scratch.withBuffer(g.patch * pix) { cols in
                    im2col(group, xs, cols, split: split)
                    Gemm.blas(shape, weight, cols, beta: beta, ys, split: split)
                }
                return
            }
            Scratch.withBuffer((g.patch + o) * columns) { cols in
                let out = cols + g.patch * columns
                im2col(group, xs, cols, split: split)
                Gemm.blas(shape, weight, cols, out, split: split)
                for q in 0..<samples.count { for oc in 0..<o {  // (O, group·P) → (group, O, P)
                    let dst = ys + (q * o + oc) * pix, src = out + oc * columns + q * pix
                    if let bias {
                        let b = bias[oc]
                        for p in 0..<pix { dst[p] = src[p] + b }
                    } else {
                        dst.update(from: src, count: pix)
                    }
                } }
            }
        }
    }

    /// Gradients of ``forward``, group by group: `dW += dY_g · cols_gᵀ`, `dcols_g = Wᵀ · dY_g` folded
    /// back by ``col2im``, `db[o] += Σ_{n,p} dY[n, o, p]`. Any of the outputs may be nil; gradients
    /// are *added* into them, except that `dx` is overwritten when `overwritingDx` is true (then it
    /// may start uninitialised: each group writes its own samples' planes, on the cores that fill
    /// them; ``col2im`` stores each element's first term for same convolutions and zeroes the planes
    /// first for the others).
    /// Each lane sums its share of `dW` in a buffer of its own (lane 0 in `dWeight` itself), added
    /// into `dWeight` in lane order afterwards. 3×3 same convolutions may compute `dW` (lane by lane) and `dx`
    /// (sample by sample) with the direct kernels instead, in one job (``runsDirectWeightGradient(_:)``,
    /// ``runsDirectInputGradient(_:)``, ``directPieces(_:weight:flipped:inChannels:outChannels:dWeightLanes:_:)``);
    /// whatever does not run direct goes group by group as above.
    public static func backward(_ g: ConvGeometry, x: UnsafePointer<Double>, weight: UnsafePointer<Double>,
                                dy: UnsafePointer<Double>, dx: UnsafeMutablePointer<Double>?,
                                dWeight: UnsafeMutablePointer<Double>?, dBias: UnsafeMutablePointer<Double>?,
                                overwritingDx: Bool = false) {
        let (o, pix, plane) = (g.outChannels, g.outPixels, g.inChannels * g.height * g.width)
        if let dBias {  // channels over the cores, each adding its samples' plane sums in order
            Parallel.chunks(o, work: g.batch * o * pix) { channels in
                let sums = UnsafeMutablePointer<Double>.allocate(capacity: g.batch)
                defer { sums.deallocate() }
                for oc in channels {
                    Sums.sums(dy + oc * pix, stride: o * pix, count: g.batch, length: pix, into: sums)
                    for n in 0..<g.batch { dBias[oc] += sums[n] }
                }
            }
        }
        if dx == nil && dWeight == nil { return }
        let dxBeta: Double = overwritingDx ? 0 : 1
        let directDx = dx != nil && runsDirectInputGradient(g), directDW = dWeight != nil && runsDirectWeightGradient(g)
        // The lowered path: lane 0 adds into dWeight itself, lanes 1… into zeroed buffers of their own. The direct
        // kernel writes each lane's total into a buffer of its own (nothing to zero). Either way dWeight ends as
        // (((dW + t₀) + t₁) + t₂) + t₃ over the lanes' totals t, added in lane order below.
        let lanes = sampleLanes(g), size = o * g.patch
        let partialCount = dWeight == nil ? 0 : (directDW ? lanes : lanes - 1) * size
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: partialCount)
        if !directDW { partials.initialize(repeating: 0, count: partialCount) }
        defer { partials.deallocate() }
        func laneShare(_ dW: UnsafeMutablePointer<Double>, _ lane: Int) -> UnsafeMutablePointer<Double> { lane == 0 ? dW : partials + (lane - 1) * size }
        if directDW || directDx {  // one job: dW's lanes first (the larger pieces), then dx sample by sample
            let (c, h, w) = (g.inChannels, g.height, g.width), dWLanes = directDW ? lanes : 0
            // dx is ddpm_conv3x3_packed of dY with the flipped weights: o channels in, c out.
            directPieces(g, weight: directDx ? weight : nil, flipped: true, inChannels: o, outChannels: c, dWeightLanes: dWLanes) { piece, packed, scratch in
                if piece < dWLanes, let dWeight {
                    let samples = (g.batch * piece / lanes)..<(g.batch * (piece + 1) / lanes)
                    ddpm_conv3x3_weight_gradient(x + samples.lowerBound * plane, dy + samples.lowerBound * o * pix, partials + piece * size,
                                                 samples.count, c, o, h, w, scratch)
                } else if let dx {
                    let n = piece - dWLanes
                    ddpm_conv3x3_packed(dy + n * o * pix, packed, nil, overwritingDx ? 0 : 1, dx + n * plane, 1, o, c, h, w, scratch)
                }
            }
        }
        let dxLeft = directDx ? nil : dx, dWeightLeft = directDW ? nil : dWeight
        if dxLeft != nil || dWeightLeft != nil { forEachGroup(g) { samples, lane, split in
            var group = g
            group.batch = samples.count
            let columns = samples.count * pix, xs = x + samples.lowerBound * plane
            let weightGradient = GemmShape(m: o, n: g.patch, k: columns, transposeB: .transposed)
            let inputGradient = GemmShape(m: g.patch, n: columns, k: o, transposeA: .transposed)
            let dW = dWeightLeft.map { laneShare($0, lane) }, dx = dxLeft
            if samples.count == 1 && isPointwise(g) {  // the sample is its own lowered matrix
                let dyn = dy + samples.lowerBound * o * pix
                if let dW { Gemm.blas(weightGradient, dyn, xs, beta: 1, dW, split: split) }
                if let dx { Gemm.blas(inputGradient, weight, dyn, beta: dxBeta, dx + samples.lowerBound * plane, split: split) }
                return
            }
            Scratch.withBuffer((g.patch + (samples.count > 1 ? o : 0)) * columns) { cols in
                // dY of the group as one (O × group·P) matrix: the samples' planes side by side.
                var dys = UnsafePointer(dy + samples.lowerBound * o * pix)
                if samples.count > 1 {
                    let gathered = cols + g.patch * columns
                    for q in 0..<samples.count { for oc in 0..<o {
                        (gathered + oc * columns + q * pix).update(from: dys + (q * o + oc) * pix, count: pix)
                    } }
                    dys = UnsafePointer(gathered)
                }
                if let dW {
                    im2col(group, xs, cols, split: split)
                    Gemm.blas(weightGradient, dys, cols, beta: 1, dW, split: split)
                }
                if let dx {
                    Gemm.blas(inputGradient, weight, dys, cols, split: split)
                    col2im(group, cols, dx + samples.lowerBound * plane, split: split, overwriting: overwritingDx)
                }
            }
        } }
        if let dWeight {  // elements over the cores, each adding the lanes' totals in lane order
            let first = directDW ? 0 : 1
            Parallel.chunks(size, work: lanes * size) { elements in
                for e in elements {
                    var v = dWeight[e]
                    for lane in first..<max(first, lanes) { v += partials[(lane - first) * size + e] }
                    dWeight[e] = v
                }
            }
        }
    }

    /// The gradients of ``forward`` by the direct loops (the oracle for ``backward``): every
    /// multiply–add of the forward pass contributes `w·dy` to `dx`, `x·dy` to `dW`, and `dy` to `db`.
    public static func referenceBackward(_ g: ConvGeometry, x: [Double], weight: [Double], dy: [Double])
        -> (dx: [Double], dWeight: [Double], dBias: [Double]) {
        let (oh, ow, k) = (g.outHeight, g.outWidth, g.kernel)
        var dx = [Double](repeating: 0, count: x.count), dW = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: g.outChannels)
        for n in 0..<g.batch { for o in 0..<g.outChannels { for oy in 0..<oh { for ox in 0..<ow {
            let d = dy[((n * g.outChannels + o) * oh + oy) * ow + ox]
            db[o] += d
            for c in 0..<g.inChannels { for i in 0..<k { for j in 0..<k {
                let yy = oy * g.stride - g.padding + i, xx = ox * g.stride - g.padding + j
                if yy < 0 || yy >= g.height || xx < 0 || xx >= g.width { continue }
                let wi = ((o * g.inChannels + c) * k + i) * k + j, xi = ((n * g.inChannels + c) * g.height + yy) * g.width + xx
                dx[xi] += weight[wi] * d
                dW[wi] += x[xi] * d
            } } }
        } } } }
        return (dx, dW, db)
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
    /// (`y` starts as NaN: every path must write each output without reading it, as `Tensor.conv2d` relies on.)
    public static func forward(_ g: ConvGeometry, x: [Double], weight: [Double], bias: [Double]?) -> [Double] {
        var y = [Double](repeating: .nan, count: g.batch * g.outChannels * g.outPixels)
        x.withUnsafeBufferPointer { px in weight.withUnsafeBufferPointer { pw in y.withUnsafeMutableBufferPointer { py in
            if let bias {
                bias.withUnsafeBufferPointer { pb in forward(g, x: px.baseAddress!, weight: pw.baseAddress!, bias: pb.baseAddress!, y: py.baseAddress!) }
            } else {
                forward(g, x: px.baseAddress!, weight: pw.baseAddress!, bias: nil, y: py.baseAddress!)
            }
        } } }
        return y
    }

    /// Array convenience over ``backward`` for tests: the three gradients of a loss with output gradient `dy`.
    /// With `overwritingDx`, dx starts as NaN everywhere, so an element the kernel fails to write shows.
    public static func backward(_ g: ConvGeometry, x: [Double], weight: [Double], dy: [Double], overwritingDx: Bool = false)
        -> (dx: [Double], dWeight: [Double], dBias: [Double]) {
        var dx = [Double](repeating: overwritingDx ? .nan : 0, count: x.count), dW = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: g.outChannels)
        x.withUnsafeBufferPointer { px in weight.withUnsafeBufferPointer { pw in dy.withUnsafeBufferPointer { pd in
            dx.withUnsafeMutableBufferPointer { pdx in dW.withUnsafeMutableBufferPointer { pdw in db.withUnsafeMutableBufferPointer { pdb in
                backward(g, x: px.baseAddress!, weight: pw.baseAddress!, dy: pd.baseAddress!,
                         dx: pdx.baseAddress!, dWeight: pdw.baseAddress!, dBias: pdb.baseAddress!, overwritingDx: overwritingDx)
            } } }
        } } }
        return (dx, dW, db)
    }
}
