// A bidirectional LSTM gives 2·16 = 32 features per step; the LSTM stacked
// on it declares 16 (PyTorch fails at run time: "input.size(-1) must be equal
// to input_size").
kiln::network! {
    pub struct Tagger {
        input: [10, 8],
        enc: LSTM(8, 16, bidirectional = true),
        dec: LSTM(16, 4),
    }
}

fn main() {}
