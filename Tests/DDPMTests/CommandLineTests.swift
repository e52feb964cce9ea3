import Foundation
import TestSupport
import Testing
import DDPM

/// The `ddpm` executable that `swift test` built (the test target depends on it).
func ddpmExecutable() throws -> URL {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [".build/debug/ddpm", ".build/release/ddpm"].map { root.appendingPathComponent($0).path }
    guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw DDPMError(.invalidConfiguration, "no ddpm executable in \(candidates): build it first")
    }
    return URL(fileURLWithPath: binary)
}

/// Runs the `ddpm` executable (or `executable`, e.g. prlimit running it) and waits for it.
func runDDPM(_ arguments: [String], executable: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = Process()
    p.executableURL = try executable.map { URL(fileURLWithPath: $0) } ?? ddpmExecutable()
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Expects a failure: non-zero status and exactly one stderr line starting with `error:` that contains `text`.
func expectUserError(_ arguments: [String], _ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let r = try runDDPM(arguments)
    let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
    #expect(r.status != 0, "exit status 0 for \(arguments)", sourceLocation: sourceLocation)
    #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && r.stderr.contains(text),
            "stderr for \(arguments): \(r.stderr)", sourceLocation: sourceLocation)
}

@Suite("The ddpm command's errors: one `error:` line, non-zero status, nothing left at --out")
struct CommandLineTests {
    @Test func missingFile() throws {
        let dir = scratchFolder()
        try expectUserError(["train", "--data", dir + "/absent.h5", "--out", dir + "/c.h5", "--preset", "golden"], "no such file")
        try expectUserError(["golden", "check", dir + "/absent.h5"], "no such file")
        #expect(!FileManager.default.fileExists(atPath: dir + "/c.h5"))
    }

    @Test func wrongSchema() throws {
        let dir = scratchFolder()
        try HDF5Writer.write(to: dir + "/x.h5") { w in try w.setAttribute("format", "something-else"); try w.setAttribute("version", Int64(1)) }
        try expectUserError(["golden", "check", dir + "/x.h5"], "attribute 'format' is 'something-else', expected 'ddpm-golden'")
        try expectUserError(["sample", "--checkpoint", dir + "/x.h5", "--out", dir + "/s.png"], "expected 'ddpm-checkpoint'")
        #expect(!FileManager.default.fileExists(atPath: dir + "/s.png"))
    }

    @Test func wrongShapeOrDtype() throws {
        let dir = scratchFolder()
        try HDF5Writer.write(to: dir + "/d.h5") { try $0.write([Double](repeating: 0, count: 8 * 8), shape: [1, 1, 8, 8], to: "/images") }
        try expectUserError(["train", "--data", dir + "/d.h5", "--out", dir + "/c.h5", "--preset", "golden"], "expected shape [N, 1, 16, 16] with N ≥ 1, found [1, 1, 8, 8]")
        try HDF5Writer.write(to: dir + "/i.h5") { try $0.write([Int64](repeating: 0, count: 256), shape: [1, 1, 16, 16], to: "/images") }
        try expectUserError(["train", "--data", dir + "/i.h5", "--out", dir + "/c.h5", "--preset", "golden"], "expected float64, float32 or uint8 images, found int64")
        #expect(!FileManager.default.fileExists(atPath: dir + "/c.h5"))
    }

    @Test func nonFiniteData() throws {
        let dir = scratchFolder()
        var v = [Double](repeating: 0.5, count: 256); v[17] = .infinity
        try HDF5Writer.write(to: dir + "/n.h5") { try $0.write(v, shape: [1, 1, 16, 16], to: "/images") }
        try expectUserError(["train", "--data", dir + "/n.h5", "--out", dir + "/c.h5", "--preset", "golden"], "value inf at element 17 is not finite")
    }

    @Test func unknownPreset() throws {
        try expectUserError(["golden", "export", "--out", scratchFolder() + "/g.h5", "--preset", "huge"], "preset 'huge': unknown")
        try expectUserError(["params", "--preset", "huge"], "preset 'huge': unknown")
    }

    @Test func nonPositiveCounts() throws {
        let dir = scratchFolder()
        try expectUserError(["golden", "export", "--out", dir + "/g.h5", "--batch-size", "0"], "--batch-size: expected a positive number, got 0")
        try expectUserError(["demo", "--out", dir + "/demo", "--train-steps", "0"], "--train-steps: expected a positive number, got 0")
        try expectUserError(["params", "--channels", "0"], "channels: expected a positive number, got 0")
        #expect(!FileManager.default.fileExists(atPath: dir + "/g.h5") && !FileManager.default.fileExists(atPath: dir + "/demo"))
    }

    @Test func existingOutputSurvivesAFailedRun() throws {
        let dir = scratchFolder(), out = dir + "/keep.h5"
        try "precious".write(toFile: out, atomically: true, encoding: .utf8)
        try expectUserError(["train", "--data", dir + "/absent.h5", "--out", out, "--preset", "golden", "--force"], "no such file")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "precious")
    }

    @Test func goldenRoundTripThroughTheCommand() throws {
        let dir = scratchFolder()
        let export = try runDDPM(["golden", "export", "--out", dir + "/g.h5", "--preset", "golden"])
        #expect(export.status == 0, "\(export.stderr)")
        let check = try runDDPM(["golden", "check", dir + "/g.h5"])
        // every output the schema defines plus one gradient per parameter tensor of the golden preset
        let expected = GoldenFile.outputNames.count + (try UNet(Presets.network("golden")).namedParameters().count)
        #expect(check.status == 0 && check.stdout.contains("\(expected) passed, 0 failed"), "\(check.stdout)\(check.stderr)")
    }

    @Test func paramsEndsWithTheDocumentedTotal() throws {
        let r = try runDDPM(["params", "--channels", "1"])
        #expect(r.status == 0 && r.stdout.hasSuffix("total 20907649\n"))
    }
}
