// Parameters in HDF5: one float64 dataset per parameter, named by its PyTorch state-dict key, in PyTorch
// layout. A PyTorch user writes `model.state_dict()` with h5py and loads it here, and the other way round.

@_exported import HDF5
@_exported import Tensors

extension ParameterContainer {
    /// Writes every parameter as `group/<key>` (float64, PyTorch layout).
    public func saveWeights(to writer: HDF5Writer, group: String = "/weights") throws {
        try writer.createGroup(group)
        for (name, tensor) in namedParameters() { try writer.write(tensor.data, shape: tensor.shape, to: group + "/" + name) }
    }

    /// Loads every parameter from `group/<key>` (floating-point datasets only), all or nothing: every missing key, unexpected key and
    /// shape mismatch is collected into one thrown error, and on any error no parameter changes.
    public func loadWeights(from file: HDF5File, group: String = "/weights") throws {
        guard file.exists(group) else { throw DDPMError(.malformedFile, "\(file.path): no group '\(group)' of weights") }
        let stored = Set(try file.members(ofGroup: group))
        let wanted = namedParameters()
        var problems: [String] = []
        var loaded: [(Tensor, [Double])] = []
        for (name, tensor) in wanted {
            guard stored.contains(name) else { problems.append("missing '\(name)' \(tensor.shape)"); continue }
            do {
                let a = try file.readFloatingPoint(group + "/" + name)
                if a.shape != tensor.shape {
                    problems.append("'\(name)': expected shape \(tensor.shape), found \(a.shape)")
                } else {
                    loaded.append((tensor, a.values))
                }
            } catch {
                problems.append("'\(name)': \(error)")
            }
        }
        let unexpected = stored.subtracting(wanted.map(\.name)).sorted()
        problems += unexpected.map { "unexpected '\($0)'" }
        guard problems.isEmpty else {
            throw DDPMError(.invalidValue, "\(file.path) group '\(group)': \(problems.count) problem(s) loading weights, none loaded: " + problems.joined(separator: "; "))
        }
        for (tensor, values) in loaded { tensor.assign(values) }
    }
}
