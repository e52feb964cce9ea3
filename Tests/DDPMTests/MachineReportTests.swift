import Testing
import DDPM

/// `ddpm bench`'s machine lines (`Machine.report`): a port comparing its speed with ours needs to know which
/// convolution path ran, so the report says whether the direct 3×3 kernels are on and, when off, why.
@Suite("Machine report: which convolution kernels run")
struct MachineReportTests {
    @Test("the report names the BLAS core and whether the direct 3×3 kernels run, with the reason when they do not")
    func directKernelLine() {
        let lines = Machine.report().lines
        #expect(lines.contains { $0.hasPrefix("blas core: ") }, "no blas core line in \(lines)")
        let direct = lines.filter { $0.hasPrefix("direct 3×3 kernels: ") }
        #expect(direct.count == 1, "expected one direct-kernel line, found \(direct)")
        #if DEBUG
        // Debug builds never run them (C without optimisation is slower than OpenBLAS), on any CPU.
        #expect(direct.first?.hasPrefix("direct 3×3 kernels: off (") == true, "\(direct)")
        #expect(direct.first.map { $0.contains("debug build") || $0.contains("no AVX-512") } == true, "\(direct)")
        #endif
    }
}
