// Image data sets in HDF5: N×C×H×W, stored as float64, float32 or uint8 (uint8 scaled to [0, 1]).
// The shape is checked from the file's metadata, and the memory the values need against what the process
// may use, before any value is read; values outside the model's data range are refused.

import Foundation
import FileOutput
import HDF5

public enum ImageData {
    /// Loads `dataset` (default: `images`, or the file's only root dataset) and checks its shape and values:
    /// the shape (from metadata, before reading), the memory it needs, finiteness, and that every value lies
    /// in `range` (after uint8 scaling).
    public static func load(path: String, dataset: String?, channels: Int, imageSize: Int,
                            range: ClosedRange<Double> = 0...1) throws -> Tensor {
        let file = try HDF5File(path: path)
        let name: String
        if let dataset { name = dataset } else if file.exists("/images") { name = "/images" } else {
            let datasets = try file.members().filter { try file.kind(of: "/" + $0) == .dataset }
            guard datasets.count == 1 else {
                throw DDPMError(.malformedFile, "\(path): no dataset 'images' and \(datasets.count) root datasets (\(datasets.joined(separator: ", "))); name the dataset to use")
            }
            name = "/" + datasets[0]
        }
        guard file.exists(name) else { throw DDPMError(.malformedFile, "\(path): no dataset '\(name)'") }
        let type = try file.elementType(of: name)
        guard ["float64", "float32", "uint8"].contains(type) else {
            throw DDPMError(.malformedFile, "\(path) dataset '\(name)': expected float64, float32 or uint8 images, found \(type)")
        }
        let shape = try file.shape(of: name)
        guard shape.count == 4, shape[0] > 0, shape[1] == channels, shape[2] == imageSize, shape[3] == imageSize else {
            throw DDPMError(.shapeMismatch, "\(path) dataset '\(name)': expected shape [N, \(channels), \(imageSize), \(imageSize)] with N ≥ 1, found \(shape)")
        }
        // The values are held twice while loading (as read, then as the tensor).
        try MemoryBudget.check(bytes: MemoryBudget.bytes(ofDoubles: shape, copies: 2), for: "\(path) dataset '\(name)' of shape \(shape)")
        let a = try file.readDoubles(name)
        if let i = a.values.firstIndex(where: { !$0.isFinite }) {
            throw DDPMError(.invalidData, "\(path) dataset '\(name)': value \(a.values[i]) at element \(i) is not finite (NaN or infinite)")
        }
        let values = type == "uint8" ? a.values.map { $0 / 255 } : a.values
        if let i = values.firstIndex(where: { !range.contains($0) }) {
            let lo = values.min()!, hi = values.max()!
            throw DDPMError(.invalidData, "\(path) dataset '\(name)': value \(values[i]) at element \(i) is outside the data range [\(range.lowerBound), \(range.upperBound)] (the data span [\(lo), \(hi)]); rescale the images to the data range")
        }
        if name == "/images", file.exists("/labels") { _ = try labels(file, path: path, count: shape[0]) }
        return Tensor(shape: a.shape, data: values)
    }

    /// The optional `labels` beside `images`: N integers in 0 ..< K (K = the largest label + 1), one per
    /// image; nil when the file has none. Commands that do not use labels still check them (through
    /// ``load(path:dataset:channels:imageSize:range:)``), so a malformed `labels` dataset is always an error.
    public static func loadLabels(path: String, count: Int) throws -> [Int]? {
        let file = try HDF5File(path: path)
        return file.exists("/labels") ? try labels(file, path: path, count: count) : nil
    }

    static func labels(_ file: HDF5File, path: String, count: Int) throws -> [Int] {
        let type = try file.elementType(of: "/labels"), shape = try file.shape(of: "/labels")
        guard type.hasPrefix("int") || type.hasPrefix("uint") else {
            throw DDPMError(.malformedFile, "\(path) dataset 'labels': expected integers (one class per image), found \(type)")
        }
        guard shape == [count] else {
            throw DDPMError(.shapeMismatch, "\(path) dataset 'labels': expected shape [\(count)] (one label per image of 'images'), found \(shape)")
        }
        let values = try file.readInt64s("/labels").values
        if let i = values.firstIndex(where: { $0 < 0 }) {
            throw DDPMError(.invalidData, "\(path) dataset 'labels': expected classes 0 ..< K, found \(values[i]) at element \(i)")
        }
        return values.map { Int($0) }
    }
}

/// How much memory a request may take: the smallest of the machine's physical memory, the process's
/// address-space limit (`ulimit -v`) and its control group's limit (`memory.max`). Requests are estimated
/// and checked against it before anything is allocated.
public enum MemoryBudget {
    /// The limit in bytes.
    public static var limit: Double {
        var bound = Double(ProcessInfo.processInfo.physicalMemory)
        var r = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &r) == 0, r.rlim_cur != rlim_t.max { bound = min(bound, Double(r.rlim_cur)) }
        if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
           let v = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) { bound = min(bound, v) }
        return bound
    }

    /// Bytes of `copies` float64 arrays of `shape` (as a Double, so that absurd shapes cannot overflow).
    public static func bytes(ofDoubles shape: [Int], copies: Int = 1) -> Double {
        shape.reduce(8.0 * Double(copies)) { $0 * Double($1) }
    }

    /// A size in bytes for people: "6.10 GiB".
    public static func describe(_ bytes: Double) -> String { OutputFile.describe(bytes: bytes) }

    /// Throws `.exceedsMemory` when `bytes` exceed ``limit``, naming the request, the estimate and the limit.
    public static func check(bytes: Double, for what: String) throws {
        let l = limit
        guard bytes <= l else {
            throw DDPMError(.exceedsMemory, "\(what): needs about \(describe(bytes)), more than the \(describe(l)) this process may use")
        }
    }
}

/// A procedurally drawn data set of digits (no download): glyphs of a 5×7 bitmap font, drawn at twice
/// their size (10×14) in a 16×16 grey image at a random position, with strokes one or two pixels wider
/// at random. Values are 0 (background) and 1 (ink).
public enum DigitImages {
    static let font: [[String]] = [
        ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
        ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
        ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
        ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
        ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
        ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
        ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
        ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
        ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
        ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
    ]

    /// `count` images of shape 1×16×16, as one N×1×16×16 tensor; the digit of each is `labels[i]`.
    public static func make(count: Int, generator: inout RandomGenerator) -> (images: Tensor, labels: [Int]) {
        let side = 16
        var data = [Double](repeating: 0, count: count * side * side)
        var labels: [Int] = []
        for n in 0..<count {
            let digit = generator.nextInt(below: 10)
            labels.append(digit)
            let thick = generator.nextInt(below: 2)  // extra stroke width in pixels
            let width = 10 + thick, height = 14 + thick
            let ox = generator.nextInt(below: side - width + 1), oy = generator.nextInt(below: side - height + 1)
            for (r, row) in font[digit].enumerated() {
                for (c, bit) in row.enumerated() where bit == "1" {
                    for dy in 0..<(2 + thick) { for dx in 0..<(2 + thick) {
                        let y = oy + 2 * r + dy, x = ox + 2 * c + dx
                        data[n * side * side + y * side + x] = 1
                    } }
                }
            }
        }
        return (Tensor(shape: [count, 1, side, side], data: data), labels)
    }
}
