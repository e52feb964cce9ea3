// The forward-process figure of Notes/03 (`ForwardProcessFigure`, written by `ddpm schedules --forward-out`):
// its cells against the numpy fixture `equations/q_sample` of Fixtures/diffusion.h5, and its layout.

import DDPM
import Foundation
import Testing
import TestSupport

@Suite("The forward-process figure (Notes/03)")
struct ForwardProcessFigureTests {
    let f = FixtureFile("diffusion.h5")

    @Test("cell (n, 1 + n) is the fixture's q_sample of sample n at its t; cell (n, 0) is x_0 itself")
    func cellsAreEquationFour() throws {
        let x0 = f.tensor("equations/inputs/x0"), noise = f.tensor("equations/inputs/noise"), t = f.ints("equations/inputs/t")
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1)
        let grid = try ForwardProcessFigure.states(of: x0, at: t, noise: noise, diffusion: d)
        let n = x0.shape[0], per = 1 + t.count
        #expect(grid.shape == [n * per] + Array(x0.shape.dropFirst()))
        // The fixture's sample n is at t[n]: its row's column 1 + n must be q_sample[n].
        let diagonal = Tensor.concatenate((0..<n).map { grid.slice(axis: 0, start: $0 * per + 1 + $0, length: 1) }, axis: 0)
        f.expectMatches(diagonal, "equations/q_sample")
        let firsts = Tensor.concatenate((0..<n).map { grid.slice(axis: 0, start: $0 * per, length: 1) }, axis: 0)
        #expect(firsts.data == x0.data)
        expectError(.shapeMismatch, mentioning: ["noise of shape [1, 2, 3, 3]"]) {
            try ForwardProcessFigure.states(of: x0, at: t, noise: noise.slice(axis: 0, start: 0, length: 1), diffusion: d)
        }
    }

    @Test("the PNG: three rows of x_0 and seven x_t, 3× scale with 1-pixel gaps (393 × 148 pixels)")
    func layout() throws {
        let path = scratchFolder() + "/forward.png"
        try ForwardProcessFigure.write(to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // IHDR: width and height, big-endian, at bytes 16 and 20. Width 8 · (16·3 + 1) + 1, height 3 · 49 + 1.
        let width = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = bytes[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) && width == 393 && height == 148, "\(width) × \(height)")
    }
}
