// Token ids over a vocabulary of 27 fed to an embedding table of 28 rows: the
// macro names both vocabularies at the layer.

kiln::network! {
    pub struct CharLm {
        input ids: Tokens<[8], 27>,
        output logits = ids |> emb: Embedding(28, 16) |> fc: Linear(27);
    }
}

fn main() {}
