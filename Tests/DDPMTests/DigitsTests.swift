// Issue 19: the UCI digits resource, its split and upsampling, `ddpm data digits`, and `labels` in data files.
// Expected values come from Fixtures/make_digits.py (digits.sha256 beside the resource), never from the Swift code.

import Foundation
import TestSupport
import Testing
import DDPM

/// The generator's record beside the resource: the checksum and the comment lines with its own counts.
struct DigitsRecord {
    let lines: [String]
    init() throws {
        let path = repositoryRoot + "/Sources/DDPM/Resources/UCIDigits/digits.sha256"
        lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }
    var sha256: String { String(lines[0].split(separator: " ")[0]) }
    /// The integers after the last ':' of the comment line starting with `prefix`.
    func integers(_ prefix: String) -> [Int] {
        let line = lines.first { $0.hasPrefix(prefix) }!
        return line.split(separator: ":").last!.split(separator: " ").compactMap { Int($0) }
    }
    func integers(_ prefix: String, after marker: String) -> [Int] {
        let line = lines.first { $0.hasPrefix(prefix) }!
        let part = line.components(separatedBy: marker)[1].split(separator: ";")[0]
        return part.split(separator: " ").compactMap { Int($0) }
    }
}

/// SHA-256 by coreutils' `sha256sum` (independent of our code) of `bytes`.
func sha256sum(_ bytes: [UInt8]) throws -> String {
    let path = scratchFolder() + "/bytes"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let p = Process(), out = Pipe()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum"); p.arguments = [path]; p.standardOutput = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return String(text.split(separator: " ")[0])
}

@Suite("Issue 19: the UCI digits")
struct DigitsTests {
    @Test("the resource's bytes match the SHA-256 its generator recorded")
    func resourceMatchesTheGeneratorsChecksum() throws {
        let bytes = try UCIDigits.resourceBytes(), record = try DigitsRecord()
        let sum = try sha256sum(bytes)
        print("digits.bin: \(bytes.count) bytes, sha256 \(sum), recorded \(record.sha256)")
        #expect(bytes.count == 1797 * 64 + 1797)
        #expect(sum == record.sha256)
    }

