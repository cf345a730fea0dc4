// Two layers kiln does not have, one written with arguments: both are
// reported in one build, and the one with arguments is not taken for a
// network from another `network!` (those take none).
kiln::network! {
    pub struct Seq {
        input: [16],
        rnn: Transformer(128),
        fc: Lienar(10),
        norm: Wibble,
    }
}

fn main() {}
