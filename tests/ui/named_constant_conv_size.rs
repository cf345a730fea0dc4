// A convolution's output size is computed when the macro expands, which
// cannot see the value of a named constant.
const K: usize = 5;

kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = K),
        relu,
    }
}

fn main() {}
