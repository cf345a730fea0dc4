// The GRU declares 32 input features per step, but the embedding before it
// gives 16 (PyTorch fails here at run time: "input.size(-1) must be equal to
// input_size").
kiln::network! {
    pub struct CharLm {
        input: Tokens<[8], 27>,
        emb: Embedding(27, 16),
        rnn: GRU(32, 64),
        fc: Linear(27),
    }
}

fn main() {}
