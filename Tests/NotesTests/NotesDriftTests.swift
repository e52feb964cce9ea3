// The drift check: every number the Notes and the README quote is recomputed here from the independent
// fixtures (or from a named computation written out in this file), and a changed number fails with the
// chapter, the line, the quoted and the computed value.
//
// The marker convention (an HTML comment right after the number; GitHub renders it invisibly):
//
//     0.9999<!-- = @schedules/linear/T1000/alphas_cumprod[0] -->
//     49<!-- = (1 - @schedules/linear/T1000/betas[999]) / @schedules/linear/T1000/betas[999] -->
//     350.5 s<!-- measured: swift run -c release ddpm demo; 2-core x86_64 Debian 12; 2026-11-26 -->
//
// `=` markers hold an expression (grammar below) whose value the quoted number must equal to the digits
// quoted: |quoted − computed| ≤ half a unit of the last quoted digit (plus 2 ULP of the computed value).
// `measured:` markers name the command, the machine and the date of a timing or machine-dependent
// figure; they are exempt from recomputation but must carry all three fields. A command's whole report embedded
// verbatim is one measurement: `<!-- measured block: command; machine; date -->` before it and
// `<!-- end measured block -->` after it (the lines between are not searched for unmarked numbers). `setting:` markers mark a
// default or an option (a choice, not a result) and name where it is set, e.g. `0.9999<!-- setting:
// TrainingOptions.emaDecay -->`; they are exempt too.
//
// Expressions: numbers; + − * / ^; parentheses; `@path` (a dataset of Fixtures/diffusion.h5, whole, as a
// flat array) and `@path[i, j, …]` (one element, by its multi-index) — `lin/` abbreviates
// schedules/linear/T1000/ and `eq/` equations/; `@file.h5:path` and `@file.h5:path[i, …]` read another
// fixture file (objectives.h5, samplers.h5, golden-tiers.h5, unet.h5, guidance.h5), e.g. `@samplers.h5:gaussian/laws/mean[0, 1]`
// (no `lin/`/`eq/` abbreviation there); functions sqrt log log2 exp abs erf
// tanh (elementwise), min max mean sum maxabs count (reductions),
// countbelow(a, x) / countabove(a, x), slice(a, start, count), attr("path",
// "name") (a float attribute; "file.h5:path" for another fixture), pcount("key") / psum("key prefix") / ptotal()
// (Fixtures/unet-parameters.tsv), and calc("name")
// for the named computations in `NamedComputation` below; boundterms() / boundprior() / boundtotal() read
// Notes/figures/bound-per-step.tsv (the data of the committed figure). Arrays combine elementwise; scalars broadcast.
//
// Symbols used from the package: `HDF5File(path:)`, `HDF5File.readDoubles(_:)`, `HDF5File.doubleAttribute(_:of:)`,
// `HDF5Array.values`, `HDF5Array.shape` — nothing from the diffusion code, whose tests pin it to the same
// fixtures, so renaming the code never breaks this check.
import Foundation
import HDF5
import Testing

enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// Every document the check reads: the README and every Notes chapter, sorted.
    static var documents: [String] {
        let notes = (try? FileManager.default.contentsOfDirectory(atPath: path("Notes"))) ?? []
        return ["README.md"] + notes.filter { $0.hasSuffix(".md") }.sorted().map { "Notes/" + $0 }
    }
}

// MARK: - Markers

struct Marker: CustomStringConvertible {
    enum Kind { case value(String), measured(String), setting(String) }
    var file: String, line: Int
    var quoted: String          // the number as written, e.g. "−1.0761402788530257" or "20,907,649"
    var kind: Kind
    var description: String { "\(file):\(line)" }
}

enum MarkerParser {
    /// A number as the Notes write it: optional sign (ASCII or U+2212), digits with optional thousands
    /// separators, optional fraction and exponent, at the very end of the text before the marker.
    static let number = try! NSRegularExpression(
        pattern: "[−-]?(?:\\d{1,3}(?:,\\d{3})+|\\d+)(?:\\.\\d+)?(?:[eE][−-]?\\d+)?$")
    static let marker = try! NSRegularExpression(pattern: "<!--\\s*(=|measured:|setting:)(.*?)-->")

    /// Characters allowed between a number and its marker (markdown emphasis, a unit's space, %, a
    /// closing bracket or code span).
    static let trailing = CharacterSet(charactersIn: " *%)`")

