// A misspelt activation (two letters swapped).
kiln::network! {
    pub struct Mlp {
        input: [784],
        fc1: Linear(128),
        rleu,
        fc2: Linear(10),
    }
}

fn main() {}
