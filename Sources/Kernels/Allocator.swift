// Large temporary buffers (activations and their gradients) are allocated and freed on every layer.
// glibc serves blocks above 128 KiB by mmap and returns them with munmap, so each layer would fault
// its pages in afresh; at batch 8 that system time rivalled the arithmetic. Keeping freed memory in
// the heap lets the next layer reuse warm pages. The im2col matrices live in `Scratch` below.

import Foundation

#if os(Linux)
/// glibc's `mallopt` (malloc.h, which the Glibc module does not export).
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
// Parameter numbers from glibc's malloc.h.
private let mTrimThreshold: Int32 = -1, mTopPad: Int32 = -2, mMmapThreshold: Int32 = -3
#endif

public enum Allocator {
    /// Asks glibc to serve large blocks from the heap and not to trim it, so that freed buffers are
    /// reused. Process-wide; the command-line tool calls it once at start-up.
    public static func retainFreedMemory() {
        #if os(Linux)
        _ = glibcMallopt(mMmapThreshold, 32 << 20)  // glibc's largest allowed value on 64-bit
        _ = glibcMallopt(mTrimThreshold, Int32.max)
        _ = glibcMallopt(mTopPad, 64 << 20)
        #endif
    }
}

/// A per-thread scratch buffer for the im2col matrix of a group of samples (at most 3456 × 1024 doubles,
/// 27 MiB, for one sample of the default U-Net's widest layer): allocated once per thread, grown when
/// needed, never shrunk, so that no layer pays for fresh pages.
final class Scratch {
    private var pointer: UnsafeMutablePointer<Double>
    private var capacity: Int
    private init() { capacity = 0; pointer = UnsafeMutablePointer<Double>.allocate(capacity: 1) }
    deinit { pointer.deallocate() }

    private static let key = "ddpm.kernels.scratch"

    /// Runs `body` with at least `count` doubles of uninitialised scratch memory owned by this thread.
    /// Not re-entrant: `body` must not call `withBuffer` again.
    static func withBuffer<R>(_ count: Int, _ body: (UnsafeMutablePointer<Double>) -> R) -> R {
        let dictionary = Thread.current.threadDictionary
        let scratch: Scratch
        if let s = dictionary[key] as? Scratch { scratch = s } else { scratch = Scratch(); dictionary[key] = scratch }
        if scratch.capacity < count {
            scratch.pointer.deallocate()
            scratch.pointer = UnsafeMutablePointer<Double>.allocate(capacity: count)
            scratch.capacity = count
        }
        return body(scratch.pointer)
    }
}