    static func parse(_ text: String, file: String) -> (markers: [Marker], problems: [String]) {
        var markers: [Marker] = [], problems: [String] = []
        for (i, line) in text.components(separatedBy: "\n").enumerated() {
            let ns = line as NSString
            var previousEnd = 0
            for m in marker.matches(in: line, range: NSRange(location: 0, length: ns.length)) {
                let before = ns.substring(with: NSRange(location: previousEnd, length: m.range.location - previousEnd))
                previousEnd = m.range.location + m.range.length
                var head = Substring(before)
                while let last = head.unicodeScalars.last, trailing.contains(last) { head = head.dropLast() }
                let h = String(head) as NSString
                guard let n = number.firstMatch(in: String(head), range: NSRange(location: 0, length: h.length)) else {
                    problems.append("\(file):\(i + 1): a marker with no number right before it: …\(before.suffix(30))")
                    continue
                }
                let quoted = h.substring(with: n.range)
                let body = ns.substring(with: m.range(at: 2)).trimmingCharacters(in: .whitespaces)
                let kind: Marker.Kind
                switch ns.substring(with: m.range(at: 1)) {
                case "=": kind = .value(body)
                case "setting:": kind = .setting(body)
                default: kind = .measured(body)
                }
                markers.append(Marker(file: file, line: i + 1, quoted: quoted, kind: kind))
            }
        }
        return (markers, problems)
    }

    /// The quoted number's value and half a unit of its last digit.
    static func value(of quoted: String) -> (value: Double, halfUnit: Double)? {
        let s = quoted.replacingOccurrences(of: "−", with: "-").replacingOccurrences(of: ",", with: "")
        guard let v = Double(s) else { return nil }
        let parts = s.lowercased().split(separator: "e", maxSplits: 1)
        let exponent = parts.count == 2 ? Int(parts[1]) ?? 0 : 0
        let mantissa = parts[0]
        let fractionDigits = mantissa.split(separator: ".", maxSplits: 1).dropFirst().first?.count ?? 0
        return (v, 0.5 * pow(10, Double(exponent - fractionDigits)))
    }
}

// MARK: - Expressions

struct ExpressionError: Error, CustomStringConvertible { var description: String }

/// A small recursive-descent evaluator for the marker expressions (grammar at the top of the file).
struct Evaluator {
    nonisolated(unsafe) static let fixture: HDF5File = try! HDF5File(path: Repository.path("Fixtures/diffusion.h5"))   // read-only; HDF5 is thread-safe
    /// The fixture files an expression may name before a colon (`@objectives.h5:path`); `@path` alone is diffusion.h5.
    nonisolated(unsafe) static let fixtures: [String: HDF5File] = Dictionary(uniqueKeysWithValues:
        ["diffusion.h5", "objectives.h5", "samplers.h5", "golden-tiers.h5", "unet.h5", "guidance.h5"].map { ($0, try! HDF5File(path: Repository.path("Fixtures/" + $0))) })

    /// Splits `file.h5:path` into the file and the dataset path (diffusion.h5 when no file is named).
    static func locate(_ reference: String) throws -> (file: HDF5File, path: String) {
        guard let colon = reference.firstIndex(of: ":") else { return (fixture, expand(reference)) }
        let name = String(reference[..<colon])
        guard let file = fixtures[name] else { throw ExpressionError(description: "no fixture file '\(name)' (known: \(fixtures.keys.sorted().joined(separator: ", ")))") }
        return (file, String(reference[reference.index(after: colon)...]))
    }
    var tokens: [String] = [], position = 0

    static func evaluate(_ text: String) throws -> [Double] {
        var e = Evaluator(); e.tokens = try tokenize(text)
        let v = try e.expression()
        guard e.position == e.tokens.count else { throw ExpressionError(description: "unexpected '\(e.tokens[e.position])' in \(text)") }
        return v
    }

