// Writing HDF5 files through the package's one file-writing helper (`OutputFile`): everything goes to a
// temporary file beside the destination, which is renamed into place only when complete (through a
// symbolic link, keeping the replaced file's mode). A failure leaves the destination as it was.
// Objects are written without modification times (H5Pset_obj_track_times off), so the same contents
// give the same bytes whenever they are written.

import CHDF5
import Errors
import FileOutput
import Foundation

/// Builds a new HDF5 file. Use ``HDF5Writer/write(to:_:)``; the writer itself is only valid inside it.
public final class HDF5Writer {
    public let destination: String
    let temporaryPath: String
    var id: hid_t
    /// Creation property lists with object-time tracking off, for groups and datasets.
    let groupProperties: hid_t, datasetProperties: hid_t

    /// Writes a complete file at `destination` by running `body`, then renaming into place.
    /// If `body` throws (or any write fails) the temporary file is removed and the destination is untouched.
    public static func write(to destination: String, _ body: (HDF5Writer) throws -> Void) throws {
        do {
            try OutputFile.write(to: destination) { temporary in
                let writer = try HDF5Writer(destination: destination, temporaryPath: temporary)
                do {
                    try body(writer)
                    try writer.close()
                } catch {
                    writer.abandon()
                    throw error
                }
            }
        } catch let e as DDPMError where e.kind == .outputRefused {
            throw HDF5Error(.writeFailed, file: destination, e.message.hasPrefix(destination + ": ") ? String(e.message.dropFirst(destination.count + 2)) : e.message)
        }
    }

    init(destination: String, temporaryPath: String) throws {
        self.destination = destination
        self.temporaryPath = temporaryPath
        (id, groupProperties, datasetProperties) = HDF5Library.locked {
            let fcpl = H5Pcreate(ddpm_h5p_file_create()); defer { H5Pclose(fcpl) }
            H5Pset_obj_track_times(fcpl, false)   // the root group
            let gcpl = H5Pcreate(ddpm_h5p_group_create()), dcpl = H5Pcreate(ddpm_h5p_dataset_create())
            H5Pset_obj_track_times(gcpl, false); H5Pset_obj_track_times(dcpl, false)
            let fapl = ddpm_h5p_file_access_unlocked(); defer { H5Pclose(fapl) }
            return (H5Fcreate(temporaryPath, ddpm_h5f_acc_excl(), fcpl, fapl), gcpl, dcpl)
        }
        guard id >= 0 else {
            throw HDF5Error(.writeFailed, file: destination, "could not create a temporary file in '\(OutputFile.folder(of: temporaryPath))'")
        }
    }

    deinit {
        abandon()
        HDF5Library.locked { _ = H5Pclose(groupProperties); _ = H5Pclose(datasetProperties) }
    }

    /// Finishes the file; ``OutputFile`` then moves it into place.
    func close() throws {
        let status = HDF5Library.locked { H5Fclose(id) }
        id = -1
        guard status >= 0 else { throw HDF5Error(.writeFailed, file: destination, "HDF5 could not finish the file") }
    }

    /// Closes the file without finishing; ``OutputFile`` removes the temporary file.
    func abandon() {
        if id >= 0 { HDF5Library.locked { _ = H5Fclose(id) }; id = -1 }
    }

    func fail(_ object: String, _ detail: String) -> HDF5Error { HDF5Error(.writeFailed, file: destination, object: object, detail) }

    /// Creates a group (and any missing parents).
    public func createGroup(_ groupPath: String) throws {
        try HDF5Library.locked {
            var prefix = ""
            for part in groupPath.split(separator: "/") {
                prefix += "/" + part
                if H5Lexists(id, prefix, ddpm_h5p_default()) > 0 { continue }
                let g = H5Gcreate2(id, prefix, ddpm_h5p_default(), groupProperties, ddpm_h5p_default())
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
            let ds = H5Dcreate2(id, datasetPath, type, space, ddpm_h5p_default(), datasetProperties, ddpm_h5p_default())
            guard ds >= 0 else { throw fail(datasetPath, "could not create the dataset (does it exist already?)") }
            defer { H5Dclose(ds) }
            if values.isEmpty { return }
            let status = values.withUnsafeBytes { H5Dwrite(ds, type, ddpm_h5s_all(), ddpm_h5s_all(), ddpm_h5p_default(), $0.baseAddress) }
            guard status >= 0 else { throw fail(datasetPath, "could not write the data") }
        }
    }

    /// Creates a float64 dataset of `shape` without writing values: chunked (one chunk per first index), so
    /// it takes no space and reads as zeros. Lets a file declare a large data set cheaply (readers must
    /// check shapes from the metadata before reading).
    public func reserve(shape: [Int], to datasetPath: String) throws {
        precondition(!shape.isEmpty && shape.allSatisfy { $0 > 0 }, "HDF5Writer.reserve: shape \(shape) must have positive extents")
        let parent = datasetPath.split(separator: "/").dropLast().joined(separator: "/")
        if !parent.isEmpty { try createGroup(parent) }
        try HDF5Library.locked {
            let space = makeSpace(shape); defer { H5Sclose(space) }
            let dcpl = H5Pcopy(datasetProperties); defer { H5Pclose(dcpl) }
            let chunk = [hsize_t(1)] + shape.dropFirst().map { hsize_t($0) }
            H5Pset_chunk(dcpl, Int32(shape.count), chunk)
            let ds = H5Dcreate2(id, datasetPath, ddpm_h5t_native_double(), space, ddpm_h5p_default(), dcpl, ddpm_h5p_default())
            guard ds >= 0 else { throw fail(datasetPath, "could not create the dataset") }
            H5Dclose(ds)
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
