// `h` is read one line before its `let`.
kiln::network! {
    pub struct Net {
        input x: [8],
        let y = h |> relu;
        let h = x |> Linear(8);
        output y;
    }
}

fn main() {}
