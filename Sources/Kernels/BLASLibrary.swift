// Which BLAS runs, and with which kernels: OpenBLAS loaded at run time with the right core.
//
// Why at run time. OpenBLAS built with DYNAMIC_ARCH (every distribution's package) picks its kernel
// set ("core") once, in a constructor that runs when the library is loaded, from CPUID — unless the
// environment variable OPENBLAS_CORETYPE names one. A release that predates the CPU does not
// recognise it and silently falls back to its generic SSE3 core, "Prescott". On the Intel Xeon
// family 6 model 207 (AVX-512) with Debian 12's OpenBLAS 0.3.21 that ran DGEMM 2048³ at 7.85 GFLOP/s
// against 141.9 GFLOP/s with OPENBLAS_CORETYPE=SkylakeX (`ddpm bench` of commit be0b449; README,
// "Measured on this machine", the morning's table).
// The core cannot change after loading, so the choice has to be made before: nothing links OpenBLAS
// at load time; the first matrix product reads CPUID, sets OPENBLAS_CORETYPE unless the user has
// set it, then dlopen()s the library and calls it through dlsym (Sources/CBLAS). This serves the
// `ddpm` command, `swift test` and library users alike, with nothing for them to set.
//
// The rule is ``OpenBLASCore/preferred(for:)``; it names only SkylakeX and Haswell, which 0.3.21
// accepts (checked by printing `openblas_get_corename()` after setting OPENBLAS_CORETYPE; note that
// 0.3.21 answers an unknown name such as "SapphireRapids" with "Cooperlake", so a request is always
// checked against the name the library reports: see CoreSelectionTests). The newer Intel and AMD
// cores differ from these two in bfloat16/int8 kernels and blocking, not in the float64 DGEMM kernel.

import CBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A vector-instruction feature of the CPU that decides OpenBLAS's kernel set. Reported only when
/// the operating system also saves the registers it needs (XGETBV).
public enum CPUFeature: String, Sendable, CaseIterable, Comparable {
    case sse3, avx, fma, avx2, avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512bf16
    public static func < (a: CPUFeature, b: CPUFeature) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The processor as CPUID describes it.
public struct CPUDescription: Sendable, Equatable {
    public var vendor: String, brand: String, family: Int, model: Int
    public var features: Set<CPUFeature>

    /// Reads CPUID of the CPU this runs on (empty features on non-x86 machines).
    public static func current() -> CPUDescription {
        var info = ddpm_cpu_info()
        ddpm_cpu_read(&info)
        var f = Set<CPUFeature>()
        let flags: [(Int32, CPUFeature)] = [
            (info.sse3, .sse3), (info.avx, .avx), (info.fma, .fma), (info.avx2, .avx2),
            (info.avx512f, .avx512f), (info.avx512dq, .avx512dq), (info.avx512cd, .avx512cd),
            (info.avx512bw, .avx512bw), (info.avx512vl, .avx512vl), (info.avx512bf16, .avx512bf16),
        ]
        for (bit, feature) in flags where bit != 0 { f.insert(feature) }
        let vendor = withUnsafeBytes(of: info.vendor) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let brand = withUnsafeBytes(of: info.brand) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return CPUDescription(vendor: vendor, brand: brand.trimmingSpaces(), family: Int(info.family),
                              model: Int(info.model), features: f)
    }

    /// "Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207; avx2, avx512f, …)".
    public var summary: String {
        let shown = features.sorted().map(\.rawValue).joined(separator: ", ")
        return "\(brand.isEmpty ? "unknown CPU" : brand) (\(vendor.isEmpty ? "non-x86" : vendor) family \(family) model \(model); \(shown.isEmpty ? "no x86 vector features" : shown))"
    }
}

/// OpenBLAS kernel sets ("cores") by the instruction set they need.
public enum OpenBLASCore {
    /// The instruction-set level of a kernel set or of a CPU; higher is wider.
    public enum Level: Int, Sendable, Comparable {
        case sse = 0, avx = 1, avx2 = 2, avx512 = 3
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    /// The widest level a CPU with these features can run: AVX-512 needs F, DQ, CD, BW and VL (what
    /// OpenBLAS's SkylakeX kernels use), AVX2 needs AVX2 and FMA.
    public static func level(of features: Set<CPUFeature>) -> Level {
        if features.isSuperset(of: [.avx512f, .avx512dq, .avx512cd, .avx512bw, .avx512vl]) { return .avx512 }
        if features.isSuperset(of: [.avx2, .fma]) { return .avx2 }
        if features.contains(.avx) { return .avx }
        return .sse
    }

    /// The core to request for a CPU with `features`, or nil to leave OpenBLAS's own choice:
    ///
    ///     AVX-512 F+DQ+CD+BW+VL → "SkylakeX"   AVX2 + FMA → "Haswell"   otherwise → nil
    ///
    /// Both names are accepted by OpenBLAS 0.3.21 (checked with `openblas_get_corename()` after
    /// setting OPENBLAS_CORETYPE). Newer cores (Cooperlake,
    /// SapphireRapids, Zen) differ from these in bfloat16/int8 or blocking details, not in the
    /// float64 DGEMM kernel this project calls. Below AVX2 OpenBLAS's own CPUID logic is trusted.
    public static func preferred(for features: Set<CPUFeature>) -> String? {
        switch level(of: features) {
        case .avx512: return "SkylakeX"
        case .avx2: return "Haswell"
        case .avx, .sse: return nil
        }
    }

