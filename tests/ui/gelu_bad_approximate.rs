// `Gelu(approximate = …)` takes PyTorch's strings, "none" or "tanh".
kiln::network! {
    pub struct Net {
        input: [16],
        fc1: Linear(8),
        Gelu(approximate = "erf"),
        fc2: Linear(2),
    }
}

fn main() {}
