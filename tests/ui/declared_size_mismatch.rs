// `Linear(in, out)` declares its input width; here it disagrees with what
// `flatten` produces from [16, 5, 5].
kiln::network! {
    pub struct Head {
        input: [16, 5, 5],
        flatten,
        fc1: Linear(401, 120),
        relu,
        fc2: Linear(10),
    }
}

fn main() {}
