import Foundation
import TestSupport
import Testing
import HDF5

/// The repository's `Fixtures/` folder, found from this source file's path.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures").path

func temporaryFolder() -> String { scratchFolder("ddpm-hdf5") }

/// Runs `body` and returns the HDF5Error it throws (recording an issue if it throws none).
func hdf5Error(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> HDF5Error? {
    do { try body() } catch let e as HDF5Error { return e } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation); return nil
    }
    Issue.record("expected an HDF5Error, none was thrown", sourceLocation: sourceLocation)
    return nil
}

@Suite("HDF5 round trips")
struct HDF5RoundTripTests {
    @Test func everyKindRoundTrips() throws {
        let dir = temporaryFolder(), path = dir + "/round.h5"
        let cube = (0..<24).map { Double($0) * 0.1 - 1 }
        try HDF5Writer.write(to: path) { w in
            try w.write(cube, shape: [2, 3, 4], to: "/a/b/cube")
            try w.write([Int64.min, -1, 0, Int64.max], shape: [4], to: "/ints")
            try w.write([3.25], shape: [], to: "/scalar")
            try w.write([Int64(7)], shape: [], to: "/int_scalar")
            try w.write([UInt8(0), 200, 255], shape: [3], to: "/bytes")
            try w.write([Float(0.1), -2], shape: [2], to: "/single")
            try w.write([Double](), shape: [0, 3], to: "/empty")
            try w.createGroup("/config")
            try w.setAttribute("format", "ddpm-golden")
            try w.setAttribute("version", Int64(1))
            try w.setAttribute("beta_end", 0.02, on: "/config")
            try w.setAttribute("channel_mults", [Int64(1), 2, 2], on: "/config")
            try w.setAttribute("name", "β schedule — ünïcode", on: "/config")
        }
        let f = try HDF5File(path: path)
        let c = try f.readDoubles("/a/b/cube", expectedShape: [2, 3, 4])
        #expect(c.values == cube && c.shape == [2, 3, 4])
        #expect(try f.readInt64s("/ints").values == [Int64.min, -1, 0, Int64.max])
        let s = try f.readDoubles("/scalar")
        #expect(s.shape == [] && s.values == [3.25])
        #expect(try f.readInt64s("/int_scalar").values == [7])
        #expect(try f.readDoubles("/bytes").values == [0, 200, 255])
        #expect(try f.readDoubles("/single").values == [Double(Float(0.1)), -2])
        #expect(try f.readDoubles("/empty").shape == [0, 3])
        #expect(try f.elementType(of: "/single") == "float32" && f.elementType(of: "/bytes") == "uint8")
        #expect(try f.stringAttribute("format") == "ddpm-golden")
        #expect(try f.int64Attribute("version") == 1)
        #expect(try f.doubleAttribute("beta_end", of: "/config") == 0.02)
        #expect(try f.int64ArrayAttribute("channel_mults", of: "/config") == [1, 2, 2])
        #expect(try f.stringAttribute("name", of: "/config") == "β schedule — ünïcode")
        #expect(try f.members() == ["a", "bytes", "config", "empty", "int_scalar", "ints", "scalar", "single"])
        #expect(try f.members(ofGroup: "/a/b") == ["cube"])
        #expect(try f.kind(of: "/a") == .group && f.kind(of: "/ints") == .dataset)
        #expect(try f.attributeNames(of: "/config") == ["beta_end", "channel_mults", "name"])
        #expect(f.exists("/a/b/cube") && !f.exists("/a/x/cube"))
    }

    @Test func readsTheH5pyWrittenFixture() throws {
        let f = try HDF5File(path: fixtures + "/h5py-sample.h5")
        #expect(try f.stringAttribute("title") == "ddpm fixture — ünïcode")
        #expect(try f.stringAttribute("fixed") == "fixed-len")
        #expect(try f.int64Attribute("count") == 42)
        #expect(try f.int64Attribute("small_int") == -7)
        #expect(try f.doubleAttribute("scale") == 0.125)
        #expect(try f.int64ArrayAttribute("sizes") == [1, 2, 3])
        let m = try f.readDoubles("matrix")
        #expect(m.shape == [2, 3] && m.values == [0, 0.25, 0.5, 0.75, 1, 1.25])
        #expect(try f.readDoubles("single").values == [0.5, -1.25, 3.0])
        #expect(try f.readInt64s("ints").values == [-3, 0, 5, 1 << 40])
        #expect(try f.readDoubles("bytes").values == [0, 127, 255])
        #expect(try f.readDoubles("scalar").shape == [])
        #expect(try f.readDoubles("group/nested/cube").values == (0..<24).map(Double.init))
        #expect(try f.stringAttribute("note", of: "/group/nested") == "inner")
        #expect(try f.members() == ["bytes", "group", "ints", "matrix", "scalar", "single", "text"])
    }
}

