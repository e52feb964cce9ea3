import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm data`: data sets shipped with the package, written as ordinary data files.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data",
        abstract: "Write a data set shipped with the package as an ordinary data file (for --data).",
        subcommands: [Digits.self])

    /// `ddpm data digits`: the UCI optical digits (`UCIDigits`).
    struct Digits: FileCommand {
        static let configuration = CommandConfiguration(commandName: "digits",
            abstract: "Write the UCI handwritten digits (1797 real 8×8 digits, CC BY 4.0) as an HDF5 data file.",
            discussion: """
            The test part of the UCI "Optical Recognition of Handwritten Digits" data set as scikit-learn bundles it \
            (E. Alpaydin and C. Kaynak, UCI Machine Learning Repository, https://doi.org/10.24432/C50P49, licence \
            CC BY 4.0), shipped inside the package: 1797 images of 17 grey levels 0–16 and their labels 0–9. \
            The split is fixed: images 0–1599 (in the data set's order) are 'train', the last 197 (1600–1796) \
            'test'. Grey level g is written as g/16, so images lie in [0, 1]; --image-size 16 repeats every pixel in \
            a 2×2 block (nearest-neighbour upsampling ×2). The file holds 'images' (N×1×S×S float64) and \
            'labels' (N int64), with attributes naming the source, licence, split and size.
            """)

        @Option(help: "The HDF5 file to write.") var out: String
        @Option(help: "Which images: train (0–1599), test (the last 197) or all.") var split: String = "train"
        @Option(name: .customLong("image-size"), parsing: .unconditional, help: "Image side length: 8 (as recorded) or 16 (each pixel repeated 2×2).") var size: Int = 16
        @Flag(help: "Replace --out if it exists.") var force = false

        func checkOptions() throws {
            _ = try chosenSplit()
            guard size == 8 || size == 16 else { throw DDPMError(.invalidValue, "--image-size: expected 8 or 16, got \(size)") }
        }

        func chosenSplit() throws -> UCIDigits.Split {
            guard let s = UCIDigits.Split(rawValue: split) else {
                throw DDPMError(.unknownName, "--split: expected train, test or all, got '\(split)'")
            }
            return s
        }

        func files() throws -> OutputPlan {
            var plan = OutputPlan()
            let n = try chosenSplit().indices.count
            plan.output("--out", out, mayReplace: force, bytes: Double(n * (8 * size * size + 8)) + 4096)
            return plan
        }

        func footprint() throws -> Footprint {
            var f = Footprint()
            f.add("--split \(split) --image-size \(size) images", doubles: [try chosenSplit().indices.count, 1, size, size], copies: 2)
            return f
        }

        func work() throws {
            let split = try chosenSplit()
            let (images, labels) = try UCIDigits.load(split: split, size: size)
            try HDF5Writer.write(to: out) { w in
                try w.write(images.data, shape: images.shape, to: "/images")
                try w.write(labels.map { Int64($0) }, shape: [labels.count], to: "/labels")
                try w.setAttribute("source", "UCI Optical Recognition of Handwritten Digits, test part as bundled by scikit-learn (E. Alpaydin and C. Kaynak, UCI Machine Learning Repository, https://doi.org/10.24432/C50P49)", on: "/")
                try w.setAttribute("licence", "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)", on: "/")
                try w.setAttribute("split", "\(split.rawValue): images \(split.indices.lowerBound)-\(split.indices.upperBound - 1) of 0-\(UCIDigits.count - 1)", on: "/")
                try w.setAttribute("values", "grey level g (0-16) as g/16" + (size == 16 ? "; 16x16 by repeating each pixel 2x2 (nearest-neighbour upsampling)" : ""), on: "/")
            }
            announce("wrote \(out): \(images.shape[0]) digits (\(split.rawValue) split), 1×\(size)×\(size) in [0, 1], with labels")
        }
    }
}
