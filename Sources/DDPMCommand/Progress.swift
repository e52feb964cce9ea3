import Foundation

/// Progress of long work on stderr: a redrawn bar on a terminal, plain periodic lines otherwise.
final class Progress {
    let label: String, total: Int
    let start = Date()
    let terminal = isatty(2) != 0
    var lastPrint = Date.distantPast
    var lastStep = 0

    init(_ label: String, total: Int) { self.label = label; self.total = max(total, 1) }

    func update(_ step: Int, loss: Double? = nil, heldOut: Double? = nil) {
        let now = Date()
        let finished = step >= total
        let interval: TimeInterval = terminal ? 0.2 : 10
        guard finished || now.timeIntervalSince(lastPrint) >= interval || (!terminal && step * 10 / total != lastStep * 10 / total) else { return }
        lastPrint = now; lastStep = step
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(step) / elapsed : 0
        let left = rate > 0 ? Double(total - step) / rate : 0
        var text = "\(label) \(step)/\(total)  \(String(format: "%.1f", rate))/s  \(Self.clock(elapsed)) elapsed, \(Self.clock(left)) left"
        if let loss { text += String(format: "  loss %.4f", loss) }
        if let heldOut { text += String(format: "  held-out %.4f", heldOut) }
        if terminal {
            let width = 24, filled = width * step / total
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(("\r\u{1B}[K[" + bar + "] " + text + (finished ? "\n" : "")).data(using: .utf8)!)
        } else {
            FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

func note(_ text: String) { FileHandle.standardError.write((text + "\n").data(using: .utf8)!) }
