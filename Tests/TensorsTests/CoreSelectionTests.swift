// The choice of OpenBLAS kernel set: the pure feature → core rule, the fallback test, and that the
// loaded library runs the core that was requested.
import Foundation
import Testing
import Kernels

@Suite("OpenBLAS core selection")
struct CoreSelectionTests {
    static let avx512: Set<CPUFeature> = [.sse3, .avx, .fma, .avx2, .avx512f, .avx512dq, .avx512cd, .avx512bw, .avx512vl]
    static let avx2: Set<CPUFeature> = [.sse3, .avx, .fma, .avx2]

    @Test func avx512PicksSkylakeX() {
        #expect(OpenBLASCore.preferred(for: Self.avx512) == "SkylakeX")
        #expect(OpenBLASCore.preferred(for: Self.avx512.union([.avx512bf16])) == "SkylakeX")
    }

    @Test func avx2WithFMAPicksHaswell() {
        #expect(OpenBLASCore.preferred(for: Self.avx2) == "Haswell")
        // AVX-512 foundation alone (Knights Landing style, no BW/VL) is not enough for SkylakeX kernels.
        #expect(OpenBLASCore.preferred(for: Self.avx2.union([.avx512f, .avx512cd])) == "Haswell")
    }

    @Test func narrowerCPUsAreLeftToOpenBLAS() {
        #expect(OpenBLASCore.preferred(for: []) == nil)                       // non-x86 or very old
        #expect(OpenBLASCore.preferred(for: [.sse3]) == nil)
        #expect(OpenBLASCore.preferred(for: [.sse3, .avx]) == nil)            // Sandy Bridge
        #expect(OpenBLASCore.preferred(for: [.sse3, .avx, .avx2]) == nil)     // AVX2 without FMA
    }

    @Test func fallbackDetection() {
        #expect(OpenBLASCore.isFallback(core: "Prescott", for: Self.avx512))
        #expect(OpenBLASCore.isFallback(core: "Sandybridge", for: Self.avx2))
        #expect(OpenBLASCore.isFallback(core: "Haswell", for: Self.avx512))
        #expect(!OpenBLASCore.isFallback(core: "SkylakeX", for: Self.avx512))
        #expect(!OpenBLASCore.isFallback(core: "cooperlake", for: Self.avx512))  // case as OpenBLAS prints it varies
        #expect(!OpenBLASCore.isFallback(core: "Zen", for: Self.avx2))
        #expect(!OpenBLASCore.isFallback(core: "Prescott", for: [.sse3]))
        #expect(!OpenBLASCore.isFallback(core: "NeoverseN1", for: []))           // a core this table does not know
    }

    /// CPUID as read by the C shim against the kernel's own reading in /proc/cpuinfo (Linux x86 only).
    @Test func cpuidAgreesWithProcCpuinfo() throws {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(line.split(separator: ":")[1].split(separator: " ").map(String.init))
        let cpu = CPUDescription.current()
        // /proc/cpuinfo calls SSE3 "pni" and bfloat16 "avx512_bf16".
        let names: [CPUFeature: String] = [.sse3: "pni", .avx: "avx", .fma: "fma", .avx2: "avx2", .avx512f: "avx512f",
                                           .avx512dq: "avx512dq", .avx512cd: "avx512cd", .avx512bw: "avx512bw",
                                           .avx512vl: "avx512vl", .avx512bf16: "avx512_bf16"]
        for (feature, name) in names {
            #expect(cpu.features.contains(feature) == flags.contains(name), "\(feature): CPUID \(cpu.features.contains(feature)), /proc/cpuinfo \(flags.contains(name))")
        }
        print("cpu: \(cpu.summary)")
    }

    /// The mechanism itself: the core OpenBLAS reports is the one requested before it was loaded.
    @Test func loadedLibraryRunsTheRequestedCore() {
        let blas = BLASLibrary.shared
        print("blas: \(blas.configuration) core \(blas.core), requested \(blas.requestedCore ?? "nothing"), user \(blas.userCoreType ?? "unset")")
        #expect(!blas.path.isEmpty)
        if let requested = blas.requestedCore, !blas.configuration.isEmpty {
            #expect(blas.core.lowercased() == requested.lowercased(), "requested \(requested), OpenBLAS runs \(blas.core)")
            #expect(!blas.isFallback)
        }
    }
}
