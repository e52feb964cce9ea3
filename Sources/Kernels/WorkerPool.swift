// The worker threads behind `Parallel.chunks` and `Parallel.forEachLane`.
//
// libdispatch's `concurrentPerform` wakes its worker threads for every call, and on the 2-core
// virtual machines this project is measured on a woken worker joins 75–150 µs late: a loop of
// 2 × 100,000 elements ran slower under `concurrentPerform` than on one thread (170–186 µs against
// 154–156 µs), and only loops of about a millisecond gained (2 × 10^6 elements: 1037–1292 µs
// against 1513–1568 µs; a stand-alone program, Intel Xeon family 6 model 207, 2026-12-02). The layers
// of the demo's network hand out hundreds of such loops per training step. The pool's workers
// instead keep polling for the next job for a short while after each one (``WorkerPool/spinNanoseconds``),
// so a job handed out right after the last one starts at once (the same loops: 72–79 µs and
// 742–774 µs, within 5 % of half the one-thread time), and then sleep on a condition variable, so an
// idle process uses no CPU.
//
// One caller at a time owns the pool; a call that finds it owned (another thread's job, or a job
// started from inside a job) returns false and the caller falls back to `concurrentPerform`, so
// nothing waits for the pool and nested or concurrent parallel loops still run.

import Dispatch
import Foundation
import Synchronization

/// A fixed set of worker threads that run the indices of one job at a time beside the calling thread.
public final class WorkerPool: @unchecked Sendable {
    /// Worker threads (the caller is the other participant of every job).
    public let workers: Int
    /// How long a worker keeps polling for the next job before it sleeps.
    public let spinNanoseconds: UInt64

    private let generation = Atomic<Int>(0)  // incremented when a job is installed
    private let next = Atomic<Int>(0)        // the job's next unclaimed index
    private let finished = Atomic<Int>(0)    // the job's indices that have returned
    private let owned = Atomic<Bool>(false)  // a caller is running a job
    // `condition`'s lock guards the fields below it.
    private let condition = NSCondition()
    private var job: ((Int) -> Void)?
    private var count = 0
    private var active = 0                   // workers inside the current job
    private var sleeping = 0                 // workers waiting on `condition`

    /// Starts `workers` threads. They, and so the pool, live as long as the process (an idle worker sleeps).
    public init(workers: Int, spinNanoseconds: UInt64 = 200_000) {
        precondition(workers >= 1, "WorkerPool: \(workers) workers")
        self.workers = workers
        self.spinNanoseconds = spinNanoseconds
        for w in 0..<workers {
            let thread = Thread { self.serve() }  // the thread keeps the pool alive: both last as long as the process
            thread.name = "ddpm.worker.\(w)"
            thread.start()
        }
    }

    /// Workers asleep on the condition variable right now (for tests that wait for the pool to idle).
    public var sleepingWorkers: Int {
        condition.lock()
        defer { condition.unlock() }
        return sleeping
    }

    /// Runs `body(i)` for every `i` in `0 ..< n`, each exactly once, on the calling thread and the
    /// workers (indices are claimed one at a time, so a worker that joins late just takes fewer);
    /// returns when all have returned. Returns false without running anything when the pool is owned
    /// by another job (a concurrent caller, or a call from inside a job).
    public func run(_ n: Int, _ body: (Int) -> Void) -> Bool {
        guard owned.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        withoutActuallyEscaping(body) { body in
            condition.lock()
            job = body
            count = n
            next.store(0, ordering: .relaxed)
            finished.store(0, ordering: .relaxed)
            generation.wrappingAdd(1, ordering: .releasing)
            if sleeping > 0 { condition.broadcast() }
            condition.unlock()
            claim(body, n)
            var polls = 0
            while finished.load(ordering: .acquiring) < n {
                polls &+= 1
                if polls > 4096 { sched_yield() }  // a worker holding an index was descheduled
            }
            // No worker may still hold the closure when `withoutActuallyEscaping` ends: close the job to
            // joiners, then wait for the ones inside to leave (each releases its copy before it does).
            condition.lock()
            job = nil
            while active > 0 { condition.unlock(); sched_yield(); condition.lock() }
            condition.unlock()
        }
        owned.store(false, ordering: .releasing)
        return true
    }

    /// Claims and runs indices of the current job until none is left.
    @inline(__always)
    private func claim(_ body: (Int) -> Void, _ n: Int) {
        while true {
            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if i >= n { return }
            body(i)
            finished.wrappingAdd(1, ordering: .releasing)
        }
    }

    /// A worker's life: wait for a new generation (polling, then asleep), join its job, repeat.
    private func serve() {
        var seen = 0
        while true {
            var g = generation.load(ordering: .acquiring)
            if g == seen {
                let start = DispatchTime.now().uptimeNanoseconds
                var polls = 0
                while g == seen {
                    polls &+= 1
                    if polls & 255 == 0 && DispatchTime.now().uptimeNanoseconds - start > spinNanoseconds {
                        condition.lock()
                        sleeping += 1
                        while generation.load(ordering: .acquiring) == seen { condition.wait() }
                        sleeping -= 1
                        condition.unlock()
                    }
                    g = generation.load(ordering: .acquiring)
                }
            }
            seen = g
            condition.lock()
            let open = job != nil
            if open { active += 1 }
            condition.unlock()
            guard open else { continue }
            share()
            condition.lock()
            active -= 1
            condition.unlock()
        }
    }

    /// The worker's part of the job it joined. Its copy of the job's closure is released when this
    /// returns, before the worker leaves the job.
    @inline(never)
    private func share() {
        condition.lock()
        let body = job, n = count
        condition.unlock()
        if let body { claim(body, n) }
    }
}

extension WorkerPool {
    /// Threads that take part in a job: the workers and the caller.
    public var participants: Int { workers + 1 }
}
