// Issue 19: the held-out bound (bits/dim) of `BoundEvaluator` against two data sets whose answer is known in
// closed form, derived here by hand from the paper (β → ᾱ by plain loops; nothing from the library's tables);
// and the nearest-neighbour search against a brute-force loop.

import Foundation
import TestSupport
import Testing
import DDPM

/// The linear schedule written out: β_t = start + (end − start)·t/(T − 1) (numpy's linspace), ᾱ_t = Π_{s ≤ t} (1 − β_s),
/// the posterior variance β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) and coefficient coef1_t = β_t √ᾱ_{t−1}/(1 − ᾱ_t), with ᾱ_{−1} = 1.
struct HandSchedule {
    let T: Int, beta: [Double], alphaBar: [Double]
    init(start: Double, end: Double, T: Int) {
        self.T = T
        beta = (0..<T).map { start + (end - start) * Double($0) / Double(T - 1) }
        var a: [Double] = [], p = 1.0
        for b in beta { p *= 1 - b; a.append(p) }
        alphaBar = a
    }
    func alphaBarPrev(_ t: Int) -> Double { t == 0 ? 1 : alphaBar[t - 1] }
    func posteriorVariance(_ t: Int) -> Double { beta[t] * (1 - alphaBarPrev(t)) / (1 - alphaBar[t]) }
    func coef1(_ t: Int) -> Double { beta[t] * alphaBarPrev(t).squareRoot() / (1 - alphaBar[t]) }
    /// The prior per dimension in nats for a pixel value x: KL(𝒩(√ᾱ x, 1 − ᾱ) ‖ 𝒩(0, 1)) = ½(−1 − log(1 − ᾱ) + (1 − ᾱ) + ᾱ x²), ᾱ = ᾱ_{T−1}.
    func prior(meanSquare: Double) -> Double {
        let a = alphaBar[T - 1]
        return 0.5 * (-1 - Foundation.log(1 - a) + (1 - a) + a * meanSquare)
    }
}

func phi(_ x: Double) -> Double { 0.5 * (1 + erf(x / 2.0.squareRoot())) }

@Suite("Issue 19: the held-out bound in closed form")
struct EvaluationTests {
    static let schedule = (start: 0.002, end: 0.4, T: 50)   // the demo's rule β × 1000/T at T = 50
    static func diffusion() throws -> GaussianDiffusion {
        try GaussianDiffusion(schedule: .linear(start: schedule.start, end: schedule.end), timesteps: schedule.T)
    }
    static let hand = HandSchedule(start: schedule.start, end: schedule.end, T: schedule.T)
    /// The discretised decoder's half bin width on [0, 1] (256 levels).
    static let delta = 1.0 / 255 / 2

    @Test("one data point and the exact predictor: every L_t (t ≥ 1) is 0; the bound is the decoder plus the prior, in closed form")
    func onePointDataSet() throws {
        let d = try Self.diffusion(), h = Self.hand
        // One image (1×4×4) with both edge levels and interior levels of the 256-level lattice, repeated 3 times.
        let c = [0, 255, 1, 128, 17, 254, 64, 200, 3, 99, 180, 230, 45, 12, 77, 160].map { Double($0) / 255 }
        let images = Tensor(shape: [3, 1, 4, 4], data: c + c + c)
        // The exact ε: x_t = √ᾱ c + √(1 − ᾱ) ε, so ε = (x_t − √ᾱ c)/√(1 − ᾱ).
        let r = try BoundEvaluator.evaluate(d, images: images, clip: false, seed: 5, batchSize: 2) { x, t in
            let a = h.alphaBar[t[0]]
            return Tensor(shape: x.shape, data: x.data.enumerated().map { (i, v) in (v - a.squareRoot() * c[i % 16]) / (1 - a).squareRoot() })
        }
        // Decoder at t = 0: mean x̂_0 = c exactly (coef1_0 = 1, coef2_0 = 0), σ² = β̃_1 (improved-diffusion's clipped
        // log-variance at t = 0). Interior pixels: −log(Φ(δ/σ) − Φ(−δ/σ)); the edge levels 0 and 255: −log Φ(δ/σ).
        let sigma = h.posteriorVariance(1).squareRoot()
        let decoder = c.map { v in v == 0 || v == 1 ? -Foundation.log(phi(Self.delta / sigma)) : -Foundation.log(phi(Self.delta / sigma) - phi(-Self.delta / sigma)) }
            .reduce(0, +) / 16 / Foundation.log(2.0)
        let prior = h.prior(meanSquare: c.map { $0 * $0 }.reduce(0, +) / 16) / Foundation.log(2.0)
        let kl = r.perStep.dropFirst().map(abs).max()!
        print(String(format: "one point: bound %.12f bits/dim, closed form %.12f (decoder %.12f + prior %.6e); largest |L_t|, t ≥ 1: %.2e; evaluation's L_0 %.12f, prior %.6e; standard error %.2e",
                     r.mean, decoder + prior, decoder, prior, kl, r.perStep[0], r.prior, r.standardError))
        #expect(kl < 1e-12)
        #expect(abs(r.perStep[0] - decoder) < 1e-10)
        #expect(abs(r.prior - prior) < 1e-12)
        #expect(abs(r.mean - (decoder + prior)) < 1e-10)
        #expect(r.perImage.allSatisfy { abs($0 - r.mean) < 1e-12 } && r.standardError < 1e-12)
    }

