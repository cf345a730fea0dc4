// `max_over_time` pools `[T, F]`; an image `[C, H, W]` is not a sequence.
kiln::network! {
    pub struct Net {
        input: [3, 8, 8],
        max_over_time,
        fc: Linear(4),
    }
}

fn main() {}
