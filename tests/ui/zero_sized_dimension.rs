// An input with a zero-sized dimension.
kiln::network! {
    pub struct Net {
        input: [0, 28],
        flatten,
        fc: Linear(10),
    }
}

fn main() {}