    @Test("Gaussian data 𝒩(μ, s²I) and the exact ε-predictor: the bound's closed form within the evaluation's standard error")
    func gaussianDataSet() throws {
        let d = try Self.diffusion(), h = Self.hand
        let (mu, s, n) = (0.5, 0.1, 400)
        var g = RandomGenerator(seed: 42)
        let images = Tensor(shape: [n, 1, 8, 8], data: g.normals(n * 64).map { mu + s * $0 })
        // x_t ~ 𝒩(√ᾱ μ, ᾱ s² + 1 − ᾱ), and the exact predictor is E[ε | x_t] = √(1 − ᾱ)(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ).
        let r = try BoundEvaluator.evaluate(d, images: images, clip: false, seed: 9, batchSize: 64) { x, t in
            let a = h.alphaBar[t[0]]
            return Tensor(shape: x.shape, data: x.data.map { (1 - a).squareRoot() * ($0 - a.squareRoot() * mu) / (a * s * s + 1 - a) })
        }
        // With it x̂_0 = E[x_0 | x_t], and x_0 − x̂_0 ~ 𝒩(0, v_t), v_t = s²(1 − ᾱ_t)/(ᾱ_t s² + 1 − ᾱ_t).
        func v(_ t: Int) -> Double { s * s * (1 - h.alphaBar[t]) / (h.alphaBar[t] * s * s + 1 - h.alphaBar[t]) }
        // t ≥ 1: both Gaussians have variance β̃_t and means coef1_t·(x_0 − x̂_0) apart: E[KL] = coef1_t² v_t/(2β̃_t) per dimension.
        let kl = (1..<h.T).map { t in h.coef1(t) * h.coef1(t) * v(t) / (2 * h.posteriorVariance(t)) }
        // t = 0: E over u = x_0 − x̂_0 ~ 𝒩(0, v_0) of −log(Φ((u + δ)/σ) − Φ((u − δ)/σ)), σ² = β̃_1, by the trapezoid rule
        // on ±12 standard deviations, the bin's probability floored at 1e-12 as in Ho et al.'s code (the edge bins are
        // ignored: P(x_0 ∉ [δ, 1 − δ]) = 6e-7 per pixel).
        let sigma = h.posteriorVariance(1).squareRoot(), sd = v(0).squareRoot()
        let m = 24_000, du = 24 * sd / Double(m)
        var decoder = 0.0
        for k in 0...m {
            let u = -12 * sd + Double(k) * du
            let density = Foundation.exp(-u * u / (2 * v(0))) / (2 * Double.pi * v(0)).squareRoot()
            decoder += (k == 0 || k == m ? 0.5 : 1) * du * density * -Foundation.log(max(phi((u + Self.delta) / sigma) - phi((u - Self.delta) / sigma), 1e-12))
        }
        let prior = h.prior(meanSquare: mu * mu + s * s)
        let ln2 = Foundation.log(2.0)
        let expected = (kl.reduce(0, +) + decoder + prior) / ln2
        let z = (r.mean - expected) / r.standardError
        print(String(format: "Gaussian data (μ %.2f, s %.2f, %d images of 64 pixels, T %d): bound %.5f ± %.5f bits/dim, closed form %.5f (Σ KL %.5f + decoder %.5f + prior %.3e); difference %.2f standard errors; L_0 %.5f vs %.5f",
                     mu, s, n, h.T, r.mean, r.standardError, expected, kl.reduce(0, +) / ln2, decoder / ln2, prior / ln2, z, r.perStep[0], decoder / ln2))
        #expect(abs(z) < 3)
        #expect(abs(r.prior - prior / ln2) < 10 * r.standardError)
        #expect(r.standardError > 0 && r.standardError < 0.05 * expected)
    }

