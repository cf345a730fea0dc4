// Cross-attention over a memory of 32 features per position, for a layer of
// d_model 64.

kiln::network! {
    pub struct Decoder {
        input x: [6, 64],
        input memory: [9, 32],
        output y = x |> cross: MultiHeadAttention(64, heads = 4, memory = memory);
    }
}

fn main() {}
