// A layer that would produce zero features.
kiln::network! {
    pub struct Net {
        input: [784],
        fc1: Linear(0),
        relu,
    }
}

fn main() {}
