// Token ids are read by `Embedding` only: a `Linear` fed ids is refused at the
// layer, and so is an `Embedding` fed float values; ids are neither
// concatenated nor an output.

kiln::network! {
    pub struct IdsToLinear {
        input ids: Tokens<[8], 27>,
        output y = ids |> fc: Linear(8);
    }
}

kiln::network! {
    pub struct FloatsToEmbedding {
        input x: [8, 4],
        output y = x |> emb: Embedding(27, 16);
    }
}

kiln::network! {
    pub struct IdsOut {
        input ids: Tokens<[8], 27>,
        input x: [8, 4],
        output y = concat(x, ids, dim = -1);
        output z = ids;
    }
}

fn main() {}
