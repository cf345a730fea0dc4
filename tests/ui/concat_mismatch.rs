// Concatenation along channels of feature maps whose spatial sizes differ.
kiln::network! {
    pub struct Skip {
        input a: [3, 8, 8],
        input b: [2, 4, 4],
        output y = concat(a, b) |> flatten |> Linear(10);
    }
}

fn main() {}
