// A naming mistake (a misspelt layer) and a shape mistake (a declared input
// width that does not match) in one network: one build reports both.
kiln::network! {
    pub struct Both {
        input x: [784],
        let h = x |> Lienar(256);
        let y = x |> fc: Linear(100, 10);
        output y,
    }
}

fn main() {}
