// Learned positions for 64 steps added to a sequence of 100.

kiln::network! {
    pub struct Lm {
        input ids: Tokens<[100], 65>,
        let h = ids |> tok: Embedding(65, 32) |> pos: PositionalEmbedding(64);
        output logits = h |> head: Linear(65);
    }
}

fn main() {}
