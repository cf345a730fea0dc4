// PixelCNN's masks are type A (first layer) and type B; anything else is
// refused where it is written.
kiln::network! {
    pub struct Net {
        input: [1, 28, 28],
        c1: MaskedConv2d(16, kernel = 7, mask = "C", padding = 3),
    }
}

fn main() {}
