// swift-tools-version:6.0
// DDPM reference implementation: float64, literate, verified against independent fixtures.
import PackageDescription

let package = Package(
    name: "DDPM",
    products: [
        // Users `import DDPM` and get tensors, the U-Net, the diffusion equations and the seed's API.
        .library(name: "DDPM", targets: ["DDPM"]),
        .executable(name: "ddpm", targets: ["DDPMCommand"]),
        // The README's library example (`swift run ddpm-example`), built and run by the tests.
        .executable(name: "ddpm-example", targets: ["DDPMExample"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation --target DDPM` (build-time plugin only; nothing links it).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // C edges: only the wrappers below import these.
        // CBLAS is a small C target, not a link-time dependency: it reads CPUID and dlopen()s OpenBLAS
        // after choosing its kernel set (see Sources/Kernels/BLASLibrary.swift). OpenBLAS is needed
        // at run time only (Debian/Ubuntu: libopenblas0).
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("dl")]),
        // Vector kernels in C (e^x, SiLU, lane sums, the group-normalisation passes), fast in debug builds too.
        .target(name: "CKernels", linkerSettings: [.linkedLibrary("m")]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),

        // The one error story: `DDPMError` (a kind for programs, a message for people) and `UserFacingError`.
        .target(name: "Errors"),
        // The one way to write a file: atomic temporary + rename, links and modes kept, checks before work.
        .target(name: "FileOutput", dependencies: ["Errors"]),
        // Matrix products, convolution lowering, vector e^x, sums and group normalisation, the worker pool: fast paths plus plain-loop references.
        .target(name: "Kernels", dependencies: ["CBLAS", "CKernels"]),
        // Float64 tensors, reverse-mode derivatives, random numbers, the gradient checker.
        .target(name: "Tensors", dependencies: ["Kernels", "Errors"]),
        // HDF5 files: datasets, groups, attributes, atomic writes. Knows nothing of tensors.
        .target(name: "HDF5", dependencies: ["CHDF5", "Errors", "FileOutput"]),
        // Parameters in HDF5 by their state-dict names (weights of any ParameterContainer).
        .target(name: "TensorIO", dependencies: ["Tensors", "HDF5"]),
        // The equations of Ho et al. 2020; takes any noise predictor.
        .target(name: "Diffusion", dependencies: ["Tensors"]),
        // The seed's U-Net; knows nothing of schedules.
        .target(name: "UNet", dependencies: ["Tensors"]),
        // The seed's DDPM API, weights and golden files in HDF5, training, PNG output.
        // Its one resource: the UCI optical digits (Resources/UCIDigits, CC BY 4.0; Fixtures/make_digits.py).
        .target(name: "DDPM", dependencies: ["Kernels", "Tensors", "Diffusion", "UNet", "HDF5", "TensorIO", "CPNG", "FileOutput"],
                resources: [.copy("Resources/UCIDigits")]),
        // The `ddpm` command only wires the parts together.
        .executableTarget(name: "DDPMCommand", dependencies: [
            "DDPM", "FileOutput",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The README's "Using the library" example, word for word (Tests/DDPMTests/ExampleTests checks both).
        .executableTarget(name: "DDPMExample", dependencies: ["DDPM"], path: "Examples/Quickstart"),

        // Shared test helpers: fixture paths, temporary folders, expectations. Computes no expected value.
        .target(name: "TestSupport", dependencies: ["Tensors", "HDF5"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "Kernels", "TestSupport"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5", "TestSupport"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Tensors", "HDF5", "TestSupport"]),
        .testTarget(name: "UNetTests", dependencies: ["UNet", "Diffusion", "Tensors", "TensorIO", "HDF5", "TestSupport"]),
        .testTarget(name: "DDPMTests", dependencies: ["DDPM", "DDPMCommand", "DDPMExample", "FileOutput", "TestSupport"]),
        // The Notes' quoted numbers against the fixtures (the drift check).
        .testTarget(name: "NotesTests", dependencies: ["HDF5"]),
    ],
    swiftLanguageModes: [.v6]
)
