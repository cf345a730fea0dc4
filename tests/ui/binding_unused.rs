// `skip` is computed but reaches no output.
kiln::network! {
    pub struct Net {
        input x: [8],
        let h = x |> Linear(8) |> relu;
        let skip = x |> Linear(8);
        output h;
    }
}

fn main() {}
