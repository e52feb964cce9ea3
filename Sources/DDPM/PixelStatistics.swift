// Simple statistics for comparing generated images with data (the demo's report).

/// Summary statistics of a set of images with values in [lo, hi].
public struct PixelStatistics: Sendable {
    /// Mean pixel value.
    public var mean: Double
    /// Fraction of pixels above the middle of the range ("ink").
    public var inkFraction: Double
    /// Normalised 10-bin histogram over the range (values clamped into it).
    public var histogram: [Double]
    /// The mean image (C·H·W values).
    public var meanImage: [Double]

    public init(_ images: Tensor, range: ClosedRange<Double>) {
        let n = images.shape[0], per = images.count / max(n, 1)
        let (lo, hi) = (range.lowerBound, range.upperBound)
        var hist = [Double](repeating: 0, count: 10), meanImage = [Double](repeating: 0, count: per)
        var total = 0.0, ink = 0.0
        for (i, v) in images.data.enumerated() {
            let u = min(max((v - lo) / (hi - lo), 0), 1)
            hist[min(Int(u * 10), 9)] += 1
            total += v; if u > 0.5 { ink += 1 }
            meanImage[i % per] += v / Double(n)
        }
        let count = Double(images.count)
        mean = total / count; inkFraction = ink / count; histogram = hist.map { $0 / count }; self.meanImage = meanImage
    }

    /// Total-variation distance between the histograms: ½ Σ |p_i − q_i| ∈ [0, 1].
    public func histogramDistance(to other: PixelStatistics) -> Double {
        0.5 * zip(histogram, other.histogram).reduce(0) { $0 + abs($1.0 - $1.1) }
    }

    /// Root-mean-square difference between the mean images.
    public func meanImageDistance(to other: PixelStatistics) -> Double {
        (zip(meanImage, other.meanImage).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(max(meanImage.count, 1))).squareRoot()
    }
}
