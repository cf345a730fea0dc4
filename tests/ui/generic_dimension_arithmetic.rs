// `flatten` would need T × 16 features, arithmetic on a const generic
// parameter that stable Rust cannot put in a type.
kiln::network! {
    pub struct SeqClassifier<const T: usize> {
        input: [T, 16],
        fc: Linear(8),
        flatten,
        head: Linear(2),
    }
}

fn main() {}
