import Foundation
import TestSupport
import Testing
import DDPM

/// The repository's root (three folders above this file).
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The README's example is `Examples/Quickstart/main.swift` word for word, and it builds and runs.
@Suite("The README's library example")
struct ExampleTests {
    /// The Swift code blocks of the README's "Using the library" section, in order.
    static func readmeBlocks() throws -> [String] {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "\n## Using the library\n") else { return [] }
        let section = readme[start.upperBound...].prefix { _ in true }
        let end = section.range(of: "\n## ")?.lowerBound ?? section.endIndex
        var blocks: [String] = [], current: [Substring]? = nil
        for line in section[..<end].split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```swift" { current = [] }
            else if current != nil, line == "```" { blocks.append(current!.joined(separator: "\n") + "\n"); current = nil }
            else if current != nil { current!.append(line) }
        }
        return blocks
    }

    @Test("the README's example block is Examples/Quickstart/main.swift, character for character")
    func readmeShowsTheExampleFile() throws {
        let file = try String(contentsOf: repositoryRoot.appendingPathComponent("Examples/Quickstart/main.swift"), encoding: .utf8)
        let blocks = try Self.readmeBlocks()
        #expect(blocks.count == 2, "the section shows the Package.swift lines and the example: found \(blocks.count) Swift blocks")
        let example = try #require(blocks.last)
        if example != file {
            let a = example.split(separator: "\n", omittingEmptySubsequences: false), b = file.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }
            Issue.record("README block and main.swift differ: \(a.count) vs \(b.count) lines; first different line \(first.map { "\($0.offset + 1): '\($0.element.0)' vs '\($0.element.1)'" } ?? "(one is a prefix of the other)")")
        }
        let packageLines = try #require(blocks.first)
        #expect(packageLines.contains(".package(path:") && packageLines.contains(".product(name: \"DDPM\", package:"), "\(packageLines)")
    }

    @Test("the example runs: four training steps, ten DDIM steps reported, a 4-image grid written")
    func exampleRuns() throws {
        let binary = ["debug", "release"].map { repositoryRoot.appendingPathComponent(".build/\($0)/ddpm-example").path }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        let path = try #require(binary, "no ddpm-example executable: swift test builds it (the test target depends on it)")
        let dir = scratchFolder()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print("ddpm-example printed:\n\(o)\(e)")
        #expect(p.terminationStatus == 0, "\(e)")
        let lines = o.split(separator: "\n").map(String.init)
        #expect(lines.first == "network: \(try UNet(NetworkPreset.demo.configuration).parameterCount) parameters")
        #expect(lines.filter { $0.hasPrefix("step ") && $0.contains(": loss ") }.count == 4)
        // DDIM on T = 100 with 10 steps (ddim10: stride 10) visits t = 90, 80, …, 0.
        let ddim = lines.filter { $0.hasPrefix("DDIM step ") }
        #expect(ddim == (1...10).map { "DDIM step \($0) of 10 (t = \(100 - 10 * $0))" }, "\(ddim)")
        #expect(lines.contains { $0.hasPrefix("samples: shape [4, 1, 16, 16]") })
        let png = try PNGImage.read(path: dir + "/samples.png")
        #expect(png.width > 16 * 2 && png.height > 16 * 2, "\(png.width)×\(png.height)")
    }
}
