// `PReLU(C)` has one slope per channel, the first per-sample dimension: the
// convolution gives 6 channels, not 8.
kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        act: PReLU(8),
        flatten,
        fc: Linear(10),
    }
}

fn main() {}
