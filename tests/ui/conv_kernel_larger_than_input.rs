// A 5×5 kernel does not fit the 4×4 map that `pool1` leaves of a 12×12
// image (no padding).
kiln::network! {
    pub struct Net {
        input: [1, 12, 12],
        conv1: Conv2d(6, kernel = 5),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5),
        flatten,
        fc: Linear(10),
    }
}

fn main() {}
