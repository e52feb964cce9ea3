import DDPM

// A small model: the demo's 16×16 grey U-Net (preset `demo`) over T = 100 diffusion steps.
let ddpm = try DDPM(preset: .demo, timesteps: 100, seed: 0)
print("network: \(ddpm.model.parameterCount) parameters")

// Training images are N×C×H×W tensors of Double in the data range [0, 1]:
// Tensor(shape: [n, 1, 16, 16], data: pixels) for your own; here 64 procedurally drawn digits.
var generator = RandomGenerator(seed: 1)
let images = DigitImages.make(count: 64, generator: &generator).images

// The seed's training step, loss = ddpm(x) and loss.backward(), with an Adam update.
let adam = Adam(shapes: ddpm.model.parameters.map(\.count), options: TrainingOptions())
for step in 0..<4 {
    let batch = images.slice(axis: 0, start: 16 * step, length: 16)
    ddpm.model.zeroGradients()
    let loss = try ddpm(batch)
    loss.backward()
    adam.update(ddpm.model.parameters)
    print("step \(step + 1): loss \(loss.scalar)")
}

// Sampling with any sampler by value; the callback sees every step (a progress hook).
let samples = try ddpm.sample(batchSize: 4, sampler: .ddim(steps: 10)) { step in
    print("DDIM step \(10 - step.index) of 10 (t = \(step.t))")
}
print("samples: shape \(samples.shape), values in \(samples.data.min()!) ... \(samples.data.max()!)")
try PNGWriter.writeGrid(samples, range: 0...1, path: "samples.png")
print("wrote samples.png")
