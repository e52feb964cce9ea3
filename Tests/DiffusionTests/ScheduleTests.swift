import TestSupport
import Testing
import Diffusion
import Tensors

@Suite("Schedules and derived tables against the numpy oracle (≤ 4 ULP)")
struct ScheduleTests {
    static let names = ["linear", "quadratic", "warmup10", "warmup50", "constant", "jsd", "cosine", "sigmoid"]

    @Test("every table of every schedule", arguments: names)
    func tables(_ name: String) throws {
        var worst: (UInt64, String) = (0, "")
        for T in [1, 2, 10, 1000] {
            let tables = try DiffusionTables(schedule: BetaSchedule.named(name), timesteps: T)
            for (table, values) in tables.byName {
                let expected = DiffusionFixture.values("schedules/\(name)/T\(T)/\(table)")
                #expect(values.count == expected.count)
                for (i, (a, e)) in zip(values, expected).enumerated() {
                    let d = ulpDistance(a, e)
                    if d > worst.0 { worst = (d, "T\(T)/\(table)[\(i)]: \(a) vs \(e)") }
                    #expect(d <= 4, "\(name) T\(T) \(table)[\(i)]: \(a) vs oracle \(e), \(d) ULP")
                }
            }
        }
        print("schedule \(name): worst \(worst.0) ULP \(worst.1)")
    }

    @Test func defaultScheduleEndpointsAndPosteriorAtZero() throws {
        let t = try DiffusionTables(schedule: .default, timesteps: 1000)
        #expect(t.betas.first == 1e-4 && t.betas.last == 0.02)
        #expect(t.posteriorVariance[0] == 0)
        #expect(t.posteriorLogVarianceClipped[0] == t.posteriorLogVarianceClipped[1])
        #expect(t.alphasCumprodPrev[0] == 1)
    }

    @Test func invalidSchedulesThrowNamingTheValue() {
        expectError(.invalidValue, mentioning: ["'linear'", "got 0"]) {
            _ = try BetaSchedule.linear().betas(timesteps: 0)
        }
        expectError(.invalidValue, mentioning: ["'linear'", "got -3"]) {
            _ = try DiffusionTables(schedule: .linear(), timesteps: -3)
        }
        expectError(.invalidValue, mentioning: ["'constant'", "is 1.5"]) {
            _ = try BetaSchedule.constant(beta: 1.5).betas(timesteps: 4)
        }
        expectError(.invalidValue, mentioning: ["'linear'", "is 0.0"]) {
            _ = try BetaSchedule.linear(start: 0, end: 0.02).betas(timesteps: 4)
        }
        expectError(.invalidValue, mentioning: ["t = 1", "is -0.1"]) {
            _ = try DiffusionTables(betas: [0.1, -0.1])
        }
        #expect(throws: DDPMError.self) { _ = try BetaSchedule.named("exponential") }
    }
}
