// swift-tools-version:6.0
// DDPM reference implementation: float64, literate, verified against independent fixtures.
import PackageDescription

let package = Package(
    name: "DDPM",
    products: [
        // Users `import DDPM` and get tensors, the U-Net, the diffusion equations and the seed's API.
        .library(name: "DDPM", targets: ["DDPM"]),
        .executable(name: "ddpm", targets: ["DDPMCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C edges: only the wrappers below import these.
        // CBLAS is a small C target, not a link-time dependency: it reads CPUID and dlopen()s OpenBLAS
        // after choosing its kernel set (see Sources/Kernels/BLASLibrary.swift). OpenBLAS is needed
        // at run time only (Debian/Ubuntu: libopenblas0).
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),

        // Matrix products and convolution lowering: BLAS path plus plain-loop references.
        .target(name: "Kernels", dependencies: ["CBLAS"]),
        // Float64 tensors, reverse-mode derivatives, random numbers, the gradient checker.
        .target(name: "Tensors", dependencies: ["Kernels"]),
        // HDF5 files: datasets, groups, attributes, atomic writes. Knows nothing of tensors.
        .target(name: "HDF5", dependencies: ["CHDF5"]),
        // The equations of Ho et al. 2020; takes any noise predictor.
        .target(name: "Diffusion", dependencies: ["Tensors"]),
        // The seed's U-Net; knows nothing of schedules.
        .target(name: "UNet", dependencies: ["Tensors"]),
        // The seed's DDPM API, weights and golden files in HDF5, training, PNG output.
        .target(name: "DDPM", dependencies: ["Tensors", "Diffusion", "UNet", "HDF5", "CPNG"]),
        // The `ddpm` command only wires the parts together.
        .executableTarget(name: "DDPMCommand", dependencies: [
            "DDPM", "Kernels",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "Kernels"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5"],
                    resources: []),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Tensors", "HDF5"]),
        .testTarget(name: "UNetTests", dependencies: ["UNet", "Tensors", "DDPM", "HDF5"]),
        .testTarget(name: "DDPMTests", dependencies: ["DDPM", "DDPMCommand"]),
    ],
    swiftLanguageModes: [.v5]
)
