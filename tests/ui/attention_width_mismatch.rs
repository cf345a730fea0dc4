// An attention layer declared for 128 features fed 64 per position.

kiln::network! {
    pub struct Block {
        input x: [10, 64],
        output y = x |> attn: MultiHeadAttention(128, heads = 4);
    }
}

fn main() {}
