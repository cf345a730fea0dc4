// A sequence `[T, D]` has dims 0 and 1 (or -2 and -1); there is no dim 2.
kiln::network! {
    pub struct Join {
        input a: [8, 16],
        input b: [8, 4],
        output concat(a, b, dim = 2);
    }
}

fn main() {}
