// A masked convolution's mask is defined around the kernel's centre pixel:
// a side of even size has none.
kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        c1: MaskedConv2d(16, kernel = (3, 4), mask = "B", padding = 1),
    }
}

fn main() {}