    @Test("labels and images agree in count; the generator's counts, sum and first values")
    func countsAndValues() throws {
        let record = try DigitsRecord()
        let (images, labels) = try UCIDigits.load(split: .all, size: 8)
        #expect(images.shape == [1797, 1, 8, 8] && labels.count == 1797)
        let perDigit = (0..<10).map { d in labels.filter { $0 == d }.count }
        print("labels per digit \(perDigit), generator \(record.integers("# labels 0-9, all"))")
        #expect(perDigit == record.integers("# labels 0-9, all"))
        // Values are g/16: 16 × the sum is the generator's integer sum of grey levels.
        let sum = images.data.reduce(0, +) * 16
        #expect(sum == Double(record.integers("# sum of all grey levels", after: "levels: ")[0]), "sum \(sum)")
        #expect(images.data[0..<8].map { $0 * 16 } == record.integers("# sum", after: "row 0: ").map(Double.init))
        #expect(Array(labels[0..<10]) == record.integers("# sum", after: "labels 0-9: "))
        #expect(images.data.allSatisfy { (0...1).contains($0) && ($0 * 16).rounded() == $0 * 16 })
    }

    @Test("the split is the documented one: images 0–1599 train, the last 197 held out; 16×16 repeats each pixel 2×2")
    func splitAndUpsampling() throws {
        let record = try DigitsRecord()
        let all = try UCIDigits.load(split: .all, size: 8), train = try UCIDigits.load(split: .train, size: 8), test = try UCIDigits.load(split: .test, size: 8)
        #expect(train.images.shape[0] == 1600 && test.images.shape[0] == 197)
        #expect(train.images.data == Array(all.images.data[0..<(1600 * 64)]) && test.images.data == Array(all.images.data[(1600 * 64)...]))
        #expect(train.labels == Array(all.labels[0..<1600]) && test.labels == Array(all.labels[1600...]))
        let heldPerDigit = (0..<10).map { d in test.labels.filter { $0 == d }.count }
        #expect(heldPerDigit == record.integers("# labels 0-9, held out"), "\(heldPerDigit)")
        let big = try UCIDigits.load(split: .test, size: 16).images
        var worst = 0.0
        for n in 0..<197 { for y in 0..<16 { for x in 0..<16 {
            worst = max(worst, abs(big.data[n * 256 + y * 16 + x] - test.images.data[n * 64 + (y / 2) * 8 + x / 2]))
        } } }
        print("16×16 against the 8×8 pixel (y/2, x/2): worst difference \(worst)")
        #expect(big.shape == [197, 1, 16, 16] && worst == 0)
        expectError(.invalidValue, mentioning: ["8 or 16", "12"]) { try UCIDigits.load(size: 12) }
    }

    @Test("`ddpm data digits` writes images in [0, 1] with labels; bad options are one error: line")
    func dataCommand() throws {
        let dir = scratchFolder()
        let r = try runDDPM(["data", "digits", "--split", "test", "--out", dir + "/test.h5"])
        #expect(r.status == 0, "\(r.stderr)")
        let file = try HDF5File(path: dir + "/test.h5")
        let images = try file.readDoubles("/images"), labels = try file.readInt64s("/labels")
        let expected = try UCIDigits.load(split: .test)
        #expect(images.shape == [197, 1, 16, 16] && images.values == expected.images.data)
        #expect(labels.shape == [197] && labels.values.map { Int($0) } == expected.labels)
        #expect(try ImageData.loadLabels(path: dir + "/test.h5", count: 197) == expected.labels)
        let small = try runDDPM(["data", "digits", "--split", "all", "--image-size", "8", "--out", dir + "/all8.h5"])
        #expect(small.status == 0, "\(small.stderr)")
        let smallShape = try HDF5File(path: dir + "/all8.h5").shape(of: "/images")
        #expect(smallShape == [1797, 1, 8, 8])
        try expectUserError(["data", "digits", "--split", "validation", "--out", dir + "/x.h5"], "--split: expected train, test or all, got 'validation'")
        try expectUserError(["data", "digits", "--image-size", "12", "--out", dir + "/x.h5"], "--image-size: expected 8 or 16, got 12")
        try expectUserError(["data", "digits"], "--out")
        try expectUserError(["data", "digits", "--split", "test", "--out", dir + "/test.h5"], "exists")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.h5"))
    }

    @Test("a data file's labels: ignored when well formed, a clear error when malformed")
    func labelsInDataFiles() throws {
        let dir = scratchFolder()
        let images = [Double](repeating: 0.5, count: 3 * 64)
        func file(_ name: String, _ body: (HDF5Writer) throws -> Void) throws -> String {
            let path = dir + "/" + name
            try HDF5Writer.write(to: path) { w in try w.write(images, shape: [3, 1, 8, 8], to: "/images"); try body(w) }
            return path
        }
        let good = try file("good.h5") { try $0.write([Int64(0), 9, 4], shape: [3], to: "/labels") }
        #expect(try ImageData.load(path: good, dataset: nil, channels: 1, imageSize: 8).shape == [3, 1, 8, 8])
        #expect(try ImageData.loadLabels(path: good, count: 3) == [0, 9, 4])
        let none = try file("none.h5") { _ in }
        #expect(try ImageData.loadLabels(path: none, count: 3) == nil)
        let short = try file("short.h5") { try $0.write([Int64(0), 1], shape: [2], to: "/labels") }
        expectError(.shapeMismatch, mentioning: [short, "labels", "[3]", "[2]"]) { try ImageData.load(path: short, dataset: nil, channels: 1, imageSize: 8) }
        let floats = try file("floats.h5") { try $0.write([0.0, 1.5, 2.0], shape: [3], to: "/labels") }
        expectError(.malformedFile, mentioning: [floats, "labels", "integers", "float64"]) { try ImageData.load(path: floats, dataset: nil, channels: 1, imageSize: 8) }
        let negative = try file("negative.h5") { try $0.write([Int64(0), -1, 2], shape: [3], to: "/labels") }
        expectError(.invalidData, mentioning: [negative, "labels", "-1", "element 1"]) { try ImageData.load(path: negative, dataset: nil, channels: 1, imageSize: 8) }
        // Through a command: one error line naming the file's labels.
        try expectUserError(["train", "--data", short, "--out", dir + "/c.h5", "--train-steps", "1", "--preset", "golden", "--image-size", "8", "--timesteps", "10"], "dataset 'labels'")
    }
}

@Suite("Issue 19: the demo on real digits")
struct DemoDataTests {
    @Test("the demo trains on the UCI training split by default and reports the held-out bound and the memorisation check; procedural digits stay an option")
    func demoDataChoice() throws {
        let dir = scratchFolder()
        let quick = ["--train-steps", "2", "--count", "4", "--timesteps", "10", "--batch-size", "2", "--bound-images", "3"]
        let r = try runDDPM(["demo"] + quick + ["--out", dir + "/uci"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try String(contentsOfFile: dir + "/uci/report.md", encoding: .utf8)
        for text in ["1600 UCI handwritten digits", "197 held-out UCI digits", "held-out bound, trained weights (bits/dim)", "held-out bound, EMA weights (bits/dim)",
                     "first 3 held-out images", "all zeros scores", "nearest training image: mean distance of samples", "4 held-out real digits"] {
            #expect(report.contains(text), "report lacks '\(text)'")
        }
        #expect(r.stderr.contains("3 images × T = 10 steps = 30 network evaluations"), "\(r.stderr)")
        // nearest.png: 4 samples in 2 columns, each row of samples above a row of neighbours: 4 rows of 65 pixels.
        let nearest = try PNGImage.read(path: dir + "/uci/nearest.png")
        #expect(nearest.width == 131 && (nearest.height - 4 * 65 - 1 - 4) % 20 == 0, "\(nearest.width)×\(nearest.height)")
        #expect(try String(contentsOfFile: dir + "/uci/loss.svg", encoding: .utf8).contains("polyline"))
        let p = try runDDPM(["demo", "--digits", "procedural", "--images", "16"] + quick + ["--out", dir + "/procedural"])
        #expect(p.status == 0, "\(p.stderr)")
        #expect(try String(contentsOfFile: dir + "/procedural/report.md", encoding: .utf8).contains("16 procedurally drawn digits"))
        try expectUserError(["demo", "--digits", "mnist", "--out", dir + "/x"], "--digits: expected uci or procedural, got 'mnist'")
        try expectUserError(["demo", "--images", "2000", "--out", dir + "/x"], "--images: expected 1 to 1600 (the UCI training split), got 2000")
        try expectUserError(["demo", "--bound-images", "198", "--out", dir + "/x"], "--bound-images: expected 1 to 197")
    }
}
