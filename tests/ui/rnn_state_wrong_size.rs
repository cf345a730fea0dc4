// A 2-layer LSTM of 128 units carries its state from one batch to the next,
// but the state input was declared for one layer of 64: an LSTM's state is
// [2 (h, c), layers·directions, hidden] = [2, 2, 128] per sample (PyTorch
// fails at run time: "Expected hidden[0] size (2, 32, 128), got [1, 32, 64]").
kiln::network! {
    pub struct CharLm {
        input ids: Tokens<[50], 65>,
        input s0: [2, 1, 64],
        let y = ids |> emb: Embedding(65, 32) |> rnn: LSTM(128, num_layers = 2, state = s0);
        output logits = y |> fc: Linear(65);
        output state = y |> FinalState(rnn);
    }
}

fn main() {}
