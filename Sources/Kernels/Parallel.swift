// Splitting loops over the machine's cores. Matrix products are split over the cores by `Gemm.blas`
// (or by OpenBLAS's own threads when the user asks for them); the elementwise, normalisation and
// lowering loops between products would otherwise leave all but one core idle (on a 2-core
// machine, half the machine).
//
// Results never depend on the number of cores or threads. Work whose pieces write disjoint memory
// (elementwise loops, rows of a product) may be cut by core count, since each element is computed
// the same way whichever thread computes it. Work whose pieces are summed (the weight gradient of a
// convolution over a batch) or whose cut changes the shape of a product (blocks of a large product)
// is cut into ``lanes`` pieces, a constant: the cores only decide which thread runs which lane, and
// the lanes' results are combined in lane order (`KernelTests.resultsDoNotDependOnTheCoreCount`).

import Dispatch
import Foundation

public enum Parallel {
    /// The machine's cores: the active processor count, at most 8.
    public static let cores = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// The number of threads loops are spread over: ``cores``, or the count given to ``withCores(_:_:)``.
    public static var parts: Int { coreOverride ?? cores }

    /// Set only inside ``withCores(_:_:)``.
    @TaskLocal static var coreOverride: Int?

    /// Runs `body` as if the machine had `count` cores (for tests: a result must not change with it).
    /// Applies to the calling task; the library's load-time choices (``BLASLibrary``) use ``cores``.
    public static func withCores<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        precondition(count > 0, "Parallel.withCores: \(count) cores")
        return try $coreOverride.withValue(count) { try body() }
    }

    /// The number of pieces large products and batches are cut into when their pieces' results are
    /// summed or their shapes matter: a constant, chosen for machines of up to 4 cores, so that a
    /// result is the same on 1, 2 or 4 threads (and under OPENBLAS_NUM_THREADS).
    public static let lanes = 4

    /// Below this many elementary operations a loop runs inline (thread hand-off costs microseconds).
    public static let minimumWork = 1 << 15

    /// The worker threads (``WorkerPool``, one per core beside the caller's) that run the split loops
    /// below; nil on one core. While another loop owns the pool (a concurrent caller, or a loop started
    /// inside a loop), a split loop runs on libdispatch's `concurrentPerform` instead.
    static let pool: WorkerPool? = cores > 1 ? WorkerPool(workers: cores - 1) : nil

    /// Contiguous ranges per core that ``chunks(_:work:_:)`` cuts a loop into on the pool: claimed one at a
    /// time, so a worker that joins late (woken from its sleep, 75–150 µs) takes fewer, instead of leaving the
    /// caller waiting for a whole half of the loop.
    public static let rangesPerCore = 4

    /// Runs `body` over `0 ..< count` split into contiguous ranges (``rangesPerCore`` per core on the pool,
    /// one per core otherwise), or inline when `work` (a rough count of elementary operations) is small.
    /// Each index must write only memory that no other index writes; `body` returns when every range is done.
    public static func chunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let n = min(parts, count)
        if n < 2 || work < minimumWork { body(0..<count); return }
        let ranges = min(count, n * rangesPerCore)
        if let pool, n >= pool.participants,
           pool.run(ranges, { part in body((count * part / ranges)..<(count * (part + 1) / ranges)) }) { return }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: n) { part in
                shared.value((count * part / n)..<(count * (part + 1) / n))
            }
        }
    }

    /// Runs `body(lane)` for every lane in `0 ..< count`: on the pool's threads when `threads` is at
    /// least their number (each takes the next unclaimed lane), else (or when the pool is owned by
    /// another loop) on up to `threads` threads of
    /// libdispatch (thread w takes lanes w, w + threads, …); in lane order on the calling thread when
    /// `threads` < 2. Lanes must write disjoint memory; which thread runs a lane must not matter to its result.
    public static func forEachLane(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        let t = min(threads, count)
        if t < 2 { for lane in 0..<count { body(lane) }; return }
        if let pool, t >= pool.participants, pool.run(count, body) { return }  // at most `threads` run at once
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: t) { w in
                for lane in stride(from: w, to: count, by: t) { shared.value(lane) }
            }
        }
    }
}

/// Carries a value (a closure, raw pointers) into `concurrentPerform`'s `@Sendable` closure.
/// Safe where it is used: `concurrentPerform` returns only after every iteration has finished, so
/// the value never outlives the call that owns it, and every caller's iterations write disjoint memory.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
