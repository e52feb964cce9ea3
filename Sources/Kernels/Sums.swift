// Sums over contiguous memory in four interleaved lanes (the C kernels in Sources/CKernels). A
// left-to-right sum is one long chain of dependent additions (four cycles each); four lanes keep
// the vector unit busy. The order of the additions differs from the left-to-right sum, so results
// differ from it in the last bits, never by more than the usual rounding bound of a sum.

import CKernels

public enum Sums {
    /// Σ_{i<n} a[i]: lane l sums a[l], a[l+4], …; the lanes are added as (l0 + l1) + (l2 + l3), then the tail.
    @inline(__always)
    public static func sum(_ a: UnsafePointer<Double>, _ n: Int) -> Double { ddpm_sum(a, n) }

    /// Σ_{i<n} (a[i] − c)², in the same lanes as ``sum(_:_:)``.
    @inline(__always)
    public static func squaredDeviations(_ a: UnsafePointer<Double>, _ n: Int, from c: Double) -> Double {
        ddpm_squared_deviations(a, n, c)
    }

    /// Σ_{i<n} a[i] · (b[i] − c), in the same lanes as ``sum(_:_:)``.
    @inline(__always)
    public static func dotDeviations(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int, from c: Double) -> Double {
        ddpm_dot_deviations(a, b, n, c)
    }

    /// `out[j] = sum(a + j·stride, n)` for `j < count`: the same bits as ``sum(_:_:)`` one at a time, four sums
    /// interleaved (a lane sum is one chain of dependent additions; four chains keep the adder busy).
    @inline(__always)
    public static func sums(_ a: UnsafePointer<Double>, stride: Int, count: Int, length n: Int, into out: UnsafeMutablePointer<Double>) {
        ddpm_sums(a, stride, count, n, out)
    }

    /// `out[j] = squaredDeviations(a + j·stride, n, from: centres[j])` for `j < count`, the same bits, four at a time.
    @inline(__always)
    public static func squaredDeviations(_ a: UnsafePointer<Double>, stride: Int, count: Int, length n: Int,
                                         from centres: UnsafePointer<Double>, into out: UnsafeMutablePointer<Double>) {
        ddpm_squared_deviations_each(a, stride, count, n, centres, out)
    }
}