    @Test("an image's bound does not depend on the batch size (its own noise generator, seed + n)")
    func batchSizeDoesNotMatter() throws {
        let d = try Self.diffusion()
        var g = RandomGenerator(seed: 1)
        let images = Tensor.randomUniform([5, 1, 4, 4], generator: &g)
        let model: (Tensor, [Int]) throws -> Tensor = { x, t in 0.3 * x + Double(t[0]) * 0.01 }
        let one = try BoundEvaluator.evaluate(d, images: images, clip: false, seed: 3, batchSize: 1, model: model)
        let all = try BoundEvaluator.evaluate(d, images: images, clip: false, seed: 3, batchSize: 5, model: model)
        let two = try BoundEvaluator.evaluate(d, images: images, clip: false, seed: 3, batchSize: 2, model: model)
        print("per image (batches of 1): \(one.perImage)")
        #expect(one.perImage == all.perImage && two.perImage == all.perImage)
        let later = try BoundEvaluator.evaluate(d, images: images.slice(axis: 0, start: 0, length: 3), clip: false, seed: 3, batchSize: 2, model: model)
        #expect(Array(all.perImage[0..<3]) == later.perImage)
    }

    @Test("nearest neighbours: the product-based search equals a brute-force loop, ties and exact copies included")
    func nearestNeighbourAgainstBruteForce() throws {
        var g = RandomGenerator(seed: 8)
        let refs = Tensor.randomUniform([40, 1, 4, 4], generator: &g)
        // Queries: fresh images, an exact copy of reference 17, and a copy of reference 3 shifted by 1e-9 in one pixel.
        var near = Array(refs.data[(3 * 16)..<(4 * 16)]); near[5] += 1e-9
        let queries = Tensor(shape: [12, 1, 4, 4], data: Tensor.randomUniform([10, 1, 4, 4], generator: &g).data + Array(refs.data[(17 * 16)..<(18 * 16)]) + near)
        let fast = NearestNeighbour.search(queries: queries, references: refs), slow = NearestNeighbour.bruteForce(queries: queries, references: refs)
        // The brute force written here once more, independently of both.
        var loop: [(Int, Double)] = []
        for i in 0..<12 {
            var best = (0, Double.infinity)
            for j in 0..<40 {
                var sum = 0.0
                for k in 0..<16 { sum += (queries.data[i * 16 + k] - refs.data[j * 16 + k]) * (queries.data[i * 16 + k] - refs.data[j * 16 + k]) }
                if sum < best.1 { best = (j, sum) }
            }
            loop.append((best.0, best.1.squareRoot()))
        }
        print("nearest: \(fast.index), distances \(fast.distance.map { String(format: "%.3g", $0) })")
        #expect(fast.index == loop.map(\.0) && slow.index == loop.map(\.0))
        #expect(fast.distance == loop.map(\.1) && slow.distance == loop.map(\.1))
        #expect(fast.index[10] == 17 && fast.distance[10] == 0 && fast.index[11] == 3 && abs(fast.distance[11] - 1e-9) < 1e-15)
    }
}

@Suite("Issue 19: ddpm evaluate")
struct EvaluateCommandTests {
    @Test("ddpm evaluate prints its cost first, the bound with its standard error, and writes the report and figure; bad options are one error: line")
    func evaluateCommand() throws {
        let dir = scratchFolder()
        let checkpoint = try makeCheckpoint(dir)
        let data = dir + "/data.h5"
        let r = try runDDPM(["evaluate", "--checkpoint", checkpoint, "--data", data, "--images", "3", "--batch-size", "2", "--out", dir + "/e.md", "--figure", dir + "/e.svg"])
        #expect(r.status == 0, "\(r.stderr)")
        print(r.stdout)
        let cost = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(cost.contains("3 images × T = 10 steps = 30 network evaluations"), "\(cost)")
        #expect(r.stdout.contains("bits/dim (mean ± standard error over 3 images)") && r.stdout.contains("all zeros"))
        let report = try String(contentsOfFile: dir + "/e.md", encoding: .utf8), svg = try String(contentsOfFile: dir + "/e.svg", encoding: .utf8)
        #expect(report.contains("bound: ") && svg.hasPrefix("<svg") && svg.contains("polyline"))
        try expectUserError(["evaluate", "--checkpoint", checkpoint, "--data", data, "--images", "1000"], "--images 1000: expected at most the")
        try expectUserError(["evaluate", "--checkpoint", checkpoint, "--data", data, "--batch-size", "0"], "--batch-size: expected a positive number, got 0")
        try expectUserError(["evaluate", "--checkpoint", checkpoint, "--data", data, "--out", dir + "/e.md"], "exists")
    }
}