    /// The level a core name needs, or nil for names this table does not know (ARM, POWER, …).
    /// Matching ignores case, as OpenBLAS does.
    public static func level(ofCore name: String) -> Level? {
        let n = name.lowercased()
        if ["skylakex", "cooperlake", "sapphirerapids"].contains(n) { return .avx512 }
        if ["haswell", "zen", "skylake"].contains(n) { return .avx2 }
        if ["sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"].contains(n) { return .avx }
        if ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "opteron", "opteron_sse3",
            "barcelona", "bobcat", "katmai", "coppermine", "northwood", "banias", "athlon", "generic"].contains(n) { return .sse }
        return nil
    }

    /// True when `core` uses a narrower instruction set than the CPU offers (a generic fallback).
    public static func isFallback(core: String, for features: Set<CPUFeature>) -> Bool {
        guard let used = level(ofCore: core) else { return false }
        return used < level(of: features)
    }
}

/// The BLAS library this process uses, loaded on first use.
public struct BLASLibrary: Sendable {
    /// OpenBLAS's configuration string, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH …" ("" for other BLAS).
    public let configuration: String
    /// The file that was loaded.
    public let path: String
    /// The core OpenBLAS reports (`openblas_get_corename()`), "" for other BLAS.
    public let core: String
    /// The core this process requested through OPENBLAS_CORETYPE, nil if it left the choice alone.
    public let requestedCore: String?
    /// OPENBLAS_CORETYPE as the user set it (then it is never changed), nil if unset.
    public let userCoreType: String?
    /// OpenBLAS's worker-thread count.
    public let threads: Int
    /// Whether ``Gemm/blas`` and the convolutions spread their blocks and lanes over the cores
    /// themselves (OpenBLAS then runs one thread). True unless the user set OPENBLAS_NUM_THREADS,
    /// OMP_NUM_THREADS or GOTO_NUM_THREADS (then the same blocks and lanes run one after another,
    /// each product on OpenBLAS's threads) or the machine has one core.
    public let splitsProducts: Bool
    /// The CPU the choice was made for.
    public let cpu: CPUDescription

    /// True when the core is a generic fallback for this CPU (see ``OpenBLASCore/isFallback(core:for:)``).
    public var isFallback: Bool { OpenBLASCore.isFallback(core: core, for: cpu.features) }

    /// The process's library: the first access loads it (Swift runs a `static let` initialiser
    /// exactly once, under a lock), every later access is a read of immutable values.
    public static let shared: BLASLibrary = load()

    /// OPENBLAS_THREAD_TIMEOUT, set for the load unless the user set it. An OpenBLAS worker thread
    /// that finds no work spins, calling sched_yield, for 2^timeout cycles before it sleeps; the
    /// default 28 (≈ 0.1 s) keeps the second core busy in the kernel while our own code runs
    /// between matrix products. 4 (OpenBLAS's minimum, 16 cycles) puts it to sleep at once; waking
    /// it costs one futex call per product. Batch-8 `ddpm bench`, system time / user time: 15.6 %
    /// with 28, 9.0 % with 4 (`/usr/bin/time`, same binary, on a busy machine). It matters only when
    /// OpenBLAS runs its own threads (``splitsProducts`` false).
    static let threadTimeout = "4"

    private static func load() -> BLASLibrary {
        let cpu = CPUDescription.current()
        let user = environment("OPENBLAS_CORETYPE")
        let request = user == nil ? OpenBLASCore.preferred(for: cpu.features) : nil
        // Threads. OpenBLAS's own pool makes the calling thread wait for its workers by spinning in
        // sched_yield, and makes idle workers spin the same way: on a 2-core machine running our
        // elementwise code between products that was a quarter of all samples (perf, batch-8 bench)
        // and the system time of the whole run. So OpenBLAS runs single-threaded and Gemm.blas
        // splits each large product into one block of rows or columns per core (Dispatch threads
        // sleep in the kernel when idle). A thread count the user set is left to OpenBLAS.
        let userThreads = ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"].contains { environment($0) != nil }
        let split = !userThreads && Parallel.cores > 1
        var error = [CChar](repeating: 0, count: 1024)
        let status = ddpm_blas_load(request, threadTimeout, split ? "1" : nil, &error, error.count)
        precondition(status == 0, "BLAS: " + error.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        return BLASLibrary(configuration: String(cString: ddpm_blas_config()), path: String(cString: ddpm_blas_path()),
                           core: String(cString: ddpm_blas_corename()), requestedCore: request, userCoreType: user,
                           threads: Int(ddpm_blas_threads()), splitsProducts: split, cpu: cpu)
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let s = String(cString: value)
        return s.isEmpty ? nil : s
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
