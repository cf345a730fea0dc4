// The ids' vocabulary is a named constant the macro cannot see: the compiler
// compares it with the table's, and names both at the layer.
const VOCAB: usize = 27;

kiln::network! {
    pub struct CharLm {
        input ids: Tokens<[8], VOCAB>,
        output logits = ids |> emb: Embedding(28, 16) |> fc: Linear(27);
    }
}

fn main() {}
