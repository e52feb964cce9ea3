// The worker pool behind Parallel.chunks and Parallel.forEachLane: every index runs exactly once,
// the workers' writes are visible when `run` returns, a busy pool refuses a second job (the callers
// fall back to libdispatch), and a pool whose workers went to sleep wakes for the next job.
import Dispatch
import Foundation
import Kernels
import Testing

@Suite("Worker pool")
struct WorkerPoolTests {
    /// Runs `n` indices `rounds` times; each index adds 1 to its own slot and writes its value, so an
    /// index run twice, skipped, or whose write is not visible when `run` returns shows in the counts.
    func counts(_ pool: WorkerPool, n: Int, rounds: Int) -> (counts: [Int], values: [Double], refused: Int) {
        var counts = [Int](repeating: 0, count: n), values = [Double](repeating: 0, count: n)
        var refused = 0
        counts.withUnsafeMutableBufferPointer { c in values.withUnsafeMutableBufferPointer { v in
            let (c, v) = (c.baseAddress!, v.baseAddress!)
            for round in 0..<rounds {
                let ran = pool.run(n) { i in
                    c[i] += 1
                    v[i] = Double(i * 1000 + round)
                }
                if !ran { refused += 1 }
            }
        } }
        return (counts, values, refused)
    }

    @Test("every index exactly once, the workers' writes visible on return", arguments: [(1, 1), (1, 2), (1, 7), (2, 3), (2, 64), (3, 5)])
    func everyIndexOnce(_ c: (workers: Int, n: Int)) {
        let pool = WorkerPool(workers: c.workers)
        let rounds = 3000
        let r = counts(pool, n: c.n, rounds: rounds)
        #expect(r.refused == 0)
        let wrong = r.counts.enumerated().filter { $0.element != rounds }
        #expect(wrong.isEmpty, "indices not run exactly \(rounds) times: \(wrong.prefix(5).map { "index \($0.offset): \($0.element)" })")
        #expect(r.values == (0..<c.n).map { Double($0 * 1000 + rounds - 1) }, "last round's values: \(r.values.prefix(8))")
    }

    @Test("a job started inside a job is refused (the caller falls back), and the outer job still completes")
    func nestedJobIsRefused() {
        let pool = WorkerPool(workers: 1)
        var inner = [Bool](repeating: true, count: 8), outer = [Int](repeating: 0, count: 8)
        inner.withUnsafeMutableBufferPointer { inn in outer.withUnsafeMutableBufferPointer { out in
            let (inn, out) = (inn.baseAddress!, out.baseAddress!)
            #expect(pool.run(8) { i in
                inn[i] = pool.run(2) { _ in }
                out[i] += 1
            })
        } }
        #expect(inner == [Bool](repeating: false, count: 8))
        #expect(outer == [Int](repeating: 1, count: 8))
    }

    @Test("concurrent callers: each job runs whole on the pool or is refused whole")
    func concurrentCallers() {
        let pool = WorkerPool(workers: 1)
        let callers = 4, rounds = 500, n = 6
        final class Results: @unchecked Sendable { var counts = [[Int]](); var refused = [Int]() }
        let results = Results()
        results.counts = [[Int]](repeating: [Int](repeating: 0, count: n), count: callers)
        results.refused = [Int](repeating: 0, count: callers)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            var local = [Int](repeating: 0, count: n), refused = 0
            local.withUnsafeMutableBufferPointer { l in
                let l = l.baseAddress!
                for _ in 0..<rounds {
                    if !pool.run(n, { i in l[i] += 1 }) {
                        refused += 1
                        for i in 0..<n { l[i] += 1 }   // the fallback a caller takes
                    }
                }
            }
            results.counts[caller] = local   // each caller writes its own row
            results.refused[caller] = refused
        }
        for caller in 0..<callers {
            #expect(results.counts[caller] == [Int](repeating: rounds, count: n), "caller \(caller): \(results.counts[caller])")
        }
        print("concurrent callers: refused \(results.refused) of \(rounds) jobs each")
    }

    @Test("a pool whose workers sleep wakes for the next job")
    func sleepingWorkersWake() {
        let pool = WorkerPool(workers: 2, spinNanoseconds: 1_000)
        _ = counts(pool, n: 4, rounds: 10)
        // Wait for the observable state (both workers asleep), not for a duration; the bound only
        // keeps a broken pool from hanging the suite.
        let start = DispatchTime.now().uptimeNanoseconds
        while pool.sleepingWorkers < 2 && DispatchTime.now().uptimeNanoseconds - start < 60_000_000_000 { sched_yield() }
        #expect(pool.sleepingWorkers == 2)
        let r = counts(pool, n: 16, rounds: 200)
        #expect(r.counts == [Int](repeating: 200, count: 16))
    }

    @Test("Parallel.chunks and forEachLane on the shared pool cover every index once")
    func parallelLoops() {
        let n = 100_003
        var out = [Double](repeating: -1, count: n)
        out.withUnsafeMutableBufferPointer { o in
            let o = o.baseAddress!
            Parallel.chunks(n, work: 10 * n) { r in for i in r { o[i] += Double(i) + 1 } }
        }
        #expect(out == (0..<n).map { Double($0) })
        var lanes = [Int](repeating: 0, count: 9)
        lanes.withUnsafeMutableBufferPointer { l in
            let l = l.baseAddress!
            Parallel.forEachLane(9, threads: Parallel.cores) { lane in l[lane] += lane + 1 }
        }
        #expect(lanes == (1...9).map { $0 })
    }
}
