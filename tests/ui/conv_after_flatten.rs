// A convolution needs an image [C, H, W]; after `flatten` there is only [400].
kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5),
        relu,
        pool2: MaxPool2d(2),
        flatten,
        conv3: Conv2d(32, kernel = 3),
        fc: Linear(10),
    }
}

fn main() {}
