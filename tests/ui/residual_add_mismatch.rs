// A residual addition of a [32] branch onto a [16] input.
kiln::network! {
    pub struct Res {
        input x: [16],
        let h = x |> Linear(32) |> relu;
        output y = h + x;
    }
}

fn main() {}
