// The second RNN declares 32 input features per step, but the RNN before it
// gives 64 hidden units (PyTorch fails here at run time: "input.size(-1) must
// be equal to input_size").
kiln::network! {
    pub struct Stacked {
        input: [10, 16],
        r1: RNN(16, 64, nonlinearity = "relu"),
        r2: RNN(32, 64),
        fc: Linear(2),
    }
}

fn main() {}
