/// A user-facing failure of the DDPM layer (files, configuration, data): one sentence naming the thing,
/// what was expected and what was found.
public struct DDPMError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
