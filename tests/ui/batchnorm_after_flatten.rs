// `BatchNorm2d` normalises the channels of an image; after `flatten` the
// features need `BatchNorm1d`.
kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        pool1: MaxPool2d(2),
        flatten,
        bn: BatchNorm2d,
        fc: Linear(10),
    }
}

fn main() {}
