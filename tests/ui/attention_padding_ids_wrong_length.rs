// Key-padding ids for 7 positions, but the memory has 9 keys.

kiln::network! {
    pub struct Decoder {
        input x: [6, 64],
        input memory: [9, 64],
        input src: Tokens<[7], 20>,
        output y = x |> cross: MultiHeadAttention(64, heads = 4, memory = memory, key_padding = src == 0);
    }
}

fn main() {}