    static func tokenize(_ s: String) throws -> [String] {
        var out: [String] = [], i = s.startIndex
        let pathCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_/.-:"))
        while i < s.endIndex {
            let c = s[i]
            if c == " " { i = s.index(after: i); continue }
            if c == "\"" {
                guard let close = s[s.index(after: i)...].firstIndex(of: "\"") else { throw ExpressionError(description: "unclosed string in \(s)") }
                out.append(String(s[i...close])); i = s.index(after: close); continue
            }
            if c == "@" || c.isLetter {
                // A fixture reference may hold '-' and ':' (`@golden-tiers.h5:variants/…`); a function name may not.
                let allowed = c == "@" ? pathCharacters : pathCharacters.subtracting(CharacterSet(charactersIn: "-:"))
                var j = s.index(after: i)
                while j < s.endIndex, s[j].unicodeScalars.allSatisfy({ allowed.contains($0) }) { j = s.index(after: j) }
                out.append(String(s[i..<j])); i = j; continue
            }
            if c.isNumber || c == "." {
                var j = i
                while j < s.endIndex, s[j].isNumber || s[j] == "." || ((s[j] == "e" || s[j] == "E") && j > i)
                        || ((s[j] == "-" || s[j] == "+") && j > i && "eE".contains(s[s.index(before: j)])) { j = s.index(after: j) }
                out.append(String(s[i..<j])); i = j; continue
            }
            out.append(c == "−" ? "-" : String(c)); i = s.index(after: i)
        }
        return out
    }

    mutating func next() -> String? { position < tokens.count ? tokens[position] : nil }
    mutating func expect(_ t: String) throws {
        guard next() == t else { throw ExpressionError(description: "expected '\(t)', found '\(next() ?? "end")'") }
        position += 1
    }

    mutating func expression() throws -> [Double] {
        var v = try term()
        while let op = next(), op == "+" || op == "-" {
            position += 1
            let r = try term()
            v = try Self.combine(v, r, op == "+" ? (+) : (-))
        }
        return v
    }
    mutating func term() throws -> [Double] {
        var v = try unary()
        while let op = next(), op == "*" || op == "/" {
            position += 1
            let r = try unary()
            v = try Self.combine(v, r, op == "*" ? (*) : (/))
        }
        return v
    }
    mutating func unary() throws -> [Double] {
        if next() == "-" { position += 1; return try unary().map { -$0 } }
        let base = try primary()
        if next() == "^" { position += 1; return try Self.combine(base, try unary(), pow) }
        return base
    }
    mutating func primary() throws -> [Double] {
        guard let t = next() else { throw ExpressionError(description: "unexpected end") }
        position += 1
        if t == "(" { let v = try expression(); try expect(")"); return v }
        if let d = Double(t) { return [d] }
        if t.hasPrefix("@") {
            let (file, path) = try Self.locate(String(t.dropFirst()))
            let a = try file.readDoubles(path)
            guard next() == "[" else { return a.values }
            position += 1
            var index: [Int] = []
            while true {
                guard let s = next(), let k = Int(s) else { throw ExpressionError(description: "bad index in \(t)") }
                index.append(k); position += 1
                if next() == "," { position += 1; continue }
                try expect("]"); break
            }
            let shape = a.shape.isEmpty ? [1] : a.shape
            guard index.count == shape.count, zip(index, shape).allSatisfy({ $0 >= 0 && $0 < $1 }) else {
                throw ExpressionError(description: "index \(index) outside \(t) of shape \(a.shape)")
            }
            let flat = zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
            return [a.values[flat]]
        }
        if t.hasPrefix("\"") { throw ExpressionError(description: "a string \(t) where a number was expected") }
        // A function call.
        try expect("(")
        var args: [Argument] = []
        while next() != ")" {
            if let s = next(), s.hasPrefix("\"") { args.append(.text(String(s.dropFirst().dropLast()))); position += 1 }
            else { args.append(.values(try expression())) }
            if next() == "," { position += 1 }
        }
        try expect(")")
        return try Self.call(t, args)
    }

    enum Argument { case values([Double]), text(String) }

    /// Short prefixes for the two groups the Notes quote most.
    static func expand(_ path: String) -> String {
        for (short, long) in [("lin/", "schedules/linear/T1000/"), ("eq/", "equations/")] where path.hasPrefix(short) {
            return long + path.dropFirst(short.count)
        }
        return path
    }

    static func combine(_ a: [Double], _ b: [Double], _ f: (Double, Double) -> Double) throws -> [Double] {
        if a.count == 1 { return b.map { f(a[0], $0) } }
        if b.count == 1 { return a.map { f($0, b[0]) } }
        guard a.count == b.count else { throw ExpressionError(description: "arrays of \(a.count) and \(b.count) elements") }
        return zip(a, b).map(f)
    }

