// A head tied to an embedding table of another shape: Linear(16 → 27) has a
// weight [27, 16], the table is [27, 32].

kiln::network! {
    pub struct Tied {
        input ids: Tokens<[8], 27>,
        let h = ids |> wte: Embedding(27, 32) |> fc: Linear(16);
        output logits = h |> head: Linear(27, bias = false, tied = wte);
    }
}

fn main() {}
