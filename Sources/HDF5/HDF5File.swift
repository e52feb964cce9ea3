// Reading HDF5 files: datasets of any rank (converted by HDF5 to the requested type), groups, attributes.

import CHDF5
import Foundation

/// A dataset's values in row-major order with its shape (`[]` for a scalar dataset).
public struct HDF5Array<Element: Sendable>: Sendable {
    public var shape: [Int]
    public var values: [Element]
    public init(shape: [Int], values: [Element]) {
        precondition(shape.reduce(1, *) == values.count, "HDF5Array: shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.shape = shape; self.values = values
    }
}

/// Every call into HDF5 happens under this lock (the library may be built without thread safety).
/// HDF5 keeps its automatic error printing per thread when it is built thread-safe, so it is turned off
/// on whichever thread is calling, every time: errors become return codes that we throw.
enum HDF5Library {
    static let lock = NSRecursiveLock()
    static func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        ddpm_h5_silence_errors()
        return try body()
    }
}

/// An HDF5 file opened for reading.
public final class HDF5File {
    public let path: String
    let id: hid_t

    /// Opens an existing file read-only. Throws ``HDF5Error`` if it does not exist or is not HDF5.
    public init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw HDF5Error(.noSuchFile, file: path, "no such file")
        }
        guard !isDirectory.boolValue else { throw HDF5Error(.notHDF5, file: path, "is a folder, expected an HDF5 file") }
        let opened: hid_t = try HDF5Library.locked {
            guard H5Fis_hdf5(path) > 0 else { throw HDF5Error(.notHDF5, file: path, "not an HDF5 file (no HDF5 signature)") }
            let fapl = ddpm_h5p_file_access_unlocked(); defer { H5Pclose(fapl) }
            errno = 0
            let id = H5Fopen(path, ddpm_h5f_acc_rdonly(), fapl)
            if id < 0 {
                let cause = errno == 0 ? "" : " (\(String(cString: strerror(errno))))"
                throw HDF5Error(.notHDF5, file: path, "HDF5 could not open the file" + cause)
            }
            return id
        }
        id = opened
    }

    deinit { HDF5Library.locked { _ = H5Fclose(id) } }

    // MARK: Structure

    /// Whether a link exists at `path` (every intermediate group must exist too).
    public func exists(_ objectPath: String) -> Bool {
        HDF5Library.locked {
            var prefix = ""
            for part in objectPath.split(separator: "/") {
                prefix += "/" + part
                if H5Lexists(id, prefix, ddpm_h5p_default()) <= 0 { return false }
            }
            return true
        }
    }

    public enum ObjectKind: Sendable { case group, dataset, other }

    /// Whether the object at `path` is a group or a dataset; throws if there is none.
    public func kind(of objectPath: String) throws -> ObjectKind {
        try HDF5Library.locked {
            let obj = try openObject(objectPath)
            defer { H5Oclose(obj) }
            switch H5Iget_type(obj) {
            case H5I_GROUP: return .group
            case H5I_DATASET: return .dataset
            default: return .other
            }
        }
    }

    /// Names of the members of a group, sorted by name.
    public func members(ofGroup groupPath: String = "/") throws -> [String] {
        try HDF5Library.locked {
            guard try kind(of: groupPath) == .group else {
                throw HDF5Error(.wrongClass, file: path, object: groupPath, "expected a group, found a dataset")
            }
            let group = H5Gopen2(id, groupPath, ddpm_h5p_default())
            defer { H5Gclose(group) }
            final class Names { var list: [String] = [] }
            let names = Names()
            let status = ddpm_h5_list_links(group, { name, context in
                Unmanaged<Names>.fromOpaque(context!).takeUnretainedValue().list.append(String(cString: name!))
            }, Unmanaged.passUnretained(names).toOpaque())
            guard status >= 0 else { throw HDF5Error(.libraryCall, file: path, object: groupPath, "could not list the group's members") }
            return names.list
        }
    }

    func openObject(_ objectPath: String) throws -> hid_t {
        guard exists(objectPath) || objectPath == "/" else {
            throw HDF5Error(.noSuchObject, file: path, object: objectPath, "no such group or dataset")
        }
        let obj = H5Oopen(id, objectPath, ddpm_h5p_default())
        guard obj >= 0 else { throw HDF5Error(.noSuchObject, file: path, object: objectPath, "could not open the object") }
        return obj
    }

    // MARK: Datasets

    /// Reads a numeric dataset as float64. Integer and floating datasets of any width are converted by
    /// HDF5 itself. With `expectedShape`, a dataset of another shape is an error (`-1` matches any extent).
    public func readDoubles(_ datasetPath: String, expectedShape: [Int]? = nil) throws -> HDF5Array<Double> {
        try read(datasetPath, expectedShape: expectedShape, allowed: [H5T_FLOAT, H5T_INTEGER],
                 expectedName: "numeric (integer or floating) data", memoryType: ddpm_h5t_native_double(), zero: 0.0)
    }

    /// Reads a floating-point dataset (any width) as float64. Integer data is refused: parameters, noise and
    /// samples are never integers, and a weight stored as one would load as something else than was meant.
    public func readFloatingPoint(_ datasetPath: String, expectedShape: [Int]? = nil) throws -> HDF5Array<Double> {
        try read(datasetPath, expectedShape: expectedShape, allowed: [H5T_FLOAT],
                 expectedName: "floating-point data", memoryType: ddpm_h5t_native_double(), zero: 0.0)
    }

    /// Reads an integer dataset as int64 (any integer width converted by HDF5). Floating data is
    /// refused rather than silently truncated.
    public func readInt64s(_ datasetPath: String, expectedShape: [Int]? = nil) throws -> HDF5Array<Int64> {
        try read(datasetPath, expectedShape: expectedShape, allowed: [H5T_INTEGER],
                 expectedName: "integer data", memoryType: ddpm_h5t_native_int64(), zero: Int64(0))
    }

    /// The shape of a dataset from the file's metadata (`[]` for a scalar), without reading its values.
    public func shape(of datasetPath: String) throws -> [Int] {
        try HDF5Library.locked {
            let ds = try openDataset(datasetPath)
            defer { H5Dclose(ds) }
            let space = H5Dget_space(ds); defer { H5Sclose(space) }
            return shape(ofSpace: space)
        }
    }

    /// The stored element type of a dataset, e.g. "float32", "int64", "uint8", "string".
    public func elementType(of datasetPath: String) throws -> String {
        try HDF5Library.locked {
            let ds = try openDataset(datasetPath)
            defer { H5Dclose(ds) }
            let type = H5Dget_type(ds); defer { H5Tclose(type) }
            return Self.describe(type)
        }
    }

    static func describe(_ type: hid_t) -> String {
        let size = H5Tget_size(type) * 8
        switch H5Tget_class(type) {
        case H5T_FLOAT: return "float\(size)"
        case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + "\(size)"
        case H5T_STRING: return "string"
        case H5T_COMPOUND: return "compound"
        default: return "non-numeric"
        }
    }

    func openDataset(_ datasetPath: String) throws -> hid_t {
        let obj = try openObject(datasetPath)
        let type = H5Iget_type(obj)
        H5Oclose(obj)
        guard type == H5I_DATASET else {
            throw HDF5Error(.wrongClass, file: path, object: datasetPath, "expected a dataset, found a group")
        }
        return H5Dopen2(id, datasetPath, ddpm_h5p_default())
    }

    func shape(ofSpace space: hid_t) -> [Int] {
        let rank = Int(H5Sget_simple_extent_ndims(space))
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        if rank > 0 { H5Sget_simple_extent_dims(space, &dims, nil) }
        return rank == 0 ? [] : dims.map { Int($0) }
    }

    private func read<T>(_ datasetPath: String, expectedShape: [Int]?, allowed: [H5T_class_t], expectedName: String,
                         memoryType: hid_t, zero: T) throws -> HDF5Array<T> {
        try HDF5Library.locked {
            let ds = try openDataset(datasetPath)
            defer { H5Dclose(ds) }
            let type = H5Dget_type(ds); defer { H5Tclose(type) }
            guard allowed.contains(H5Tget_class(type)) else {
                throw HDF5Error(.wrongClass, file: path, object: datasetPath, "expected \(expectedName), found \(Self.describe(type))")
            }
            let space = H5Dget_space(ds); defer { H5Sclose(space) }
            let shape = shape(ofSpace: space)
            try Self.check(shape, against: expectedShape, file: path, object: datasetPath)
            var values = [T](repeating: zero, count: shape.reduce(1, *))
            if !values.isEmpty {
                let status = values.withUnsafeMutableBytes { H5Dread(ds, memoryType, ddpm_h5s_all(), ddpm_h5s_all(), ddpm_h5p_default(), $0.baseAddress) }
                guard status >= 0 else { throw HDF5Error(.libraryCall, file: path, object: datasetPath, "HDF5 could not read or convert the data") }
            }
            return HDF5Array(shape: shape, values: values)
        }
    }

    static func check(_ shape: [Int], against expected: [Int]?, file: String, object: String) throws {
        guard let expected else { return }
        guard shape.count == expected.count else {
            throw HDF5Error(.wrongShape, file: file, object: object, "expected rank \(expected.count) \(expected), found rank \(shape.count) \(shape)")
        }
        guard zip(shape, expected).allSatisfy({ $1 < 0 || $0 == $1 }) else {
            throw HDF5Error(.wrongShape, file: file, object: object, "expected shape \(expected), found \(shape)")
        }
    }

    // MARK: Attributes

    /// Names of the attributes attached to an object.
    public func attributeNames(of objectPath: String = "/") throws -> [String] {
        try HDF5Library.locked {
            let obj = try openObject(objectPath); defer { H5Oclose(obj) }
            let n = H5Aget_num_attrs(obj)
            return (0..<max(Int(n), 0)).compactMap { i in
                let attr = H5Aopen_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(i), ddpm_h5p_default(), ddpm_h5p_default())
                guard attr >= 0 else { return nil }
                defer { H5Aclose(attr) }
                let len = H5Aget_name(attr, 0, nil)
                var buf = [CChar](repeating: 0, count: Int(len) + 1)
                H5Aget_name(attr, buf.count, &buf)
                return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
    }

    func openAttribute(_ name: String, of objectPath: String) throws -> hid_t {
        let obj = try openObject(objectPath); defer { H5Oclose(obj) }
        guard H5Aexists(obj, name) > 0 else {
            throw HDF5Error(.noSuchAttribute, file: path, object: objectPath, "no attribute '\(name)'")
        }
        return H5Aopen(obj, name, ddpm_h5p_default())
    }

    private func readAttributeValues<T>(_ name: String, of objectPath: String, allowed: [H5T_class_t], expectedName: String,
                                        memoryType: hid_t, zero: T) throws -> HDF5Array<T> {
        try HDF5Library.locked {
            let attr = try openAttribute(name, of: objectPath); defer { H5Aclose(attr) }
            let type = H5Aget_type(attr); defer { H5Tclose(type) }
            guard allowed.contains(H5Tget_class(type)) else {
                throw HDF5Error(.wrongClass, file: path, object: "\(objectPath) attribute '\(name)'", "expected \(expectedName), found \(Self.describe(type))")
            }
            let space = H5Aget_space(attr); defer { H5Sclose(space) }
            let shape = shape(ofSpace: space)
            var values = [T](repeating: zero, count: shape.reduce(1, *))
            let status = values.withUnsafeMutableBytes { H5Aread(attr, memoryType, $0.baseAddress) }
            guard status >= 0 else { throw HDF5Error(.libraryCall, file: path, object: objectPath, "HDF5 could not read attribute '\(name)'") }
            return HDF5Array(shape: shape, values: values)
        }
    }

    /// An integer attribute holding one value (scalar or one-element array).
    public func int64Attribute(_ name: String, of objectPath: String = "/") throws -> Int64 {
        let a = try readAttributeValues(name, of: objectPath, allowed: [H5T_INTEGER], expectedName: "an integer", memoryType: ddpm_h5t_native_int64(), zero: Int64(0))
        guard a.values.count == 1 else { throw HDF5Error(.wrongShape, file: path, object: "\(objectPath) attribute '\(name)'", "expected one value, found shape \(a.shape)") }
        return a.values[0]
    }

    /// A numeric attribute holding one value, as float64.
    public func doubleAttribute(_ name: String, of objectPath: String = "/") throws -> Double {
        let a = try readAttributeValues(name, of: objectPath, allowed: [H5T_FLOAT, H5T_INTEGER], expectedName: "a number", memoryType: ddpm_h5t_native_double(), zero: 0.0)
        guard a.values.count == 1 else { throw HDF5Error(.wrongShape, file: path, object: "\(objectPath) attribute '\(name)'", "expected one value, found shape \(a.shape)") }
        return a.values[0]
    }

    /// A numeric attribute holding an array, as float64 (a scalar reads as a one-element array).
    public func doubleArrayAttribute(_ name: String, of objectPath: String = "/") throws -> [Double] {
        try readAttributeValues(name, of: objectPath, allowed: [H5T_FLOAT, H5T_INTEGER], expectedName: "numbers", memoryType: ddpm_h5t_native_double(), zero: 0.0).values
    }

    /// An integer attribute holding an array (a scalar reads as a one-element array).
    public func int64ArrayAttribute(_ name: String, of objectPath: String = "/") throws -> [Int64] {
        try readAttributeValues(name, of: objectPath, allowed: [H5T_INTEGER], expectedName: "integers", memoryType: ddpm_h5t_native_int64(), zero: Int64(0)).values
    }

    /// A string attribute, fixed or variable length (h5py writes variable-length UTF-8).
    public func stringAttribute(_ name: String, of objectPath: String = "/") throws -> String {
        try HDF5Library.locked {
            let attr = try openAttribute(name, of: objectPath); defer { H5Aclose(attr) }
            let type = H5Aget_type(attr); defer { H5Tclose(type) }
            guard H5Tget_class(type) == H5T_STRING else {
                throw HDF5Error(.wrongClass, file: path, object: "\(objectPath) attribute '\(name)'", "expected a string, found \(Self.describe(type))")
            }
            let space = H5Aget_space(attr); defer { H5Sclose(space) }
            guard H5Sget_simple_extent_npoints(space) == 1 else {
                throw HDF5Error(.wrongShape, file: path, object: "\(objectPath) attribute '\(name)'", "expected one string, found \(H5Sget_simple_extent_npoints(space))")
            }
            let memType = H5Tcopy(ddpm_h5t_c_s1()); defer { H5Tclose(memType) }
            H5Tset_cset(memType, H5Tget_cset(type))
            if H5Tis_variable_str(type) > 0 {
                H5Tset_size(memType, ddpm_h5t_variable())
                var pointer: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(attr, memType, &pointer) >= 0 else { throw HDF5Error(.libraryCall, file: path, object: objectPath, "could not read string attribute '\(name)'") }
                defer { if let pointer { H5free_memory(pointer) } }
                return pointer.map { String(cString: $0) } ?? ""
            } else {
                let size = H5Tget_size(type)
                H5Tset_size(memType, size + 1)
                H5Tset_strpad(memType, H5T_STR_NULLTERM)
                var buffer = [CChar](repeating: 0, count: size + 1)
                guard H5Aread(attr, memType, &buffer) >= 0 else { throw HDF5Error(.libraryCall, file: path, object: objectPath, "could not read string attribute '\(name)'") }
                return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: " "))
            }
        }
    }
}
