// `conv1` declares 3 input channels (an RGB image) but the input is grey.
kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(3, 16, kernel = 3),
        relu,
        flatten,
        fc: Linear(10),
    }
}

fn main() {}
