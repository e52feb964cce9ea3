// PNG output through Debian's libpng (its simplified write API), written atomically through `OutputFile`.

import CPNG
import FileOutput
import Foundation

public enum PNGWriter {
    /// Writes 8-bit pixels (grey: 1 byte per pixel, RGB: 3) to `path` atomically (through `OutputFile`:
    /// a temporary file and a rename, links followed, the replaced file's mode kept).
    public static func write(path: String, width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        precondition(channels == 1 || channels == 3, "PNGWriter: channels must be 1 or 3, got \(channels)")
        precondition(pixels.count == width * height * channels, "PNGWriter: \(pixels.count) bytes for \(width)×\(height)×\(channels)")
        try OutputFile.write(to: path) { temporary in
            var image = png_image()
            image.version = png_uint_32(PNG_IMAGE_VERSION)
            image.width = png_uint_32(width)
            image.height = png_uint_32(height)
            // PNG_FORMAT_GRAY is 0 and PNG_FORMAT_RGB is PNG_FORMAT_FLAG_COLOR (2); nested macros do not import.
            image.format = png_uint_32(channels == 1 ? 0 : 2)
            let ok = pixels.withUnsafeBytes { png_image_write_to_file(&image, temporary, 0, $0.baseAddress, png_int_32(width * channels), nil) }
            guard ok != 0 else {
                let message = withUnsafeBytes(of: image.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                throw DDPMError(.outputRefused, "\(path): libpng could not write the image: \(message)")
            }
        }
    }

    /// The 8-bit value of `v` shown on `range`: clamped into the range first, so that any value (±∞ too)
    /// gives a pixel; NaN, which has no place on the range, is shown as the range's lower end (black).
    public static func pixel(_ v: Double, range: ClosedRange<Double>) -> UInt8 {
        guard !v.isNaN else { return 0 }
        let u = (Swift.min(Swift.max(v, range.lowerBound), range.upperBound) - range.lowerBound) / (range.upperBound - range.lowerBound)
        return UInt8((Swift.min(Swift.max(u, 0), 1) * 255).rounded())
    }

    /// The default integer upscaling of tiles of side `side`: nearest neighbour, to tiles of about 64 pixels
    /// (16 → 4, 32 → 2, 64 and more → 1).
    public static func defaultScale(side: Int) -> Int { Swift.max(1, 64 / Swift.max(side, 1)) }

    /// Font scale of captions and labels (the 5×7 font drawn at 10×14 pixels), and the caption strip's height
    /// for `lines` lines: a 4-pixel margin, then 20 pixels per line.
    static let textScale = 2, captionLine = 20
    static func captionHeight(lines: Int) -> Int { lines == 0 ? 0 : 2 * textScale + lines * captionLine }

    /// Lays out N×C×H×W images (values in `range`, clamped; see ``pixel(_:range:)``) as a grid with `columns` columns and a
    /// 1-pixel grey gap, and writes it. C must be 1 (grey) or 3 (RGB). Each pixel becomes a `scale` × `scale`
    /// square (nearest neighbour; ``defaultScale(side:)`` when nil). A `caption` is drawn above the grid in a
    /// white strip (black upper-case text, wrapped to the grid's width).
    public static func writeGrid(_ images: Tensor, range: ClosedRange<Double>, columns: Int? = nil, scale: Int? = nil,
                                 caption: String? = nil, path: String) throws {
        precondition(images.rank == 4, "writeGrid: expected N×C×H×W, got \(images.shape)")
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        guard c == 1 || c == 3 else { throw DDPMError(.invalidValue, "\(path): PNG grids need 1 or 3 channels, got \(c)") }
        let scale = scale ?? defaultScale(side: Swift.max(h, w))
        let cols = columns ?? Int(Double(n).squareRoot().rounded(.up))
        let rows = (n + cols - 1) / cols
        let gap = 1, cellW = w * scale + gap, cellH = h * scale + gap
        let width = cols * cellW + gap
        let lines = caption.map { BitmapFont.lines($0.uppercased(), maxWidth: width - 2 * textScale * 2, scale: textScale) } ?? []
        let top = captionHeight(lines: lines.count)
        var canvas = Canvas(width: width, height: top + rows * cellH + gap, channels: c, background: 128)
        drawCaption(lines, into: &canvas)
        for i in 0..<n {
            let y0 = top + gap + (i / cols) * cellH, x0 = gap + (i % cols) * cellW
            for y in 0..<(h * scale) { for x in 0..<(w * scale) { for ch in 0..<c {
                let v = images.data[((i * c + ch) * h + y / scale) * w + x / scale]
                canvas.pixels[((y0 + y) * width + x0 + x) * c + ch] = pixel(v, range: range)
            } } }
        }
        try write(path: path, width: canvas.width, height: canvas.height, channels: c, pixels: canvas.pixels)
    }

    /// The colours of values outside the range in ``writeStrip(_:range:labels:caption:markOutOfRange:scale:path:)``.
    public static let aboveRange: [UInt8] = [230, 40, 40], belowRange: [UInt8] = [40, 90, 230], notANumber: [UInt8] = [255, 0, 255]

    /// N×C×H×W frames side by side (RGB PNG) with `labels[i]` under frame i (as written: `t` and `x` have
    /// lower-case glyphs) and an optional caption above (upper case).
    /// Values are shown on `range`; with `markOutOfRange`, a pixel with any channel above the range is drawn
    /// in ``aboveRange`` (red), below it in ``belowRange`` (blue), NaN in ``notANumber`` (magenta), instead of
    /// being clamped. Each pixel becomes a `scale` × `scale` square (``defaultScale(side:)`` when nil).
    public static func writeStrip(_ frames: Tensor, range: ClosedRange<Double>, labels: [String], caption: String? = nil,
                                  markOutOfRange: Bool = true, scale: Int? = nil, path: String) throws {
        precondition(frames.rank == 4, "writeStrip: expected N×C×H×W, got \(frames.shape)")
        let (n, c, h, w) = (frames.shape[0], frames.shape[1], frames.shape[2], frames.shape[3])
        guard c == 1 || c == 3 else { throw DDPMError(.invalidValue, "\(path): PNG strips need 1 or 3 channels, got \(c)") }
        precondition(labels.count == n, "writeStrip: \(labels.count) labels for \(n) frames")
        let scale = scale ?? defaultScale(side: Swift.max(h, w))
        let gap = 1, cellW = w * scale + gap
        let width = n * cellW + gap
        let lines = caption.map { BitmapFont.lines($0.uppercased(), maxWidth: width - 2 * textScale * 2, scale: textScale) } ?? []
        let top = captionHeight(lines: lines.count)
        // Labels at the text scale when they fit under a tile, else at half of it.
        let labelScale = labels.allSatisfy { BitmapFont.width($0, scale: textScale) <= w * scale } ? textScale : Swift.max(1, textScale / 2)
        let labelHeight = 2 * labelScale + BitmapFont.lineHeight * labelScale
        var canvas = Canvas(width: width, height: top + gap + h * scale + gap + labelHeight, channels: 3, background: 128)
        drawCaption(lines, into: &canvas)
        let labelTop = top + gap + h * scale + gap
        canvas.fill(x: 0, y: labelTop, w: width, h: labelHeight, [255])
        for i in 0..<n {
            let x0 = gap + i * cellW, y0 = top + gap
            for y in 0..<(h * scale) { for x in 0..<(w * scale) {
                let values = (0..<c).map { frames.data[((i * c + $0) * h + y / scale) * w + x / scale] }
                var color: [UInt8]
                if markOutOfRange && values.contains(where: \.isNaN) { color = notANumber }
                else if markOutOfRange && values.contains(where: { $0 > range.upperBound }) { color = aboveRange }
                else if markOutOfRange && values.contains(where: { $0 < range.lowerBound }) { color = belowRange }
                else { color = values.map { pixel($0, range: range) } }
                canvas.set(x0 + x, y0 + y, color)
            } }
            let textX = x0 + Swift.max(0, (w * scale - BitmapFont.width(labels[i], scale: labelScale)) / 2)
            canvas.draw(labels[i], x: textX, y: labelTop + labelScale, scale: labelScale, [0])
        }
        try write(path: path, width: canvas.width, height: canvas.height, channels: 3, pixels: canvas.pixels)
    }

    /// Draws caption lines (black on white) into the top ``captionHeight(lines:)`` rows.
    static func drawCaption(_ lines: [String], into canvas: inout Canvas) {
        guard !lines.isEmpty else { return }
        canvas.fill(x: 0, y: 0, w: canvas.width, h: captionHeight(lines: lines.count), [255])
        for (k, line) in lines.enumerated() {
            canvas.draw(line, x: 2 * textScale, y: 2 * textScale + k * captionLine, scale: textScale, [0])
        }
    }
}

/// A decoded PNG (8-bit grey or RGB), read through libpng's simplified API: for tests and tools that check
/// what was written.
public struct PNGImage: Sendable, Equatable {
    public var width: Int, height: Int
    /// 1 (grey) or 3 (RGB).
    public var channels: Int
    /// Row-major, `channels` bytes per pixel.
    public var pixels: [UInt8]

    /// Reads `path` as grey when the file is grey, else as RGB (alpha dropped).
    public static func read(path: String) throws -> PNGImage {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw DDPMError(.malformedFile, "\(path): not a PNG file libpng can read")
        }
        // PNG_FORMAT_FLAG_COLOR is 2 (nested macros do not import).
        let channels = image.format & 2 != 0 ? 3 : 1
        image.format = png_uint_32(channels == 1 ? 0 : 2)
        let (width, height) = (Int(image.width), Int(image.height))
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, png_int_32(width * channels), nil) }
        guard ok != 0 else { throw DDPMError(.malformedFile, "\(path): libpng could not decode the image") }
        return PNGImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The pixel at (x, y) as 1 or 3 bytes.
    public func pixel(x: Int, y: Int) -> ArraySlice<UInt8> {
        let i = (y * width + x) * channels
        return pixels[i..<(i + channels)]
    }
}
