import Foundation
import TestSupport
import Testing
import DDPM

/// Golden files with a noisy classifier (GoldenClassifier.swift): its log-probabilities and input gradients.
@Suite("Golden files: the noisy classifier's log-probabilities and input gradients")
struct GoldenClassifierTests {
    @Test("export with K = 3: the stored ∇_x log p_φ agrees with central differences of the stored classifier at the stored x_t; the file checks; a perturbed gradient fails; outputs without /classifier are refused")
    func exportAndCheck() throws {
        let dir = scratchFolder(), p = dir + "/g.h5"
        let config = microConfiguration()
        try GoldenFile.export(to: p, config: config, seed: 3, batch: 3, classifierClasses: 3)
        let f = try HDF5File(path: p)
        #expect(try f.int64Attribute("classes", of: "/classifier") == 3)
        #expect(try f.readInt64s("/inputs/classifier_labels").values == [0, 1, 2])
        let logp = try f.readDoubles("/outputs/classifier_log_prob"), grad = try f.readDoubles("/outputs/classifier_grad")
        #expect(logp.shape == [3] && grad.shape == [3, 1, 8, 8] && logp.values.allSatisfy { $0 < 0 })
        // Independently of the check's path: the stored gradient against finite differences of the stored classifier.
        let classifier = try GoldenClassifier(reading: f, config: config, batch: 3)!
        let xt = Tensor(shape: [3, 1, 8, 8], data: try f.readDoubles("/outputs/x_t").values)
        let t = try f.readInt64s("/inputs/t").values.map(Int.init)
        classifier.network.isTraining = false
        let fd = GradientCheck.compare("golden classifier_grad", gradient: grad.values, at: xt, tolerance: .network) {
            ClassifierGuidance.logProbabilities(logits: classifier.network.logits(xt, t), labels: [0, 1, 2]).data.reduce(0, +)
        }
        print("gradcheck \(fd)")
        #expect(fd.passed, "\(fd)")
        let rows = try GoldenFile.check(path: p, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
        let mine = rows.filter { $0.name.hasPrefix("classifier_") }
        #expect(mine.count == 2 && mine.allSatisfy { $0.comparison.passed } && rows.allSatisfy { $0.comparison.passed })
        for row in mine { print("golden \(row.comparison)") }
        var bent = grad.values; bent[17] *= 1 + 1e-6
        try copyHDF5(p, to: dir + "/bent.h5", datasets: ["/outputs/classifier_grad": bent])
        let bentRows = try GoldenFile.check(path: dir + "/bent.h5", tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
        #expect(bentRows.first { $0.name == "classifier_grad" }?.comparison.passed == false)
        try copyHDF5(p, to: dir + "/orphan.h5", skip: ["/classifier", "/classifier/weights", "/inputs/classifier_labels"])
        expectError(.malformedFile, mentioning: ["classifier_", "'/classifier'"]) { _ = try GoldenFile.check(path: dir + "/orphan.h5", tolerance: .equation) }
    }

    @Test("golden export --classifier-classes 4 writes the classifier and golden check passes it")
    func command() throws {
        let dir = scratchFolder()
        let e = try runDDPM(["golden", "export", "--out", dir + "/g.h5", "--classifier-classes", "4", "--timesteps", "10"])
        #expect(e.status == 0 && e.stdout.contains("a noisy classifier of 4 classes"), "\(e.stdout) \(e.stderr)")
        let c = try runDDPM(["golden", "check", dir + "/g.h5", "--report", dir + "/r.md"])
        let report = try String(contentsOfFile: dir + "/r.md", encoding: .utf8)
        #expect(c.status == 0 && report.contains("classifier_grad") && report.contains("classifier_log_prob"), "\(c.stdout) \(c.stderr)")
        try expectUserError(["golden", "export", "--out", dir + "/h.h5", "--classifier-classes", "1"], "--classifier-classes: expected 2 to")
    }
}
