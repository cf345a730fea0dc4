// Network `Block` (input [64]) used as a layer of another network, fed [32].
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
        stem: Linear(32),
        block: Block -> [64],
        head: Linear(10),
    }
}

fn main() {}
