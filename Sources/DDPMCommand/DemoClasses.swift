import DDPM
import Foundation

// The class-conditional part of `ddpm demo` (issue 20), wired from ``ConditionalDemo`` (Sources/DDPM/ConditionalDemo.swift):
// the noisy classifier, classes.png, and the report's rows about them.

extension Demo {
    /// What the conditional part measured, as report rows and the figure list's entry.
    struct ConditionalResults {
        /// The report's table rows, given the demo's time so far (the classifier's share is of it).
        var reportRows: (Double) -> String
        var figureNote: String
    }

    /// Trains the classifier on the training split, measures its held-out accuracy (t = 0, and at one uniform t per
    /// image), samples the class grid with `choice` from the trainer's current (EMA) weights, writes
    /// `classes.png` into `dir`, and measures how often the classifier recognises the requested digit.
    func classGrid(_ trainer: Trainer, train: Tensor, heldOut: Tensor, labels: (train: [Int], heldOut: [Int]), choice: SamplerChoice,
                   seed: UInt64, in dir: String) throws -> ConditionalResults {
        let k = ConditionalDemo.digitClasses
        let classifierSteps = ConditionalDemo.classifierSteps(denoiserSteps: steps)
        var options = TrainingOptions()
        options.batchSize = batchSize; options.learningRate = ConditionalDemo.classifierLearningRate
        let progress = Progress("demo classifier", total: classifierSteps)
        let classifierStart = Date()
        let classifier = try ConditionalDemo.trainClassifier(images: train, labels: labels.train, classes: k,
                                                             network: ConditionalDemo.classifierNetwork(for: trainer.config.network),
                                                             diffusion: trainer.config.diffusion, steps: classifierSteps, options: options,
                                                             seed: seed &+ 29) { progress.update($0, loss: $1) }
        let classifierSeconds = Date().timeIntervalSince(classifierStart)
        let heldOutAtZero = ConditionalDemo.recognition(predicted: ConditionalDemo.predictions(classifier.network, images: heldOut),
                                                        requested: labels.heldOut, classes: k)
        let heldOutNoisy = try classifier.evaluate(images: heldOut, labels: labels.heldOut, seed: seed &+ 31)
        let perClass = min(ConditionalDemo.gridPerClass, count)
        let requested = ConditionalDemo.gridLabels(classes: k, perClass: perClass)
        let strengths = ConditionalDemo.gridStrengths
        let gridStart = Date()
        let panels = try ConditionalDemo.classSamples(trainer, labels: requested, strengths: strengths, choice: choice, seed: seed &+ 23)
        let gridSeconds = Date().timeIntervalSince(gridStart)
        let rates = panels.map { ConditionalDemo.recognition(predicted: ConditionalDemo.predictions(classifier.network, images: $0), requested: requested, classes: k) }
        // The caption's font has no Greek letters: the sampler in plain words.
        let samplerName = choice.solver == nil ? "\(choice.kind.rawValue), eta \(String(format: "%g", choice.eta)), \(choice.steps ?? timesteps) steps" : "\(choice)"
        let name = { (s: GuidanceStrength) in "w = \(String(format: "%g", s.w))" }
        try ConditionalDemo.writeClassGrid(panels, classes: k, perClass: perClass, headings: strengths.map { "w=\(String(format: "%g", $0.w))" },
                                           caption: "one row per digit 0-9, classifier-free guidance w (Ho and Salimans eq. 6, s = 1 + w): \(strengths.map(name).joined(separator: " | ")); \(samplerName)",
                                           range: 0...1, path: dir + "/classes.png")
        let heldOutName = usesUCI ? "\(heldOut.shape[0]) held-out UCI digits" : "\(heldOut.shape[0]) held-out drawn digits"
        let f1 = { (v: Double) in String(format: "%.1f", v) }
        let rows = { (total: Double) in
            ([
                "| conditional model | \(k) digit classes and the null class (`label_emb`, \(k + 1) rows of the time-embedding width), label dropout p = \(trainer.options.labelDropout) (Ho & Salimans 2022): the figures above (held-out loss, bound, samples) are the same weights' null-class (unconditional) predictions | |",
                "| noisy classifier | the demo network's encoder half with a pooled head (\(classifier.network.parameterCount) parameters), \(classifierSteps) Adam steps of \(batchSize) on the training split, lr \(ConditionalDemo.classifierLearningRate), cross-entropy at uniform t; \(f1(classifierSeconds)) s, \(f1(100 * classifierSeconds / max(total, 1e-9))) % of the demo's time | |",
                "| classifier accuracy on the \(heldOutName), t = 0 | \(heldOutAtZero) | each image as is with timestep 0 (how the samples below are judged); per digit \(heldOutAtZero.perClass); at one uniform t per image: \(String(format: "%.1f %%", 100 * heldOutNoisy.accuracy)) |",
            ] + zip(strengths, rates).map { s, r in
                "| classes.png, \(name(s)): recognised as the requested digit | \(r) | the classifier at t = 0 on the \(requested.count) samples of that panel; per digit \(r.perClass); real held-out digits score \(heldOutAtZero) with this classifier: samples as varied as real handwriting would score about that, and guided samples, more typical than real ones, can score above it |"
            } + [
                "| classes.png sampling | \(requested.count) samples per strength, \(choice), same starts x_T in each panel, \(f1(gridSeconds)) s | |",
            ]).joined(separator: "\n")
        }
        let note = """
        - `classes.png`: one row per digit 0–9 (the digit on the left), \(perClass) samples each, from the EMA weights
          through \(choice), at \(strengths.map(name).joined(separator: " and ")) (classifier-free guidance in the paper's
          convention, Ho & Salimans 2022 eq. 6: ε̃ = (1 + w) ε_c − w ε_u; diffusers' scale s = 1 + w). w = 0 is the
          conditional model alone. Both panels start from the same x_T, so a tile's two versions can be compared.
        """
        return ConditionalResults(reportRows: rows, figureNote: note)
    }
}
