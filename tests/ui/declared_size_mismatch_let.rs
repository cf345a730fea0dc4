// A binding's declared shape disagrees with the shape of its expression.
kiln::network! {
    pub struct Encoder {
        input x: [784],
        let h: [128] = x |> Linear(256);
        output h |> relu;
    }
}

fn main() {}