    static func call(_ name: String, _ args: [Argument]) throws -> [Double] {
        func values(_ k: Int) throws -> [Double] {
            guard k < args.count, case .values(let v) = args[k] else { throw ExpressionError(description: "\(name): argument \(k + 1) must be a number or array") }
            return v
        }
        func text(_ k: Int) throws -> String {
            guard k < args.count, case .text(let s) = args[k] else { throw ExpressionError(description: "\(name): argument \(k + 1) must be a string") }
            return s
        }
        let elementwise: [String: (Double) -> Double] = ["sqrt": { $0.squareRoot() }, "log": { Foundation.log($0) },
            "log2": { Foundation.log2($0) }, "exp": { Foundation.exp($0) }, "abs": { Swift.abs($0) },
            "erf": { Foundation.erf($0) }, "tanh": { Foundation.tanh($0) }]
        if let f = elementwise[name] { return try values(0).map(f) }
        switch name {
        case "min": return [try values(0).min()!]
        case "max": return [try values(0).max()!]
        case "maxabs": return [try values(0).map(Swift.abs).max()!]
        case "sum": return [try values(0).reduce(0, +)]
        case "mean": let v = try values(0); return [v.reduce(0, +) / Double(v.count)]
        case "count": return [Double(try values(0).count)]
        case "countbelow": let v = try values(0), x = try values(1)[0]; return [Double(v.filter { $0 < x }.count)]
        case "countabove": let v = try values(0), x = try values(1)[0]; return [Double(v.filter { $0 > x }.count)]
        case "slice":
            let v = try values(0), start = Int(try values(1)[0]), n = Int(try values(2)[0])
            return Array(v[start..<(start + n)])
        case "attr": let (file, path) = try locate(try text(0)); return [try file.doubleAttribute(try text(1), of: path)]
        case "pcount":
            let key = try text(0)
            guard let row = ParameterTable.rows[key] else { throw ExpressionError(description: "no parameter '\(key)' in unet-parameters.tsv") }
            return [Double(row)]
        case "ptotal": return [Double(ParameterTable.total)]
        case "psum":
            let prefix = try text(0)
            let matching = ParameterTable.rows.filter { $0.key.hasPrefix(prefix) }
            guard !matching.isEmpty else { throw ExpressionError(description: "no parameter starts with '\(prefix)'") }
            return [Double(matching.values.reduce(0, +))]
        case "calc": return [try NamedComputation.value(try text(0))]
        case "boundterms": return try BoundFigure.read().terms
        case "boundprior": return [try BoundFigure.read().prior]
        case "boundtotal": return [try BoundFigure.read().total]
        default: throw ExpressionError(description: "unknown function \(name)")
        }
    }
}

/// Notes/figures/bound-per-step.tsv, written by `ddpm figures` with the figure it describes: the text quoting
/// the figure must agree with the committed figure's data (regenerating one without the other fails).
enum BoundFigure {
    static func read() throws -> (terms: [Double], prior: Double, total: Double) {
        let text = try String(contentsOfFile: Repository.path("Notes/figures/bound-per-step.tsv"), encoding: .utf8)
        var terms: [Double] = [], prior = Double.nan, total = Double.nan
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f[0] == "# prior L_T" { prior = Double(f.last!)! }
            else if f[0] == "# total" { total = Double(f.last!)! }
            else if !f[0].hasPrefix("#") {
                guard Int(f[0]) == terms.count, let v = Double(f[2]) else { throw ExpressionError(description: "bound-per-step.tsv: bad line '\(line)'") }
                terms.append(v)
            }
        }
        return (terms, prior, total)
    }
}

/// Fixtures/unet-parameters.tsv: key, shape, count per line; the last line is the total.
enum ParameterTable {
    static let lines: [[String]] = (try! String(contentsOfFile: Repository.path("Fixtures/unet-parameters.tsv"), encoding: .utf8))
        .split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    static let rows: [String: Int] = Dictionary(uniqueKeysWithValues: lines.filter { $0[0] != "total" }.map { ($0[0], Int($0[2])!) })
    static let total: Int = Int(lines.first { $0[0] == "total" }![2])!
}

// MARK: - Named computations

