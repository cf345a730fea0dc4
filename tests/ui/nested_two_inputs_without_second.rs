// A network of two inputs nested as if it took one.
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
        input tgt: [4, 8],
        let d = tgt |> dec: Decoder -> [4, 8];
        output y = d |> head: Linear(3);
    }
}

fn main() {}
