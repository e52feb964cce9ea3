// Writing HDF5 files atomically: everything goes to a temporary file beside the destination, which is
// renamed into place only when complete. A failure leaves the destination as it was.

import CHDF5
import Foundation

/// Builds a new HDF5 file. Use ``HDF5Writer/write(to:_:)``; the writer itself is only valid inside it.
public final class HDF5Writer {
    public let destination: String
    let temporaryPath: String
    var id: hid_t

    /// Writes a complete file at `destination` by running `body`, then renaming into place.
    /// If `body` throws (or any write fails) the temporary file is removed and the destination is untouched.
    public static func write(to destination: String, _ body: (HDF5Writer) throws -> Void) throws {
        let writer = try HDF5Writer(destination: destination)
        do {
            try body(writer)
            try writer.commit()
        } catch {
            writer.abandon()
            throw error
        }
    }

    init(destination: String) throws {
        self.destination = destination
        let url = URL(fileURLWithPath: destination)
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HDF5Error(.writeFailed, file: destination, "the folder '\(folder)' does not exist")
        }
        temporaryPath = folder + "/." + url.lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        let tmp = temporaryPath
        id = HDF5Library.locked { H5Fcreate(tmp, ddpm_h5f_acc_excl(), ddpm_h5p_default(), ddpm_h5p_default()) }
        guard id >= 0 else { throw HDF5Error(.writeFailed, file: destination, "could not create a temporary file in '\(folder)'") }
    }

    deinit { abandon() }

    func commit() throws {
        let status = HDF5Library.locked { H5Fclose(id) }
        id = -1
        guard status >= 0 else { throw HDF5Error(.writeFailed, file: destination, "HDF5 could not finish the file") }
        guard Foundation.rename(temporaryPath, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw HDF5Error(.writeFailed, file: destination, "could not move the finished file into place: \(reason)")
        }
    }

    func abandon() {
        if id >= 0 { HDF5Library.locked { _ = H5Fclose(id) }; id = -1; unlink(temporaryPath) }
    }

    func fail(_ object: String, _ detail: String) -> HDF5Error { HDF5Error(.writeFailed, file: destination, object: object, detail) }

    /// Creates a group (and any missing parents).
    public func createGroup(_ groupPath: String) throws {
        try HDF5Library.locked {
            var prefix = ""
            for part in groupPath.split(separator: "/") {
                prefix += "/" + part
                if H5Lexists(id, prefix, ddpm_h5p_default()) > 0 { continue }
                let g = H5Gcreate2(id, prefix, ddpm_h5p_default(), ddpm_h5p_default(), ddpm_h5p_default())
                guard g >= 0 else { throw fail(prefix, "could not create the group") }
                H5Gclose(g)
            }
        }
    }

    /// Writes a float64 dataset of the given shape (`[]` for a scalar). Parent groups are created.
    public func write(_ values: [Double], shape: [Int], to datasetPath: String) throws {
        try writeDataset(values, shape: shape, to: datasetPath, type: ddpm_h5t_native_double())
    }

    /// Writes an int64 dataset of the given shape (`[]` for a scalar). Parent groups are created.
    public func write(_ values: [Int64], shape: [Int], to datasetPath: String) throws {
        try writeDataset(values, shape: shape, to: datasetPath, type: ddpm_h5t_native_int64())
    }

    /// Writes a uint8 dataset (image data sets). Parent groups are created.
    public func write(_ values: [UInt8], shape: [Int], to datasetPath: String) throws {
        try writeDataset(values, shape: shape, to: datasetPath, type: ddpm_h5t_native_uint8())
    }

    /// Writes a float32 dataset (values rounded to single precision). Parent groups are created.
    public func write(_ values: [Float], shape: [Int], to datasetPath: String) throws {
        try writeDataset(values, shape: shape, to: datasetPath, type: ddpm_h5t_native_float())
    }

    private func writeDataset<T>(_ values: [T], shape: [Int], to datasetPath: String, type: hid_t) throws {
        precondition(shape.reduce(1, *) == values.count, "HDF5Writer.write: shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        let parent = datasetPath.split(separator: "/").dropLast().joined(separator: "/")
        if !parent.isEmpty { try createGroup(parent) }
        try HDF5Library.locked {
            let space = makeSpace(shape); defer { H5Sclose(space) }
            let ds = H5Dcreate2(id, datasetPath, type, space, ddpm_h5p_default(), ddpm_h5p_default(), ddpm_h5p_default())
            guard ds >= 0 else { throw fail(datasetPath, "could not create the dataset (does it exist already?)") }
            defer { H5Dclose(ds) }
            if values.isEmpty { return }
            let status = values.withUnsafeBytes { H5Dwrite(ds, type, ddpm_h5s_all(), ddpm_h5s_all(), ddpm_h5p_default(), $0.baseAddress) }
            guard status >= 0 else { throw fail(datasetPath, "could not write the data") }
        }
    }

    func makeSpace(_ shape: [Int]) -> hid_t {
        if shape.isEmpty { return H5Screate(H5S_SCALAR) }
        let dims = shape.map { hsize_t($0) }
        return H5Screate_simple(Int32(shape.count), dims, nil)
    }

    // MARK: Attributes

    /// Creates attribute `name` (replacing one of that name) of `type` and `shape` on an object, and
    /// lets `write` fill it; the object's group is created when missing.
    private func writeAttribute(_ name: String, on objectPath: String, type: hid_t, shape: [Int],
                                _ write: (hid_t) -> herr_t) throws {
        if objectPath != "/" { try createGroupIfNeeded(objectPath) }
        try HDF5Library.locked {
            let obj = H5Oopen(id, objectPath, ddpm_h5p_default())
            guard obj >= 0 else { throw fail(objectPath, "no such object to attach attribute '\(name)' to") }
            defer { H5Oclose(obj) }
            if H5Aexists(obj, name) > 0 { H5Adelete(obj, name) }
            let space = makeSpace(shape); defer { H5Sclose(space) }
            let attr = H5Acreate2(obj, name, type, space, ddpm_h5p_default(), ddpm_h5p_default())
            guard attr >= 0 else { throw fail(objectPath, "could not create attribute '\(name)'") }
            defer { H5Aclose(attr) }
            guard write(attr) >= 0 else { throw fail(objectPath, "could not write attribute '\(name)'") }
        }
    }

    private func writeAttribute<T>(_ name: String, _ values: [T], shape: [Int], on objectPath: String, type: hid_t) throws {
        try writeAttribute(name, on: objectPath, type: type, shape: shape) { attr in
            values.withUnsafeBytes { H5Awrite(attr, type, $0.baseAddress) }
        }
    }

    func createGroupIfNeeded(_ objectPath: String) throws {
        let exists = HDF5Library.locked { H5Lexists(id, objectPath, ddpm_h5p_default()) > 0 }
        if !exists { try createGroup(objectPath) }
    }

    public func setAttribute(_ name: String, _ value: Int64, on objectPath: String = "/") throws {
        try writeAttribute(name, [value], shape: [], on: objectPath, type: ddpm_h5t_native_int64())
    }
    public func setAttribute(_ name: String, _ value: Double, on objectPath: String = "/") throws {
        try writeAttribute(name, [value], shape: [], on: objectPath, type: ddpm_h5t_native_double())
    }
    public func setAttribute(_ name: String, _ values: [Int64], on objectPath: String = "/") throws {
        try writeAttribute(name, values, shape: [values.count], on: objectPath, type: ddpm_h5t_native_int64())
    }
    /// A scalar variable-length UTF-8 string attribute, as h5py writes `attrs["k"] = "text"`.
    public func setAttribute(_ name: String, _ value: String, on objectPath: String = "/") throws {
        let type = HDF5Library.locked { () -> hid_t in
            let t = H5Tcopy(ddpm_h5t_c_s1())
            H5Tset_size(t, ddpm_h5t_variable()); H5Tset_cset(t, H5T_CSET_UTF8)
            return t
        }
        defer { HDF5Library.locked { _ = H5Tclose(type) } }
        try writeAttribute(name, on: objectPath, type: type, shape: []) { attr in
            value.withCString { cstr -> herr_t in
                var pointer: UnsafePointer<CChar>? = cstr
                return H5Awrite(attr, type, &pointer)
            }
        }
    }
}