/// Computations too long for a marker, written out from the papers with Foundation only (erf, tanh, sqrt),
/// reading the same fixture. Each is named in the Notes where its value is quoted.
enum NamedComputation {
    static func value(_ name: String) throws -> Double {
        switch name {
        // Chapter 07: Ho et al.'s tanh approximation of Φ against the exact Φ in the discretised decoder,
        // on the fixture's decoder inputs. Mean log-likelihood relative difference, and the worst pixel.
        case "tanh-decoder-mean-rel-range01": return try tanhDecoder("range01").meanRel
        case "tanh-decoder-mean-rel-range11": return try tanhDecoder("range11").meanRel
        case "tanh-decoder-max-pixel-rel-range01": return try tanhDecoder("range01").maxPixelRel
        case "tanh-decoder-max-pixel-rel-range11": return try tanhDecoder("range11").maxPixelRel
        // Chapter 07: at t = 0 (fixture sample 0), the two equal formulas for x̂_0 from ε,
        // (x_t − √(1−ᾱ)ε)/√ᾱ and √(1/ᾱ)x_t − √(1/ᾱ−1)ε, differ by this much (worst element) ...
        case "x0hat-formula-gap-t0": return try startGap().gap
        // ... while x_0 − x̂_0 (x̂_0 clipped to [0, 1]) is only this large at its smallest ...
        case "x0-minus-x0hat-min-t0": return try startGap().smallestDifference
        // ... against x̂_0 values of this size (largest |x̂_0|).
        case "x0hat-max-t0": return try startGap().largest
        default: throw ExpressionError(description: "unknown computation '\(name)'")
        }
    }

    static func read(_ p: String) throws -> [Double] { try Evaluator.fixture.readDoubles(p).values }

    static func tanhDecoder(_ tag: String) throws -> (meanRel: Double, maxPixelRel: Double) {
        let g = "bound/decoder/\(tag)"
        let x = try read(g + "/x"), m = try read(g + "/means"), s = try read(g + "/log_scales")
        let lo = try Evaluator.fixture.doubleAttribute("data_min", of: g), hi = try Evaluator.fixture.doubleAttribute("data_max", of: g)
        let exact: (Double) -> Double = { 0.5 * (1 + erf($0 / 2.0.squareRoot())) }
        let approx: (Double) -> Double = { 0.5 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
        func logLikelihood(_ cdf: (Double) -> Double) -> [Double] {
            let half = (hi - lo) / 255 / 2
            return (0..<x.count).map { i in
                let inv = exp(-s[i]), plus = cdf(inv * (x[i] - m[i] + half)), minus = cdf(inv * (x[i] - m[i] - half))
                if x[i] < lo + half { return log(max(plus, 1e-12)) }
                if x[i] > hi - half { return log(max(1 - minus, 1e-12)) }
                return log(max(plus - minus, 1e-12))
            }
        }
        let a = logLikelihood(exact), b = logLikelihood(approx)
        let meanA = a.reduce(0, +) / Double(a.count), meanB = b.reduce(0, +) / Double(b.count)
        return (Swift.abs(meanB - meanA) / Swift.abs(meanA), zip(a, b).map { Swift.abs($1 - $0) / Swift.abs($0) }.max()!)
    }

    static func startGap() throws -> (gap: Double, smallestDifference: Double, largest: Double) {
        let x0 = try read("equations/inputs/x0"), eps = try read("equations/inputs/model_output"), xt = try read("equations/q_sample")
        let ab = try read("schedules/linear/T1000/alphas_cumprod")[0]
        let per = x0.count / 4   // sample 0 has t = 0
        var gap = 0.0, smallest = Double.infinity, largest = 0.0
        for i in 0..<per {
            let a = (xt[i] - (1 - ab).squareRoot() * eps[i]) / ab.squareRoot()
            let b = (1 / ab).squareRoot() * xt[i] - (1 / ab - 1).squareRoot() * eps[i]
            gap = max(gap, Swift.abs(a - b))
            smallest = min(smallest, Swift.abs(x0[i] - min(max(a, 0), 1)))
            largest = max(largest, Swift.abs(a))
        }
        return (gap, smallest, largest)
    }
}

// MARK: - The check

struct DriftResult { var checked = 0, measured = 0, settings = 0; var failures: [String] = [], report: [String] = [] }

enum DriftCheck {
    static func check(_ text: String, file: String) -> DriftResult {
        var r = DriftResult()
        let (markers, problems) = MarkerParser.parse(text, file: file)
        r.failures += problems
        // Verbatim command output (a report embedded as rendered markdown) is one measurement: the lines between
        // `<!-- measured block: command; machine; date -->` and `<!-- end measured block -->`.
        var openLine: Int? = nil, inFence = false
        for (i, line) in text.components(separatedBy: "\n").enumerated() {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") { inFence.toggle(); continue }
            if inFence { continue }   // a block marker shown as an example inside fenced code
            if let m = blockStart.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) {
                let body = (line as NSString).substring(with: m.range(at: 1))
                let fields = body.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                if fields.count == 3, fields.allSatisfy({ !$0.isEmpty }) { r.measured += 1 }
                else { r.failures.append("\(file):\(i + 1): measured block must name command; machine; date, found '\(body)'") }
                if let o = openLine { r.failures.append("\(file):\(o): measured block not closed before line \(i + 1)") }
                openLine = i + 1
            }
            if line.contains(blockEnd) {
                if openLine == nil { r.failures.append("\(file):\(i + 1): end of a measured block that was not opened") }
                openLine = nil
            }
        }
        if let o = openLine { r.failures.append("\(file):\(o): measured block never closed (<!-- end measured block -->)") }
        for m in markers {
            switch m.kind {
            case .measured(let body):
                let fields = body.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
                if fields.count == 3, fields.allSatisfy({ !$0.isEmpty }) { r.measured += 1 }
                else { r.failures.append("\(m): measurement \(m.quoted) must name command; machine; date, found '\(body)'") }
            case .setting(let body):
                if body.isEmpty { r.failures.append("\(m): setting \(m.quoted) must name where it is set") } else { r.settings += 1 }
            case .value(let expression):
                guard let (q, half) = MarkerParser.value(of: m.quoted) else { r.failures.append("\(m): cannot read '\(m.quoted)'"); continue }
                do {
                    let v = try Evaluator.evaluate(expression)
                    guard v.count == 1 else { r.failures.append("\(m): '\(expression)' gives \(v.count) values, expected 1"); continue }
                    let c = v[0]
                    r.checked += 1
                    r.report.append("\(m): \(m.quoted) ≈ \(c)  (\(expression))")
                    if !(Swift.abs(q - c) <= half * (1 + 1e-9) + 2 * c.ulp.magnitude) {
                        r.failures.append("\(m): quoted \(m.quoted), computed \(c) (from \(expression))")
                    }
                } catch {
                    r.failures.append("\(m): \(error) (from \(expression))")
                }
            }
        }
        return r
    }

