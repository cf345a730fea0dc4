// [8, 16] holds 128 values; [3, 40] holds 120.
kiln::network! {
    pub struct Net {
        input: [8, 16],
        reshape([3, 40]),
        fc: Linear(4),
    }
}

fn main() {}
