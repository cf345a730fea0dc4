// 4 groups cannot split the 6 channels that `conv1` produces.
kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        conv2: Conv2d(16, kernel = 3, groups = 4),
        flatten,
        fc: Linear(10),
    }
}

fn main() {}
