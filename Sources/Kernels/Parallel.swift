// Splitting loops over the machine's cores. Matrix products are split over the cores by `Gemm.blas`
// (or by OpenBLAS's own threads when the user asks for them); the elementwise, normalisation and
// lowering loops between products would otherwise leave all but one core idle (on a 2-core
// machine, half the machine).

import Dispatch
import Foundation

public enum Parallel {
    /// The number of parts loops are split into: the active processor count, at most 8.
    public static let parts = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// Below this many elementary operations a loop runs inline (thread hand-off costs microseconds).
    public static let minimumWork = 1 << 15

    /// Runs `body` over `0 ..< count` split into contiguous ranges, one per core, or inline when
    /// `work` (a rough count of elementary operations) is small. Each index must write only memory
    /// that no other index writes; `body` returns when every range is done.
    public static func chunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let n = min(parts, count)
        if n < 2 || work < minimumWork { body(0..<count); return }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: n) { part in
                shared.value((count * part / n)..<(count * (part + 1) / n))
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
