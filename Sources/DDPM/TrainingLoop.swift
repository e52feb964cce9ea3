// The training loop: steps up to a target, periodic atomic checkpoints, divergence detection, and a tidy
// stop on SIGINT/SIGTERM (save at the current step, say so, stop). Progress goes to a callback; drawing it
// is the caller's business.

import Dispatch
import FileOutput
import Foundation
import Kernels

extension TrainingOptions {
    /// Throws `.invalidValue` for options no run can use, each message naming the option and the value:
    /// a learning rate must be finite and in (0, 1] (Adam moves each weight by about the learning rate per
    /// step, so a rate above 1 only throws the weights away), the batch size positive, the EMA decay in
    /// [0, 1), β₁ and β₂ in [0, 1), ε and the clipping norm finite and positive.
    public func validate() throws {
        func bad(_ name: String, _ value: Double, _ expected: String) -> DDPMError {
            DDPMError(.invalidValue, "\(name): expected \(expected), got \(value)")
        }
        guard learningRate.isFinite, learningRate > 0, learningRate <= 1 else { throw bad("learning rate", learningRate, "a finite number in (0, 1]") }
        guard batchSize > 0 else { throw DDPMError(.invalidValue, "batch size: expected a positive number, got \(batchSize)") }
        guard emaDecay >= 0, emaDecay < 1 else { throw bad("EMA decay", emaDecay, "a value in [0, 1)") }
        guard beta1 >= 0, beta1 < 1 else { throw bad("Adam β₁", beta1, "a value in [0, 1)") }
        guard beta2 >= 0, beta2 < 1 else { throw bad("Adam β₂", beta2, "a value in [0, 1)") }
        guard epsilon.isFinite, epsilon > 0 else { throw bad("Adam ε", epsilon, "a finite positive number") }
        guard gradientClipNorm.isFinite, gradientClipNorm > 0 else { throw bad("gradient clipping norm", gradientClipNorm, "a finite positive number") }
        guard labelDropout >= 0, labelDropout <= 1 else { throw bad("label dropout", labelDropout, "a probability in [0, 1]") }
    }
}

extension Trainer {
    /// The name and the first non-finite value of the weights or their running average, if any.
    public func firstNonFiniteWeight() -> (name: String, value: Double)? {
        // Fast path: a sum is finite only if every term is (an inf or NaN term makes it inf or NaN);
        // only when some sum is not (a bad value, or an overflow of the sum) are the values searched.
        func finiteSum(_ a: [Double]) -> Bool { a.withUnsafeBufferPointer { Sums.sum($0.baseAddress!, $0.count).isFinite } }
        if zip(network.parameters, ema).allSatisfy({ finiteSum($0.data) && finiteSum($1) }) { return nil }
        for (k, (name, p)) in network.namedParameters().enumerated() {
            if let v = p.data.first(where: { !$0.isFinite }) { return (name, v) }
            if let v = ema[k].first(where: { !$0.isFinite }) { return ("average of " + name, v) }
        }
        return nil
    }
}

/// One report of the loop to its caller, after every step.
public struct TrainingProgress: Sendable {
    public var step: Int, total: Int
    /// The loss of this step (before its update) and an exponential average (weight 0.02 per step).
    public var loss: Double, smoothedLoss: Double
    /// The path of a checkpoint written after this step, if one was.
    public var savedCheckpoint: String?
    /// The held-out loss evaluated after this step, if it was.
    public var heldOutLoss: Double? = nil
}

/// Held-out images whose loss the loop records (``Trainer/recordHeldOutLoss(_:seed:batchSize:)``) at the
/// start, every `every` steps (0: none between), at the last step and at an interrupt; always before the
/// checkpoint of that step is saved, so the checkpoint holds its own point. The same t and ε (from `seed`)
/// at every point, so the points differ only by the weights.
public struct HeldOutSchedule {
    public var images: Tensor, seed: UInt64, every: Int
    /// Images per network evaluation (nil: all at once).
    public var batchSize: Int?
    public init(images: Tensor, seed: UInt64, every: Int, batchSize: Int? = nil) {
        self.images = images; self.seed = seed; self.every = every; self.batchSize = batchSize
    }
}

/// Watches SIGINT and SIGTERM while a loop runs. The first signal asks the loop to stop after the current
/// step; a second SIGINT ends the process at once (status 130), writing only a one-line note.
public final class InterruptWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?
    private var sources: [DispatchSourceSignal] = []
    /// Said on stderr when the first signal arrives.
    private let notice: String

    /// The signal that asked the most recent loop to stop (for the exit status 128 + signal).
    nonisolated(unsafe) public static var lastSignal: Int32?

    init(notice: String) { self.notice = notice }

    /// The first signal received, if any.
    public var signal: Int32? { lock.lock(); defer { lock.unlock() }; return received }

    func start() {
        for s in [SIGINT, SIGTERM] {
            Foundation.signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            // Signals that arrive before the handler runs are merged into one event; `data` counts them. (The
            // handler holds its source until `stop()` cancels it.)
            source.setEventHandler { [weak self] in self?.handle(s, count: Int(source.data)) }
            source.resume()
            sources.append(source)
        }
    }

    func stop() {
        for s in sources { s.cancel() }
        sources = []
        Foundation.signal(SIGINT, SIG_DFL); Foundation.signal(SIGTERM, SIG_DFL)
    }

    private func handle(_ s: Int32, count: Int) {
        lock.lock()
        let first = received == nil
        if first { received = s }
        lock.unlock()
        if first && !(s == SIGINT && count > 1) {
            FileHandle.standardError.write(Data(("\n" + notice + "\n").utf8))
        } else if s == SIGINT {
            FileHandle.standardError.write(Data("\nsecond interrupt: stopping now without saving\n".utf8))
            _exit(130)
        }
    }
}

