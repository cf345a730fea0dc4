// `fc2` declares HIDDEN = 32 input features, but `fc1` gives WIDTH = 64. The
// macro cannot see either value: the compiler compares them.
const WIDTH: usize = 64;
const HIDDEN: usize = 32;

kiln::network! {
    pub struct Mlp {
        input: [16],
        fc1: Linear(WIDTH),
        relu,
        fc2: Linear(HIDDEN, 10),
    }
}

fn main() {}
