import Foundation
import TestSupport
import Testing
import DDPM

/// Every configuration exportable: the outputs that dynamic thresholding, zero terminal SNR and the
/// loss-second-moment resampler add, pinned by the numpy fixture (zero SNR) and by their definitions written
/// out here (thresholding's clamp, the resampler's √mean(L²) mix), and the command's schedule options.
@Suite("Golden files: every configuration exportable (thresholding, zero SNR, resampler, β schedules)")
struct GoldenExtrasTests {
    @Test("linear T = 40 with zero terminal SNR: the stored tables are samplers.h5's zero_snr/T40; the file checks")
    func zeroSNR() throws {
        let dir = scratchFolder(), p = dir + "/z.h5"
        var config = microConfiguration()
        config.diffusion = DiffusionConfiguration(schedule: .linear(start: 1e-4, end: 0.02), timesteps: 40)
        try GoldenFile.export(to: p, config: config, seed: 1, batch: 2, extras: GoldenExtras(zeroTerminalSNR: true))
        let f = try HDF5File(path: p), fixture = FixtureFile("samplers.h5")
        fixture.expectMatches(try f.readDoubles("/outputs/zero_snr_alphas_cumprod").values, "zero_snr/T40/alphas_cumprod")
        fixture.expectMatches(try f.readDoubles("/outputs/zero_snr_betas").values, "zero_snr/T40/betas")
        #expect(try GoldenFile.check(path: p, rule: .elementwise(Tolerance(rtol: 1e-10, atol: 1e-12))).passed)
    }

    @Test("dynamic thresholding: s_n ≥ 1, |y| ≤ 1 after, = 1 where clamped; the resampler's p and 1/(T p_t) from the stored history")
    func thresholdAndResampler() throws {
        let dir = scratchFolder(), p = dir + "/t.h5"
        let config = microConfiguration()   // data in [0, 1], T = 20
        try GoldenFile.export(to: p, config: config, seed: 2, batch: 3,
                              extras: GoldenExtras(dynamicThreshold: (0.9, .infinity), timestepSampler: .lossSecondMoment))
        let f = try HDF5File(path: p)
        let x0 = try f.readDoubles("/outputs/pred_x0").values, th = try f.readDoubles("/outputs/thresholded_pred_x0").values
        let s = try f.readDoubles("/outputs/threshold_scale").values
        let per = x0.count / 3
        for n in 0..<3 {
            let y = x0[n * per ..< (n + 1) * per].map { 2 * $0 - 1 }, yt = th[n * per ..< (n + 1) * per].map { 2 * $0 - 1 }
            // By definition: clamp(y, −s, s)/s, so |yt| ≤ 1, and yt = sign(y) where |y| ≥ s.
            let worst = zip(y, yt).map { abs(min(max($0, -s[n]), s[n]) / s[n] - $1) }.max()!
            let above = y.filter { abs($0) > s[n] }.count
            print("sample \(n): s = \(s[n]), \(above) of \(per) values beyond s, worst |definition − stored| \(worst)")
            #expect(s[n] >= 1 && worst < 1e-15 && yt.allSatisfy { abs($0) <= 1 })
            if s[n] > 1 { #expect(Double(above) <= 0.1 * Double(per) + 1) }   // s is the 0.9 quantile of |y|
        }
        let h = try f.readDoubles("/inputs/loss_history")
        #expect(h.shape == [20, 10])
        let w = (0..<20).map { t in (h.values[t * 10 ..< t * 10 + 10].map { $0 * $0 }.reduce(0, +) / 10).squareRoot() }
        let total = w.reduce(0, +)
        let expected = w.map { 0.999 * $0 / total + 0.001 / 20 }
        let probs = try f.readDoubles("/outputs/resampler_probabilities").values
        let tt = try f.readInt64s("/inputs/t").values.map(Int.init)
        let weights = try f.readDoubles("/outputs/resampler_weights").values
        #expect(zip(probs, expected).allSatisfy { abs($0 - $1) <= 1e-15 })
        #expect(zip(weights, tt).allSatisfy { abs($0 - 1 / (20 * expected[$1])) <= 1e-12 * $0 })
        #expect(try GoldenFile.check(path: p, rule: .elementwise(Tolerance(rtol: 1e-10, atol: 1e-12))).passed)
    }

    @Test("golden export takes train's schedule options: --beta-schedule cosine --timesteps 30 is in /config and checks")
    func scheduleOptions() throws {
        let dir = scratchFolder()
        let r = try runDDPM(["golden", "export", "--out", dir + "/c.h5", "--beta-schedule", "cosine", "--timesteps", "30",
                             "--threshold", "dynamic:0.95", "--zero-terminal-snr", "--timestep-sampler", "loss-second-moment"])
        #expect(r.status == 0, "\(r.stderr)")
        let f = try HDF5File(path: dir + "/c.h5")
        #expect(try f.stringAttribute("beta_schedule", of: "/config") == "cosine" && f.int64Attribute("timesteps", of: "/config") == 30)
        #expect(f.exists("/outputs/threshold_scale") && f.exists("/outputs/zero_snr_betas") && f.exists("/outputs/resampler_weights"))
        let c = try runDDPM(["golden", "check", dir + "/c.h5"])
        #expect(c.status == 0, "\(c.stdout)\(c.stderr)")
        try expectUserError(["golden", "export", "--out", dir + "/e.h5", "--threshold", "clip"], "--threshold 'clip': expected dynamic")
    }
}
