// Network `Block` used as a layer with a declared output ([32]) that is not
// its real output ([64]).
kiln::network! {
    pub struct Block {
        input: [64],
        fc: Linear(64),
        relu,
    }
}

kiln::network! {
    pub struct Outer {
        input: [16],
        stem: Linear(64),
        block: Block -> [32],
        head: Linear(10),
    }
}

fn main() {}
