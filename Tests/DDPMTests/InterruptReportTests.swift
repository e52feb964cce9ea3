// A signal that arrives while the progress callback runs: the loop must not report a save it did not make.

import Foundation
import TestSupport
import Testing
@testable import DDPM
import HDF5

func lateInterruptFolder(parent: pid_t) -> String { NSTemporaryDirectory() + "ddpm-late-interrupt-\(parent)" }

@Suite("TrainingLoop: what an interruption reports is what was saved")
struct InterruptReportTests {
    /// The SIGINT is sent from inside `onProgress` after step 1, with periodic saving off, and the callback
    /// waits until the watch has seen it (its notice is in the log). Step 1 was not saved, so the loop must run
    /// step 2, save it, and say "saved … at step 2"; a loop that reads the signal again after the callback says
    /// "saved at step 1" with no file (the child exits 6 then, or 7 when the message names the wrong step).
    @Test func signalDuringProgressIsSavedAtTheNextStep() async throws {
        let dir = lateInterruptFolder(parent: getpid())
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        await #expect(processExitsWith: .exitCode(0)) {
            let dir = lateInterruptFolder(parent: getppid()), log = dir + "/stderr.txt"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0, dup2(fd, 2) == 2 else { exit(2) }
            var options = TrainingOptions(); options.batchSize = 2
            let trainer = try Trainer(config: microConfiguration(), options: options, seed: 1)
            do {
                try TrainingLoop.run(trainer, images: digits8(8), until: 1000, checkpointEvery: 0, checkpoint: dir + "/c.h5") { p in
                    guard p.step == 1 else { return }
                    kill(getpid(), SIGINT)
                    guard waitFor(120, { logText(log).contains("interrupt: finishing the current step") }) else { exit(3) }
                }
                exit(4)
            } catch let e as DDPMError where e.kind == .interrupted {
                try? e.description.write(toFile: dir + "/message.txt", atomically: true, encoding: .utf8)
                guard FileManager.default.fileExists(atPath: dir + "/c.h5") else { exit(6) }
                guard e.description.contains("at step 2"), (try? HDF5File(path: dir + "/c.h5").int64Attribute("step")) == 2 else { exit(7) }
                exit(0)
            }
        }
        let message = logText(dir + "/message.txt")
        print("late interrupt, the loop's message:", message)
        #expect(message.contains("checkpoint saved to") && message.contains("at step 2"), "\(message)")
    }
}

@Suite("InterruptWatch: a signal sent the moment the watch starts is seen")
struct InterruptWatchStartTests {
    /// `start()` returns only when libdispatch has registered its signal sources. Before that fix a SIGINT sent
    /// straight after `start()` was dropped (the default action is already "ignore"): lost in 18 of 20 fresh
    /// processes in a stand-alone program, and the cause of `secondInterruptStopsAtOnce`'s rare exit 3 under load.
    /// The child sends SIGINT to itself at once, then waits for the watch to report it (the observable state;
    /// the 60 s bound only turns a lost signal into exit 3 instead of a hang).
    @Test func signalRightAfterStartIsSeen() async throws {
        await #expect(processExitsWith: .exitCode(0)) {
            let watch = InterruptWatch(notice: "interrupt: test notice")
            watch.start()
            kill(getpid(), SIGINT)
            let end = Date().addingTimeInterval(60)
            while watch.signal == nil && Date() < end { usleep(1_000) }
            exit(watch.signal == SIGINT ? 0 : 3)
        }
    }
}