    static let blockStart = try! NSRegularExpression(pattern: "<!--\\s*measured block:(.*?)-->")
    static let blockEnd = "<!-- end measured block -->"

    /// Decimal numbers with four or more significant digits that carry no marker: each must be marked.
    /// Fenced code, display math, code spans, inline math and measured blocks are skipped (commands,
    /// formulas and verbatim command output).
    static let longNumber = try! NSRegularExpression(pattern: "(?<![\\w.#/])[−-]?\\d+\\.\\d+(?:[eE][−-]?\\d+)?")
    static func unmarked(_ text: String, file: String) -> [String] {
        var out: [String] = [], inFence = false, inMath = false, inBlock = false
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            if blockStart.firstMatch(in: raw, range: NSRange(raw.startIndex..., in: raw)) != nil { inBlock = true }
            if inBlock { if raw.contains(blockEnd) { inBlock = false }; continue }
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("```") { inFence.toggle(); continue }
            if inFence { continue }
            // Display math: a line holding "$$" opens or closes a block (an odd count toggles).
            let fences = raw.components(separatedBy: "$$").count - 1
            if fences > 0 || inMath {
                if fences % 2 == 1 { inMath.toggle() }
                continue
            }
            // Each marker becomes one placeholder character; code spans and inline math are dropped.
            var line = raw.replacingOccurrences(of: "<!--.*?-->", with: "\u{1}", options: .regularExpression)
            line = line.replacingOccurrences(of: "`[^`]*`", with: "", options: .regularExpression)
            line = line.replacingOccurrences(of: "\\$[^$]*\\$", with: "", options: .regularExpression)
            let ns = line as NSString
            for n in longNumber.matches(in: line, range: NSRange(location: 0, length: ns.length)) {
                let s = ns.substring(with: n.range)
                let digits = s.split(whereSeparator: { "eE".contains($0) })[0].filter(\.isNumber).drop { $0 == "0" }
                guard digits.count >= 4 else { continue }
                let rest = ns.substring(from: n.range.location + n.range.length).unicodeScalars.drop { MarkerParser.trailing.contains($0) }
                if rest.first == "\u{1}" { continue }
                out.append("\(file):\(i + 1): \(s) has no marker")
            }
        }
        return out
    }
}

@Suite("Notes: quoted numbers cannot drift")
struct NotesDriftTests {
    /// Chapters whose numbers are not marked yet (being rewritten elsewhere); their markers, if any, are
    /// still checked. Remove a chapter from this list once its numbers carry markers.
    static let notYetMarked: Set<String> = []

