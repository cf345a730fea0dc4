// 512 features cannot be split into 12 equal heads: the macro says so at the
// layer, with both numbers (dfdx issue #540 prints a screen of trait bounds).

kiln::network! {
    pub struct Encoder {
        input x: [16, 512],
        output y = x |> attn: MultiHeadAttention(512, heads = 12);
    }
}

fn main() {}
