// Real handwriting: the UCI optical digits, shipped inside the package (no download at run time).

import Foundation

/// The 1797 handwritten digits of the UCI "Optical Recognition of Handwritten Digits" data set as
/// scikit-learn bundles them (E. Alpaydin and C. Kaynak, UCI Machine Learning Repository,
/// https://doi.org/10.24432/C50P49, licence CC BY 4.0): 8×8 images of 17 grey levels 0–16, labels 0–9.
///
/// The resource `Resources/UCIDigits/digits.bin` (116,805 bytes, written by `Fixtures/make_digits.py`,
/// its SHA-256 in `digits.sha256` beside it) holds the 1797·64 grey levels row-major, then the 1797 labels.
///
/// - **Split** (fixed, the same everywhere): images 0 ..< 1600 in the file's order are the training
///   split, the last 197 (1600 ..< 1797) the held-out test split.
/// - **Values**: grey level g becomes g / 16, so images lie in [0, 1] (0 background, 1 full ink).
/// - **Size 16**: each pixel is repeated into a 2×2 block (nearest-neighbour upsampling ×2), so a 16×16
///   image holds exactly the 8×8 one's values and nothing is interpolated.
public enum UCIDigits {
    public static let count = 1797, side = 8, levels = 16
    /// Images 0 ..< trainingCount are the training split; the rest (197) are held out.
    public static let trainingCount = 1600
    public static var heldOutCount: Int { count - trainingCount }

    public enum Split: String, CaseIterable, Sendable {
        case train, test, all
        /// The images of the split, as indices into the file's order.
        public var indices: Range<Int> {
            switch self {
            case .train: 0..<UCIDigits.trainingCount
            case .test: UCIDigits.trainingCount..<UCIDigits.count
            case .all: 0..<UCIDigits.count
            }
        }
    }

    /// The resource file's bytes, as shipped (checked against `digits.sha256` by the tests).
    public static func resourceBytes() throws -> [UInt8] {
        guard let url = Bundle.module.url(forResource: "digits", withExtension: "bin", subdirectory: "UCIDigits") else {
            throw DDPMError(.malformedFile, "the UCI digits resource UCIDigits/digits.bin: expected it in the DDPM package's resources, found nothing")
        }
        let data = try Data(contentsOf: url)
        guard data.count == count * side * side + count else {
            throw DDPMError(.malformedFile, "\(url.path): expected \(count * side * side + count) bytes (\(count) 8×8 images and their labels), found \(data.count)")
        }
        return [UInt8](data)
    }

    /// The images of `split` as an N×1×S×S tensor in [0, 1] (S = `size`, 8 or 16) and their labels 0–9.
    public static func load(split: Split = .all, size: Int = 16) throws -> (images: Tensor, labels: [Int]) {
        guard size == 8 || size == 16 else { throw DDPMError(.invalidValue, "digit image size: expected 8 or 16, got \(size)") }
        let bytes = try resourceBytes()
        let pixels = side * side, factor = size / side
        var data = [Double](repeating: 0, count: split.indices.count * size * size)
        var labels: [Int] = []
        for (n, i) in split.indices.enumerated() {
            for y in 0..<size { for x in 0..<size {
                data[n * size * size + y * size + x] = Double(bytes[i * pixels + (y / factor) * side + x / factor]) / Double(levels)
            } }
            labels.append(Int(bytes[count * pixels + i]))
        }
        return (Tensor(shape: [split.indices.count, 1, size, size], data: data), labels)
    }
}
