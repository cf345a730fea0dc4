// `FinalState(rnn)` reads the state `rnn` ends in, so it is applied to
// `rnn`'s own output; here it is applied to the logits after the head.
kiln::network! {
    pub struct CharLm {
        input ids: Tokens<[50], 65>,
        let y = ids |> emb: Embedding(65, 32) |> rnn: GRU(128);
        let logits = y |> fc: Linear(65);
        output out = logits;
        output state = logits |> FinalState(rnn);
    }
}

fn main() {}
