//! Element types: `f32` and `f64` (anything `num_traits::Float` that a device supports).

use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A plain value that a device buffer can hold (floats and `u32` labels or indices).
pub trait Scalar: Copy + Default + Debug + PartialEq + Send + Sync + 'static {
    /// The name used in kernel symbols (`f32`, `f64`, `u32`).
    const NAME: &'static str;
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";
}
impl Scalar for f64 {
    const NAME: &'static str = "f64";
}
impl Scalar for u32 {
    const NAME: &'static str = "u32";
}

/// A floating-point element type of tensors.
pub trait Elem: Scalar + Float + FromPrimitive + ToPrimitive + Display + Sum {
    /// Converts from `f64` (rounding for `f32`).
    fn of(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn f64(self) -> f64;
    /// The error function `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt` in this precision
    /// (`libm`'s `erff`/`erf`; `num_traits::Float` has none).
    fn erf(self) -> Self;
}

impl Elem for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erff(self)
    }
}
impl Elem for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}
