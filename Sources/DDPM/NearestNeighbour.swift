// The memorisation check: each sample's nearest training image.

import Foundation
import Kernels

/// Nearest neighbours by Euclidean distance between whole images (all C·H·W values).
public enum NearestNeighbour {
    /// For each query image (Q×C×H×W), the index of the nearest reference image (R×C×H×W) and the distance
    ///
    ///     d(q, r) = ‖q − r‖₂ = √(Σ_i (q_i − r_i)²)
    ///
    /// The candidates come from ‖q‖² + ‖r‖² − 2 q·r with the cross terms as one matrix product (Q×D times
    /// D×R through `cblas_dgemm`); that form loses digits to cancellation, so every reference within its
    /// rounding error (10⁻¹⁰ (‖q‖² + max ‖r‖²)) of the best is measured again by the plain sum, and the
    /// smallest of those wins (ties to the lowest index). Result: exactly ``bruteForce(queries:references:)``,
    /// the plain loop it is tested against, at the cost of one product.
    public static func search(queries: Tensor, references: Tensor) -> (index: [Int], distance: [Double]) {
        let (q, r, d) = dimensions(queries, references)
        let cross = Gemm.product(GemmShape(m: q, n: r, k: d, transposeB: .transposed), queries.data, references.data)
        let qn = (0..<q).map { i in squaredNorm(queries.data[(i * d)..<((i + 1) * d)]) }
        let rn = (0..<r).map { j in squaredNorm(references.data[(j * d)..<((j + 1) * d)]) }
        let rmax = rn.max() ?? 0
        var index = [Int](repeating: 0, count: q), distance = [Double](repeating: 0, count: q)
        for i in 0..<q {
            let s = (0..<r).map { j in qn[i] + rn[j] - 2 * cross[i * r + j] }
            let slack = 1e-10 * (qn[i] + rmax) + Double.leastNormalMagnitude
            let best = s.min()!
            var exact = Double.infinity, at = 0
            for j in 0..<r where s[j] <= best + slack {
                let e = squaredDistance(queries.data, i * d, references.data, j * d, d)
                if e < exact { exact = e; at = j }
            }
            index[i] = at; distance[i] = exact.squareRoot()
        }
        return (index, distance)
    }

    /// The reference: a plain loop over every pair, Σ_i (q_i − r_i)² summed left to right.
    public static func bruteForce(queries: Tensor, references: Tensor) -> (index: [Int], distance: [Double]) {
        let (q, r, d) = dimensions(queries, references)
        var index = [Int](repeating: 0, count: q), distance = [Double](repeating: 0, count: q)
        for i in 0..<q {
            var best = Double.infinity, at = 0
            for j in 0..<r {
                let s = squaredDistance(queries.data, i * d, references.data, j * d, d)
                if s < best { best = s; at = j }
            }
            index[i] = at; distance[i] = best.squareRoot()
        }
        return (index, distance)
    }

    static func dimensions(_ queries: Tensor, _ references: Tensor) -> (Int, Int, Int) {
        precondition(queries.rank >= 2 && references.rank >= 2 && queries.shape.dropFirst() == references.shape.dropFirst()
                     && queries.shape[0] > 0 && references.shape[0] > 0,
                     "NearestNeighbour: queries \(queries.shape) and references \(references.shape) must be non-empty with equal image shapes")
        return (queries.shape[0], references.shape[0], queries.count / queries.shape[0])
    }

    /// Σ_k (a[i + k] − b[j + k])² for k = 0 ..< d, left to right.
    static func squaredDistance(_ a: [Double], _ i: Int, _ b: [Double], _ j: Int, _ d: Int) -> Double {
        var s = 0.0
        for k in 0..<d { let e = a[i + k] - b[j + k]; s += e * e }
        return s
    }

    static func squaredNorm(_ v: ArraySlice<Double>) -> Double { v.reduce(0) { $0 + $1 * $1 } }
}
