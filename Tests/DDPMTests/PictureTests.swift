import Foundation
import TestSupport
import Testing
import DDPM

/// The pictures' layout (sizes worked out by hand from the layout rules in PNGWriter) and their text,
/// read back from the written PNG files.
@Suite("Pictures: upscaled tiles, captions, labels, out-of-range marks")
struct PictureTests {
    /// The number of pixels darker than 64 (any channel) in rows [y0, y1) and columns [x0, x1).
    static func dark(_ p: PNGImage, x: Range<Int>, y: Range<Int>) -> Int {
        var n = 0
        for yy in y { for xx in x where p.pixel(x: xx, y: yy).contains(where: { $0 < 64 }) { n += 1 } }
        return n
    }

    @Test("grid: 5 tiles of 16×16 at the default scale 4 in 3 columns: 3·65 + 1 = 196 by 2·65 + 1 = 131; a caption adds 4 + 20 rows per line")
    func gridSizesAndCaption() throws {
        let dir = scratchFolder()
        let images = Tensor.full([5, 1, 16, 16], 1)  // white tiles: nothing dark but the caption's text
        try PNGWriter.writeGrid(images, range: 0...1, path: dir + "/plain.png")
        let plain = try PNGImage.read(path: dir + "/plain.png")
        #expect((plain.width, plain.height, plain.channels) == (196, 131, 1))
        // A tile's first pixel row and column: gap 1, then 64 upscaled pixels of value 1 (255).
        #expect(plain.pixel(x: 0, y: 0) == [128] && plain.pixel(x: 1, y: 1) == [255] && plain.pixel(x: 64, y: 64) == [255] && plain.pixel(x: 65, y: 65) == [128])
        try PNGWriter.writeGrid(images, range: 0...1, caption: "samples", path: dir + "/captioned.png")
        let captioned = try PNGImage.read(path: dir + "/captioned.png")
        #expect((captioned.width, captioned.height) == (196, 131 + 24))
        let text = Self.dark(captioned, x: 0..<196, y: 0..<24), grid = Self.dark(captioned, x: 0..<196, y: 24..<155)
        print("caption 'samples': \(text) dark pixels in the strip, \(grid) in the grid")
        // "SAMPLES" in the 5×7 font: S 15 + A 18 + M 18 + P 15 + L 11 + E 18 + S 15 = 110 pixels, each 2×2 at scale 2.
        #expect(text == 110 * 4 && grid == 0)
        // 196 − 8 pixels hold (6n − 1)·2 ≤ 188, n ≤ 15 characters: "samples of the" (14) and "model" on two lines.
        try PNGWriter.writeGrid(images, range: 0...1, caption: "samples of the model", path: dir + "/two.png")
        #expect(try PNGImage.read(path: dir + "/two.png").height == 131 + 4 + 2 * 20)
    }

    @Test("strip: 3 frames at scale 4 are 3·65 + 1 = 196 wide; caption 24 + gap 1 + 64 + gap 1 + label strip 20; labels under each frame; out-of-range colours")
    func stripLabelsAndMarks() throws {
        let dir = scratchFolder()
        let frames = Tensor(shape: [3, 1, 16, 16], data: [Double](repeating: 2, count: 256) + [Double](repeating: -1, count: 256) + [Double](repeating: 0.5, count: 256))
        try PNGWriter.writeStrip(frames, range: 0...1, labels: ["t=9", "t=4", "x0"], caption: "chain", path: dir + "/chain.png")
        let p = try PNGImage.read(path: dir + "/chain.png")
        #expect((p.width, p.height, p.channels) == (196, 24 + 1 + 64 + 1 + 20, 3))
        #expect(p.pixel(x: 10, y: 34) == ArraySlice(PNGWriter.aboveRange), "2 is above [0, 1]: red")
        #expect(p.pixel(x: 75, y: 34) == ArraySlice(PNGWriter.belowRange), "−1 is below [0, 1]: blue")
        #expect(p.pixel(x: 140, y: 34) == [128, 128, 128], "0.5 is grey 128 (round(127.5))")
        for (i, label) in ["t=9", "t=4", "x0"].enumerated() {
            let n = Self.dark(p, x: (1 + 65 * i)..<(65 * (i + 1)), y: 90..<110)
            print("label '\(label)' under frame \(i): \(n) dark pixels")
            #expect(n > 0, "label \(label) drawn under frame \(i)")
        }
        #expect(Self.dark(p, x: 0..<196, y: 0..<24) > 0, "the caption is drawn")
    }

    @Test("the demo's pictures: sizes, captions and the chain's eleven labels, read from the written files")
    func demoPictures() throws {
        let dir = scratchFolder() + "/demo"
        let r = try runDDPM(["demo", "--train-steps", "2", "--images", "16", "--count", "4", "--timesteps", "20", "--batch-size", "2", "--bound-images", "2", "--out", dir])
        #expect(r.status == 0, "\(r.stderr)")
        // 4 tiles in 2 columns of 65: 131 by 131, plus a caption of one or two lines.
        for name in ["data.png", "samples.png", "samples-ddim.png", "samples-dpmpp.png"] {
            let p = try PNGImage.read(path: dir + "/" + name)
            let captionRows = p.height - 131
            print("\(name): \(p.width)×\(p.height), caption strip \(captionRows) rows")
            #expect(p.width == 131 && captionRows >= 24 && (captionRows - 4) % 20 == 0, "\(name): \(p.width)×\(p.height)")
            #expect(Self.dark(p, x: 0..<p.width, y: 0..<captionRows) > 0, "\(name) has its caption")
        }
        // The chain: 11 frames (10 snapshots and x_0) of 65 pixels, labels under each.
        let chain = try PNGImage.read(path: dir + "/chain.png")
        print("chain.png: \(chain.width)×\(chain.height)")
        #expect(chain.width == 11 * 65 + 1)
        let labelTop = chain.height - 20
        for i in 0..<11 { #expect(Self.dark(chain, x: (1 + 65 * i)..<(65 * (i + 1)), y: labelTop..<chain.height) > 0, "chain label \(i)") }
        // classes.png: --count 4 → 4 tiles per digit, two panels (w = 0, w = 3): 20 + 2·(4·65 + 1) + 8 = 550 wide,
        // caption + heading 20 + 10 rows of 65 + 1 high; each row's digit in the left strip.
        let classes = try PNGImage.read(path: dir + "/classes.png")
        let classCaption = classes.height - 20 - 651
        print("classes.png: \(classes.width)×\(classes.height), caption strip \(classCaption) rows")
        #expect(classes.width == 550 && classCaption >= 24 && (classCaption - 4) % 20 == 0, "classes.png: \(classes.width)×\(classes.height)")
        for k in 0..<10 {
            let y = classCaption + 20 + 1 + 65 * k
            #expect(Self.dark(classes, x: 0..<20, y: y..<(y + 64)) > 0, "classes.png: the label of row \(k)")
        }
        let report = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        #expect(report.contains("| figure | value | guide |") && report.contains("fresh real images score") && report.contains("`chain.png`"))
        for text in ["`classes.png`", "classes.png, w = 0: recognised as the requested digit", "classes.png, w = 3: recognised as the requested digit",
                     "classifier accuracy on the 197 held-out UCI digits, t = 0", "label dropout p = 0.1", "% of the demo's time"] {
            #expect(report.contains(text), "report lacks '\(text)'")
        }
    }
}
