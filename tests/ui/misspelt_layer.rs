// A misspelt built-in layer.
kiln::network! {
    pub struct Mlp {
        input: [784],
        fc1: Lienar(128),
        relu,
        fc2: Linear(10),
    }
}

fn main() {}