    @Test("every marked number in README.md and Notes/*.md equals the value recomputed from the fixtures")
    func quotedNumbersMatch() throws {
        var total = DriftResult()
        for doc in Repository.documents {
            let text = try String(contentsOfFile: Repository.path(doc), encoding: .utf8)
            let r = DriftCheck.check(text, file: doc)
            for line in r.report { print("notes \(line)") }
            print("notes \(doc): \(r.checked) numbers checked, \(r.measured) measurements, \(r.settings) settings")
            total.checked += r.checked; total.measured += r.measured; total.settings += r.settings; total.failures += r.failures
        }
        print("notes total: \(total.checked) numbers checked against fixtures or named computations, \(total.measured) measurements and \(total.settings) settings exempt")
        for f in total.failures { print("notes DRIFT \(f)") }
        #expect(total.failures.isEmpty, "\(total.failures.count) quoted numbers disagree:\n\(total.failures.joined(separator: "\n"))")
        #expect(total.checked >= 100, "the Notes should quote at least 100 checked numbers, found \(total.checked)")
    }

    @Test("every decimal number with four or more significant digits carries a marker")
    func noUnmarkedNumbers() throws {
        var missing: [String] = []
        for doc in Repository.documents where !Self.notYetMarked.contains(doc) {
            missing += DriftCheck.unmarked(try String(contentsOfFile: Repository.path(doc), encoding: .utf8), file: doc)
        }
        for m in missing { print("notes UNMARKED \(m)") }
        #expect(missing.isEmpty, "\(missing.count) unmarked numbers:\n\(missing.joined(separator: "\n"))")
    }

    @Test("the check fails on a changed number, a wrong expression, a marker without a number, and a bare measurement")
    func checkCanFail() {
        let text = """
        β_1 = 0.00011991991991991993<!-- = @schedules/linear/T1000/betas[1] -->
        β_1 = 0.0001199199199199201<!-- = @schedules/linear/T1000/betas[1] -->
        ᾱ_500 ≈ 0.0778<!-- = @schedules/linear/T1000/alphas_cumprod[500] --> and 0.0779<!-- = @schedules/linear/T1000/alphas_cumprod[500] -->
        no number here <!-- = 1 -->
        100<!-- measured: ddpm demo -->
        7<!-- = @no/such/dataset -->
        """
        let r = DriftCheck.check(text, file: "self-test")
        for f in r.failures { print("notes self-test \(f)") }
        #expect(r.checked == 4)
        #expect(r.failures.count == 5)
        #expect(r.failures.contains { $0.hasPrefix("self-test:2: quoted 0.0001199199199199201, computed 0.00011991991991991993") })
        #expect(r.failures.contains { $0.hasPrefix("self-test:3: quoted 0.0779,") })
        #expect(!r.failures.contains { $0.hasPrefix("self-test:1:") })
        #expect(DriftCheck.unmarked("x = 0.12345 and y = 0.12345<!-- = 0.12345 -->", file: "u") == ["u:1: 0.12345 has no marker"])
        // A measured block exempts its lines, counts as one measurement, and must name all three fields and close.
        let block = "<!-- measured block: ddpm golden check; a machine; 2026-11-27 -->\n| 0.12345 |\n<!-- end measured block -->\nz = 0.54321"
        #expect(DriftCheck.unmarked(block, file: "b") == ["b:4: 0.54321 has no marker"])
        #expect(DriftCheck.check(block, file: "b").measured == 1 && DriftCheck.check(block, file: "b").failures.isEmpty)
        #expect(DriftCheck.check("<!-- measured block: ddpm golden check -->\n<!-- end measured block -->", file: "b").failures.count == 1)
        #expect(DriftCheck.check("<!-- measured block: a; b; c -->\n| 1.2345 |", file: "b").failures.count == 1)
    }

    /// The backticked names of a figure table's first column, with `{a,b}` expanded.
    static func figureNames(inTable table: String) -> [String: String] {
        var rows: [String: String] = [:]
        for line in table.components(separatedBy: "\n") where line.hasPrefix("| `") {
            let first = line.split(separator: "|", omittingEmptySubsequences: true).first.map(String.init) ?? ""
            for span in first.components(separatedBy: "`").enumerated().filter({ $0.offset % 2 == 1 }).map(\.element) {
                if let open = span.firstIndex(of: "{"), let close = span.firstIndex(of: "}") {
                    for part in span[span.index(after: open)..<close].split(separator: ",") {
                        rows[String(span[..<open]) + part + String(span[span.index(after: close)...])] = line
                    }
                } else { rows[span] = line }
            }
        }
        return rows
    }