/// Trains `trainer` on `images` (with their `labels` for a class-conditional network) up to step `until`.
///
/// - Checkpoints go to `checkpoint` (if given) every `checkpointEvery` steps (0: only at the end), always
///   atomically; the final state is saved at the end.
/// - A non-finite loss or non-finite weights after a step throw `.diverged` naming the step; nothing is
///   saved then, so the last checkpoint written (a good one) is kept.
/// - SIGINT or SIGTERM during the loop: the step in progress finishes, a checkpoint at that step is saved
///   (when a path is given) and `.interrupted` is thrown saying so; ``InterruptWatch/lastSignal`` names the
///   signal. A second SIGINT exits at once.
/// - `heldOut`: held-out losses recorded in the trainer at the start and on its schedule, before any save.
/// - `onProgress` is called after every step (a trailing closure is `onProgress`: `afterSave` comes after it).
/// - `afterSave` is called after each checkpoint is saved (before an interrupt is reported): a caller's
///   files that follow the checkpoint (the loss figure). A failure there stops the loop; the checkpoint stays.
public enum TrainingLoop {
    public static func run(_ trainer: Trainer, images: Tensor, labels: [Int]? = nil, until: Int, checkpointEvery: Int = 0, checkpoint: String?,
                           heldOut: HeldOutSchedule? = nil, onProgress: (TrainingProgress) -> Void = { _ in },
                           afterSave: (Trainer) throws -> Void = { _ in }) throws {
        guard checkpointEvery >= 0 else { throw DDPMError(.invalidValue, "checkpoint interval: expected 0 or a positive number, got \(checkpointEvery)") }
        if let h = heldOut {
            guard h.every >= 0 else { throw DDPMError(.invalidValue, "held-out interval: expected 0 or a positive number, got \(h.every)") }
            if trainer.heldOutHistory.last?.step != trainer.step { try trainer.recordHeldOutLoss(h.images, seed: h.seed, batchSize: h.batchSize) }
        }
        let notice = checkpoint.map { "interrupt: finishing the current step, then saving \($0) (interrupt again to stop at once without saving)" }
            ?? "interrupt: stopping after the current step (interrupt again to stop at once)"
        let watch = InterruptWatch(notice: notice)
        watch.start()
        defer { watch.stop() }
        let start = trainer.step
        var smoothed: Double?
        var lastSaved: (step: Int, path: String)?
        while trainer.step < until {
            let loss = try trainer.trainStep(on: images, labels: labels)
            if !loss.isFinite {
                throw diverged(at: trainer.step, "the loss is \(loss)", kept: lastSaved, start: start)
            }
            if let (name, value) = trainer.firstNonFiniteWeight() {
                throw diverged(at: trainer.step, "weight '\(name)' is \(value)", kept: lastSaved, start: start)
            }
            smoothed = smoothed.map { 0.98 * $0 + 0.02 * loss } ?? loss
            var saved: String?
            // Read once: a signal that arrives later (during `onProgress`) stops the loop after the next step,
            // which saves first; reading it again after `onProgress` would report a save that never happened.
            let stopping = watch.signal
            var heldOutLoss: Double?
            if let h = heldOut, (h.every > 0 && trainer.step % h.every == 0) || trainer.step == until || stopping != nil {
                heldOutLoss = try trainer.recordHeldOutLoss(h.images, seed: h.seed, batchSize: h.batchSize)
            }
            if let checkpoint, (checkpointEvery > 0 && trainer.step % checkpointEvery == 0) || trainer.step == until || stopping != nil {
                try trainer.save(to: checkpoint)
                lastSaved = (trainer.step, checkpoint); saved = checkpoint
                try afterSave(trainer)
            }
            onProgress(TrainingProgress(step: trainer.step, total: until, loss: loss, smoothedLoss: smoothed!, savedCheckpoint: saved, heldOutLoss: heldOutLoss))
            if let s = stopping {
                InterruptWatch.lastSignal = s
                let name = s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "signal \(s)"
                throw DDPMError(.interrupted, "interrupted by \(name) at step \(trainer.step) of \(until); "
                                + (checkpoint.map { "checkpoint saved to \($0) at step \(trainer.step)" } ?? "nothing saved"))
            }
        }
    }

    static func diverged(at step: Int, _ what: String, kept: (step: Int, path: String)?, start: Int) -> DDPMError {
        DDPMError(.diverged, "training diverged at step \(step): \(what); "
                  + (kept.map { "the last good checkpoint (step \($0.step)) is kept in \($0.path)" }
                     ?? "nothing was saved after step \(start), so any earlier checkpoint is kept"))
    }
}
