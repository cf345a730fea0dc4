// `LayerNorm(D)` normalises the last dimension, which must be `D`: here `fc1`
// gives 32 features, not 64.
kiln::network! {
    pub struct Net {
        input: [784],
        fc1: Linear(32),
        ln: LayerNorm(64),
        gelu,
        fc2: Linear(10),
    }
}

fn main() {}
