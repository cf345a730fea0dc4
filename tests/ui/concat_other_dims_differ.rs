// Joining along the features (dim 1) needs the same number of positions:
// 8 and 6 differ.
kiln::network! {
    pub struct Join {
        input a: [8, 16],
        input b: [6, 4],
        output concat(a, b, dim = 1);
    }
}

fn main() {}
