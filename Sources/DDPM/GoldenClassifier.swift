// Golden files, classifier guidance (issue 20): a noisy classifier p_φ(y | x_t, t) (``EncoderUNet``, the encoder of
// the file's own network with K classes) with its log-probabilities and input gradients at the file's x_t and t,
// so that a port checks its classifier and its input gradient — the one derivative classifier guidance takes —
// like every other output (Notes/09, Notes/20).
//
//     /classifier            attributes `classes` (K) and `pooling`; the encoder's widths are /config's
//     /classifier/weights/<key>   its parameters by state-dict name (time_mlp…, out.0…, out.3…)
//     /inputs/classifier_labels   y (N, int64): y_n = n mod K
//     /outputs/classifier_log_prob   log p_φ(y_n | x_t,n, t_n)                (N)
//     /outputs/classifier_grad       ∇_{x_t} log p_φ(y_n | x_t,n, t_n)        (N, C, H, W)

import HDF5

/// The noisy classifier of a golden file and the labels it is evaluated at.
public struct GoldenClassifier {
    /// The outputs this part adds (``GoldenFile/outputNames`` has the rest).
    public static let outputNames = ["classifier_log_prob", "classifier_grad"]

    public let network: EncoderUNet
    public let labels: [Int]

    /// A fresh classifier (the encoder of `config.network`, K = `classes`) from `seed`, and labels n mod K.
    public init(config: ModelConfiguration, classes: Int, seed: UInt64, batch: Int) throws {
        var c = config.network
        c.classes = nil; c.outputsVariance = false
        network = try EncoderUNet(c, classes: classes, seed: seed &+ 2)
        labels = (0..<batch).map { $0 % classes }
    }

    /// The classifier stored in `file`, or nil when it has none.
    public init?(reading file: HDF5File, config: ModelConfiguration, batch: Int) throws {
        guard file.exists("/classifier") else { return nil }
        let k = try file.int64Attribute("classes", of: "/classifier")
        guard k >= 2, k <= 1 << 20 else { throw DDPMError(.malformedFile, "\(file.path) /classifier attribute 'classes': expected 2 to \(1 << 20), found \(k)") }
        var c = config.network
        c.classes = nil; c.outputsVariance = false
        network = try EncoderUNet(c, classes: Int(k))
        try network.loadWeights(from: file, group: "/classifier/weights")
        guard file.exists("/inputs/classifier_labels") else { throw DDPMError(.malformedFile, "\(file.path): /classifier without '/inputs/classifier_labels'") }
        let y = try file.readInt64s("/inputs/classifier_labels")
        guard y.shape == [batch] else { throw DDPMError(.shapeMismatch, "\(file.path) '/inputs/classifier_labels': expected shape [\(batch)], found \(y.shape)") }
        if let bad = y.values.first(where: { $0 < 0 || $0 >= k }) {
            throw DDPMError(.invalidValue, "\(file.path) '/inputs/classifier_labels': class \(bad) outside 0 ..< \(k)")
        }
        labels = y.values.map { Int($0) }
    }

    /// log p_φ(y | x_t, t) and its input gradient (``ClassifierGuidance/logProbabilityGradient(_:noisy:t:labels:)``).
    public func outputs(noisy xt: Tensor, t: [Int], want: (String) -> Bool) -> [(String, Tensor)] {
        guard Self.outputNames.contains(where: want) else { return [] }
        let (logp, g) = ClassifierGuidance.logProbabilityGradient(network, noisy: xt, t: t, labels: labels)
        var out: [(String, Tensor)] = []
        if want("classifier_log_prob") { out.append(("classifier_log_prob", Tensor(shape: [logp.count], data: logp))) }
        if want("classifier_grad") { out.append(("classifier_grad", g)) }
        return out
    }

    /// Writes `/classifier` (K, pooling, weights) and `/inputs/classifier_labels`.
    public func write(to w: HDF5Writer) throws {
        try w.createGroup("/classifier")
        try w.setAttribute("classes", Int64(network.classes), on: "/classifier")
        try w.setAttribute("pooling", network.pooling.rawValue, on: "/classifier")
        try network.saveWeights(to: w, group: "/classifier/weights")
        try w.write(labels.map(Int64.init), shape: [labels.count], to: "/inputs/classifier_labels")
    }
}
