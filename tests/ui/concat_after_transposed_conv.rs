// An encoder–decoder skip: the stride-2 transposed convolution gives 7×7 from
// 4×4, one short of the 8×8 skip, so the concatenation fails; the message
// names the layer and the `output_padding` that would fix it.
kiln::network! {
    pub struct Skip {
        input x: [4, 8, 8],
        let d = x |> down: Conv2d(4, kernel = 3, stride = 2, padding = 1);
        let u = d |> up: ConvTranspose2d(4, kernel = 3, stride = 2, padding = 1);
        output y = concat(u, x);
    }
}

fn main() {}