@Suite("HDF5 errors name the file, the object, what was expected and what was found")
struct HDF5ErrorTests {
    let sample = fixtures + "/h5py-sample.h5"

    @Test func noSuchFile() {
        let e = hdf5Error { _ = try HDF5File(path: "/nonexistent/x.h5") }
        #expect(e?.kind == .noSuchFile && e!.description.contains("/nonexistent/x.h5") && e!.description.contains("no such file"))
    }

    @Test func notAnHDF5File() throws {
        let path = temporaryFolder() + "/plain.h5"
        try "hello".write(toFile: path, atomically: true, encoding: .utf8)
        let e = hdf5Error { _ = try HDF5File(path: path) }
        #expect(e?.kind == .notHDF5 && e!.description.contains("not an HDF5 file"))
    }

    @Test func noSuchDatasetOrAttribute() throws {
        let f = try HDF5File(path: sample)
        let d = hdf5Error { _ = try f.readDoubles("/group/missing") }
        #expect(d?.kind == .noSuchObject && d!.description.contains("'/group/missing'"))
        let a = hdf5Error { _ = try f.int64Attribute("absent") }
        #expect(a?.kind == .noSuchAttribute && a!.description.contains("'absent'"))
    }

    @Test func wrongClassOfData() throws {
        let f = try HDF5File(path: sample)
        let text = hdf5Error { _ = try f.readDoubles("text") }
        #expect(text?.kind == .wrongClass && text!.description.contains("found string"), "\(String(describing: text))")
        let floatAsInt = hdf5Error { _ = try f.readInt64s("matrix") }
        #expect(floatAsInt?.kind == .wrongClass && floatAsInt!.description.contains("expected integer data, found float64"))
        let groupAsData = hdf5Error { _ = try f.readDoubles("group") }
        #expect(groupAsData?.kind == .wrongClass && groupAsData!.description.contains("found a group"))
        let stringAsInt = hdf5Error { _ = try f.int64Attribute("title") }
        #expect(stringAsInt?.kind == .wrongClass)
        let intAsString = hdf5Error { _ = try f.stringAttribute("count") }
        #expect(intAsString?.kind == .wrongClass && intAsString!.description.contains("expected a string, found int64"))
    }

    @Test func wrongRankOrShape() throws {
        let f = try HDF5File(path: sample)
        let rank = hdf5Error { _ = try f.readDoubles("matrix", expectedShape: [6]) }
        #expect(rank?.kind == .wrongShape && rank!.description.contains("expected rank 1 [6], found rank 2 [2, 3]"))
        let shape = hdf5Error { _ = try f.readDoubles("matrix", expectedShape: [3, 2]) }
        #expect(shape?.kind == .wrongShape && shape!.description.contains("expected shape [3, 2], found [2, 3]"))
        #expect(try f.readDoubles("matrix", expectedShape: [-1, 3]).shape == [2, 3])
    }

