//! Per-sample shapes as types.
//!
//! A tensor's type carries the shape of one sample (`S3<1, 28, 28>` for a
//! grayscale image, `S1<10>` for ten logits); the batch dimension is a run-time
//! number in front of it. Dimensions are const generic arguments: numbers
//! the `network!` macro computed at expansion time, or named constants and
//! generic parameters it passed through (`S2<{ T }, 16>`); the compiler
//! evaluates them, so its errors print them plainly: "expected
//! `Tensor<S1<784>>`, found `Tensor<S1<400>>`".

use std::fmt::Debug;

/// The shape of one sample: rank, dimensions and element count as constants.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a kiln shape",
    label = "expected a shape such as `S1<10>` or `S3<1, 28, 28>`"
)]
pub trait Shape: Copy + Default + Debug + Send + Sync + 'static {
    /// Number of per-sample dimensions.
    const RANK: usize;
    /// The dimensions, outermost first (row-major, PyTorch's order).
    const DIMS: &'static [usize];
    /// Number of elements of one sample.
    const NUMEL: usize;
}

macro_rules! shape {
    ($(#[$m:meta])* $name:ident, $rank:literal, $($d:ident),+) => {
        $(#[$m])*
        #[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
        pub struct $name<$(const $d: usize),+>;
        impl<$(const $d: usize),+> Shape for $name<$($d),+> {
            const RANK: usize = $rank;
            const DIMS: &'static [usize] = &[$($d),+];
            const NUMEL: usize = 1 $(* $d)+;
        }
    };
}

shape!(
    /// A vector of `A` features.
    S1, 1, A
);
shape!(
    /// An `A × B` matrix (a sequence of `A` steps of `B` features, or a weight).
    S2, 2, A, B
);
shape!(
    /// `A` channels of `B × C` (an image in CHW order).
    S3, 3, A, B, C
);
shape!(
    /// A rank-4 block (a convolution kernel in PyTorch's `[out, in, kh, kw]`).
    S4, 4, A, B, C, D
);

/// The per-sample dimensions in front of the last one, for layers that act
/// on the last dimension at every position (PyTorch's `nn.Linear` on
/// `[T, D]`): `()` for none (a vector), `S1<T>` for a sequence `[T, D]`,
/// `S2<A, T>`, `S3<A, B, T>`. `Shaped<N>` is the whole shape with last
/// dimension `N`; `ROWS` is how many positions one sample holds.
pub trait Lead: Copy + Default + Debug + Send + Sync + 'static {
    /// The shape `[lead…, N]`.
    type Shaped<const N: usize>: Shape;
    /// Positions per sample (the product of the leading dimensions).
    const ROWS: usize;
}

impl Lead for () {
    type Shaped<const N: usize> = S1<N>;
    const ROWS: usize = 1;
}

impl<const A: usize> Lead for S1<A> {
    type Shaped<const N: usize> = S2<A, N>;
    const ROWS: usize = A;
}

impl<const A: usize, const B: usize> Lead for S2<A, B> {
    type Shaped<const N: usize> = S3<A, B, N>;
    const ROWS: usize = A * B;
}

impl<const A: usize, const B: usize, const C: usize> Lead for S3<A, B, C> {
    type Shaped<const N: usize> = S4<A, B, C, N>;
    const ROWS: usize = A * B * C;
}

/// Formats dimensions like `[16, 5, 5]`.
pub fn fmt_dims(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(S3::<1, 28, 28>::NUMEL, 784);
        assert_eq!(S3::<1, 28, 28>::DIMS, &[1, 28, 28]);
        assert_eq!(S2::<3, 4>::RANK, 2);
        assert_eq!(fmt_dims(S4::<16, 6, 5, 5>::DIMS), "[16, 6, 5, 5]");
        assert_eq!(<S1<7> as Lead>::Shaped::<3>::DIMS, &[7, 3]);
        assert_eq!(<S2<2, 7> as Lead>::ROWS, 14);
        assert_eq!(<() as Lead>::Shaped::<3>::DIMS, &[3]);
    }
}
