// A 2×2 pool with stride 2 over 15 rows rounds down to 7; the stride-2 1×1
// convolution beside it gives 8, so the sum cannot be formed. The message
// says how the pool got 7.
kiln::network! {
    pub struct Halves {
        input x: [3, 15, 15],
        let p = x |> pool: MaxPool2d(2);
        let c = x |> conv: Conv2d(3, kernel = 1, stride = 2);
        output y = p + c;
    }
}

fn main() {}
