// A GRU reads a sequence [T, features]; a flat feature vector has no steps.
kiln::network! {
    pub struct Net {
        input: [784],
        fc: Linear(64),
        rnn: GRU(32),
    }
}

fn main() {}
