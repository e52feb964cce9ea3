// Sums over contiguous memory in eight interleaved lanes. A left-to-right sum is one long chain of
// dependent additions (four cycles each); eight lanes keep the vector units busy. The order of the
// additions differs from the left-to-right sum, so results differ from it in the last bits, never
// by more than the usual rounding bound of a sum.

public enum Sums {
    /// Σ_{i<n} a[i]: lane l sums a[l], a[l+8], …; the lanes are added pairwise, then the tail.
    @inline(__always)
    public static func sum(_ a: UnsafePointer<Double>, _ n: Int) -> Double {
        var lanes = SIMD8<Double>(repeating: 0), i = 0
        while i + 8 <= n { lanes += load(a + i); i += 8 }
        var total = lanes.sum()
        while i < n { total += a[i]; i += 1 }
        return total
    }

    /// Σ_{i<n} (a[i] − c)², in the same lanes as ``sum(_:_:)``.
    @inline(__always)
    public static func squaredDeviations(_ a: UnsafePointer<Double>, _ n: Int, from c: Double) -> Double {
        var lanes = SIMD8<Double>(repeating: 0), i = 0
        let center = SIMD8<Double>(repeating: c)
        while i + 8 <= n { let d = load(a + i) - center; lanes += d * d; i += 8 }
        var total = lanes.sum()
        while i < n { let d = a[i] - c; total += d * d; i += 1 }
        return total
    }

    /// Σ_{i<n} a[i] · (b[i] − c), in the same lanes as ``sum(_:_:)``.
    @inline(__always)
    public static func dotDeviations(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int, from c: Double) -> Double {
        var lanes = SIMD8<Double>(repeating: 0), i = 0
        let center = SIMD8<Double>(repeating: c)
        while i + 8 <= n { lanes += load(a + i) * (load(b + i) - center); i += 8 }
        var total = lanes.sum()
        while i < n { total += a[i] * (b[i] - c); i += 1 }
        return total
    }

    @inline(__always)
    public static func load(_ p: UnsafePointer<Double>) -> SIMD8<Double> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Double>.self)
    }
}
