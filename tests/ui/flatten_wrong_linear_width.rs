// LeNet-5: the second pool leaves 16×5×5 = 400 features, not 401.
kiln::network! {
    pub struct LeNet {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5),
        relu,
        pool2: MaxPool2d(2),
        flatten,
        fc1: Linear(401, 120),
        relu,
        fc2: Linear(84),
        relu,
        fc3: Linear(10),
    }
}

fn main() {}