    /// Issue 25: a shape check that accepted a dataset larger (or smaller) than expected along some axis
    /// would pass every other test here, which use only a transposed shape. Every combination of smaller,
    /// equal and larger extents over the three axes of a [2, 3, 4] dataset, and of a wildcard (−1) per axis,
    /// with both readers: accepted exactly when every axis is equal or a wildcard.
    @Test func everyAxisLargerSmallerOrEqual() throws {
        let path = temporaryFolder() + "/shape.h5", stored = [2, 3, 4]
        try HDF5Writer.write(to: path) { w in
            try w.write((0..<24).map(Double.init), shape: stored, to: "/d")
            try w.write((0..<24).map(Int64.init), shape: stored, to: "/i")
        }
        let f = try HDF5File(path: path)
        var accepted = 0, refused = 0
        for code in 0..<(4 * 4 * 4) {
            // per axis: 0 smaller, 1 equal, 2 larger, 3 wildcard
            let relation = [code % 4, code / 4 % 4, code / 16]
            let expected = zip(stored, relation).map { n, r in [n - 1, n, n + 1, -1][r] }
            let shouldAccept = relation.allSatisfy { $0 == 1 || $0 == 3 }
            for (reader, read) in [("readDoubles", { try f.readDoubles("/d", expectedShape: expected).shape }),
                                   ("readInt64s", { try f.readInt64s("/i", expectedShape: expected).shape })] {
                if shouldAccept {
                    #expect(try read() == stored, "\(reader) expected \(expected)")
                    accepted += 1
                } else {
                    let e = hdf5Error { _ = try read() }
                    #expect(e?.kind == .wrongShape && e!.description.contains("expected shape \(expected), found [2, 3, 4]"),
                            "\(reader) expected \(expected): \(String(describing: e))")
                    refused += 1
                }
            }
        }
        print("shape check: \(accepted) accepted, \(refused) refused")
        #expect(accepted == 2 * 8 && refused == 2 * 56)
        // a rank that differs by one, either way, and a zero extent against a non-zero one
        #expect(hdf5Error { _ = try f.readDoubles("/d", expectedShape: [2, 3, 4, 1]) }?.kind == .wrongShape)
        #expect(hdf5Error { _ = try f.readDoubles("/d", expectedShape: [6, 4]) }?.kind == .wrongShape)
        #expect(hdf5Error { _ = try f.readDoubles("/d", expectedShape: [0, 3, 4]) }?.kind == .wrongShape)
    }

    @Test func failedWriteLeavesExistingDestinationIntact() throws {
        let dir = temporaryFolder(), path = dir + "/keep.h5"
        try HDF5Writer.write(to: path) { try $0.write([1.0, 2, 3], shape: [3], to: "/v") }
        struct Interrupted: Error {}
        #expect(throws: Interrupted.self) {
            try HDF5Writer.write(to: path) { w in
                try w.write([9.0, 9], shape: [2], to: "/v")
                throw Interrupted()
            }
        }
        // A write that fails inside HDF5 (the same dataset twice) also leaves it intact.
        let dup = hdf5Error { try HDF5Writer.write(to: path) { w in
            try w.write([1.0], shape: [1], to: "/d"); try w.write([2.0], shape: [1], to: "/d")
        } }
        #expect(dup?.kind == .writeFailed && dup!.description.contains("'/d'"))
        #expect(try HDF5File(path: path).readDoubles("/v").values == [1, 2, 3])
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["keep.h5"])
    }

    @Test func writeIntoMissingFolderFails() {
        let e = hdf5Error { try HDF5Writer.write(to: "/nonexistent-folder/x.h5") { _ in } }
        #expect(e?.kind == .writeFailed && e!.description.contains("does not exist"))
    }

    /// Issue 13, item 10: objects carry no modification times, so the same contents written in different
    /// seconds give the same bytes (HDF5 stores object times by default).
    @Test func sameContentsGiveTheSameBytesWhenWrittenLater() throws {
        let dir = temporaryFolder()
        func write(_ name: String) throws -> Data {
            try HDF5Writer.write(to: dir + "/" + name) { w in
                try w.write([1.0, 2, 3], shape: [3], to: "/group/v")
                try w.reserve(shape: [4, 2], to: "/reserved")
                try w.setAttribute("format", "x")
            }
            return try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        // The two writes must fall in different seconds of the clock (HDF5's object times have one-second
        // resolution): wait for the clock to pass the second in which the first write ended, an observable
        // state, rather than sleeping a fixed duration.
        let a = try write("a.h5")
        let firstEnded = time(nil)
        while time(nil) == firstEnded { usleep(10_000) }
        let secondStarted = time(nil)
        let b = try write("b.h5")
        #expect(secondStarted > firstEnded)
        #expect(a == b, "\(a.count) and \(b.count) bytes; first difference at \(zip(a, b).enumerated().first { $1.0 != $1.1 }?.offset ?? -1)")
    }
}