    @Test("every figure a chapter embeds exists and has a row in Notes/README's figure table naming the ddpm command that writes it")
    func figuresAreRegenerable() throws {
        let readme = try String(contentsOfFile: Repository.path("Notes/README.md"), encoding: .utf8)
        let table = readme.components(separatedBy: "## Figures").dropFirst().first?.components(separatedBy: "\n## ").first ?? ""
        let rows = Self.figureNames(inTable: table)
        let image = try NSRegularExpression(pattern: "!\\[[^\\]]*\\]\\(([^)]+)\\)")
        var problems: [String] = [], seen = 0
        for doc in Repository.documents where doc.hasPrefix("Notes/") {
            let text = try String(contentsOfFile: Repository.path(doc), encoding: .utf8), ns = text as NSString
            for m in image.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
                let name = ns.substring(with: m.range(at: 1)); seen += 1
                if !FileManager.default.fileExists(atPath: Repository.path("Notes/" + name)) { problems.append("\(doc): \(name) does not exist") }
                guard let row = rows[name] else { problems.append("\(doc): \(name) has no row in the figure table of Notes/README.md"); continue }
                if !row.contains("ddpm ") { problems.append("\(doc): the row of \(name) names no ddpm command: \(row)") }
            }
        }
        print("notes figures: \(seen) embedded, \(rows.count) listed; problems \(problems)")
        #expect(problems.isEmpty && seen >= 10, "\(problems)")
        #expect(Self.figureNames(inTable: "| `a-{x,y}.svg` (+ `.tsv`) | 1 | `ddpm a` |").keys.sorted() == [".tsv", "a-x.svg", "a-y.svg"])
    }

    @Test("every chapter is in Notes/README's table, and a number without a chapter is explained there")
    func chaptersAreListed() throws {
        let readme = try String(contentsOfFile: Repository.path("Notes/README.md"), encoding: .utf8)
        let chapters = Repository.documents.compactMap { doc -> (Int, String)? in
            let name = String(doc.dropFirst("Notes/".count))
            guard let n = Int(name.prefix(2)), name.dropFirst(2).hasPrefix("-") else { return nil }
            return (n, name)
        }
        var problems: [String] = []
        for (n, name) in chapters where !readme.contains("(\(name))") { problems.append("chapter \(n): \(name) is not linked") }
        let numbers = Set(chapters.map(\.0))
        for n in 1...(numbers.max() ?? 1) where !numbers.contains(n) && !readme.contains("There is no chapter \(n).") {
            problems.append("no chapter \(n), and Notes/README.md does not say why (\"There is no chapter \(n).\")")
        }
        print("notes chapters: \(chapters.count) files, numbers \(numbers.sorted()); problems \(problems)")
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test("the expression evaluator: arithmetic, precedence, reductions, indices")
    func evaluator() throws {
        #expect(try Evaluator.evaluate("1 + 2 * 3 ^ 2") == [19])
        #expect(try Evaluator.evaluate("-(1 - 4) / 2") == [1.5])
        #expect(try Evaluator.evaluate("count(@equations/inputs/x0)") == [72])
        #expect(try Evaluator.evaluate("@equations/inputs/t[2]") == [500])
        #expect(try Evaluator.evaluate("max(slice(@equations/inputs/t, 0, 2))") == [1])
        #expect(try Evaluator.evaluate("ptotal() - pcount(\"final_conv.bias\")") == [20_912_256])
        // Other fixture files: `@file.h5:path[i]` and attr("file.h5:path", "name"); a changed number still fails.
        #expect(try Evaluator.evaluate("@objectives.h5:inputs/t[2]") == [10])
        #expect(try Evaluator.evaluate("attr(\"samplers.h5:gaussian\", \"s2\") * 100") == [4])
        #expect(try Evaluator.evaluate("count(@golden-tiers.h5:inputs/t) + @lin/betas[0] * 0") == [3])
        #expect(throws: ExpressionError.self) { try Evaluator.evaluate("@nosuch.h5:inputs/t") }
        #expect(DriftCheck.check("4546.4<!-- = @objectives.h5:tables/snr[1] -->", file: "o").failures.isEmpty)
        #expect(DriftCheck.check("4546.5<!-- = @objectives.h5:tables/snr[1] -->", file: "o").failures.count == 1)
        #expect(MarkerParser.value(of: "−1.5e-3")! == (-1.5e-3, 0.5e-4))
        #expect(MarkerParser.value(of: "20,907,649")! == (20_907_649, 0.5))
    }
}
