/// Something a user's configuration or input got wrong, said in one sentence that names it.
public struct DiffusionError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
