// A decoder block taking a memory of [5, 8], nested with a memory of [6, 8].
kiln::network! {
    pub struct Decoder {
        input x: [4, 8],
        input memory: [5, 8],
        let c = x |> cross: MultiHeadAttention(8, heads = 2, memory = memory);
        output y = c + x;
    }
}

kiln::network! {
    pub struct Outer {
        input src: [6, 8],
        input tgt: [4, 8],
        let d = tgt |> dec: Decoder(src) -> [4, 8];
        output y = d |> head: Linear(3);
    }
}

fn main() {}
