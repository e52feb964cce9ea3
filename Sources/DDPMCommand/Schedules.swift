import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm schedules`: an SVG figure of ᾱ_t and log SNR for every schedule (Notes/02-schedules.md).
struct SchedulesFigure: FileCommand {
    static let configuration = CommandConfiguration(commandName: "schedules",
        abstract: "Write an SVG of ᾱ_t and log SNR_t = log(ᾱ_t / (1 − ᾱ_t)) for every β schedule.")
    @Option(help: "The SVG file to write (the Notes' figure is Notes/schedules.svg).") var out: String
    @Option(help: "Diffusion steps T.") var timesteps: Int = 1000
    @Flag(help: "Replace --out if it exists.") var force = false
    @Option(help: "Also write the forward-process figure (x_t at several t on the demo's first three digits; Notes/03) to this PNG.") var forwardOut: String?

    func checkOptions() throws { try requireRange("--timesteps", timesteps, 1...Int.max) }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.output("--out", out, mayReplace: force)
        plan.output("--forward-out", forwardOut, mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.add("--timesteps \(timesteps): 8 schedules' tables and the SVG's points", 8 * 8 * (24 + 2 * 24) * Double(timesteps))
        return f
    }

    func work() throws {
        let names = ["linear", "quadratic", "warmup10", "warmup50", "constant", "jsd", "cosine", "sigmoid"]
        let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
        let tables = try names.map { try DiffusionTables(schedule: BetaSchedule.named($0), timesteps: timesteps) }
        let (w, h, pad) = (420.0, 260.0, 40.0)
        func panel(_ x0: Double, _ title: String, _ values: (DiffusionTables) -> [Double], _ lo: Double, _ hi: Double) -> String {
            var s = "<g transform=\"translate(\(x0),0)\">\n"
            s += "<rect x=\"\(pad)\" y=\"\(pad)\" width=\"\(w - 2 * pad)\" height=\"\(h - 2 * pad)\" fill=\"none\" stroke=\"#888\"/>\n"
            s += "<text x=\"\(w / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(title)</text>\n"
            s += "<text x=\"\(pad)\" y=\"\(h - pad + 16)\" font-size=\"11\">0</text><text x=\"\(w - pad)\" y=\"\(h - pad + 16)\" text-anchor=\"end\" font-size=\"11\">t = \(timesteps - 1)</text>\n"
            s += "<text x=\"\(pad - 4)\" y=\"\(pad + 4)\" text-anchor=\"end\" font-size=\"11\">\(lo == 0 ? "1" : String(format: "%.0f", hi))</text>"
            s += "<text x=\"\(pad - 4)\" y=\"\(h - pad)\" text-anchor=\"end\" font-size=\"11\">\(lo == 0 ? "0" : String(format: "%.0f", lo))</text>\n"
            for (k, t) in tables.enumerated() {
                let v = values(t)
                let points = v.enumerated().map { i, y -> String in
                    let px = pad + (w - 2 * pad) * Double(i) / Double(max(v.count - 1, 1))
                    let clamped = min(max(y.isFinite ? y : (y > 0 ? hi : lo), lo), hi)
                    let py = h - pad - (h - 2 * pad) * (clamped - lo) / (hi - lo)
                    return String(format: "%.1f,%.1f", px, py)
                }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(colours[k])\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
            }
            return s + "</g>\n"
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(2 * w)\" height=\"\(h + 30)\" font-family=\"sans-serif\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += panel(0, "ᾱ_t", { $0.alphasCumprod }, 0, 1)
        svg += panel(w, "log SNR_t = log(ᾱ_t / (1 − ᾱ_t))", { t in t.alphasCumprod.map { Foundation.log($0 / (1 - $0)) } }, -12, 10)
        for (k, n) in names.enumerated() {
            svg += "<text x=\"\(20 + Double(k) * 102)\" y=\"\(h + 20)\" font-size=\"12\" fill=\"\(colours[k])\">■ \(n)</text>\n"
        }
        svg += "</svg>\n"
        try writeText(svg, to: out)
        announce("wrote \(out) (T = \(timesteps))")
        if let forwardOut { try ForwardProcessFigure.write(to: forwardOut); announce("wrote \(forwardOut) (linear schedule, T = 1000)") }
    }
}
