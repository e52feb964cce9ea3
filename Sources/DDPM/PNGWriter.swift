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

    /// Lays out N×C×H×W images (values in `range`, clamped; see ``pixel(_:range:)``) as a grid with `columns` columns and a
    /// 1-pixel grey gap, and writes it. C must be 1 (grey) or 3 (RGB). `scale` repeats each pixel.
    public static func writeGrid(_ images: Tensor, range: ClosedRange<Double>, columns: Int? = nil, scale: Int = 2, path: String) throws {
        precondition(images.rank == 4, "writeGrid: expected N×C×H×W, got \(images.shape)")
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        guard c == 1 || c == 3 else { throw DDPMError(.invalidValue, "\(path): PNG grids need 1 or 3 channels, got \(c)") }
        let cols = columns ?? Int(Double(n).squareRoot().rounded(.up))
        let rows = (n + cols - 1) / cols
        let gap = 1, cellW = w * scale + gap, cellH = h * scale + gap
        let width = cols * cellW + gap, height = rows * cellH + gap
        var pixels = [UInt8](repeating: 128, count: width * height * c)
        for i in 0..<n {
            let top = gap + (i / cols) * cellH, left = gap + (i % cols) * cellW
            for y in 0..<(h * scale) { for x in 0..<(w * scale) { for ch in 0..<c {
                let v = images.data[((i * c + ch) * h + y / scale) * w + x / scale]
                pixels[((top + y) * width + left + x) * c + ch] = pixel(v, range: range)
            } } }
        }
        try write(path: path, width: width, height: height, channels: c, pixels: pixels)
    }
}
