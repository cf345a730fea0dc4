//! Graph operations with several inputs, called by `network!`'s generated code:
//! residual addition and concatenation.
//!
//! * **add** `y = a + b` (same shape); backward `∂L/∂a = ∂L/∂b = ∂L/∂y`.
//! * **concat** along the first per-sample dimension (features of a vector,
//!   channels of an image): part `i` occupies the `offset_i .. offset_i + numel_i`
//!   slice of each output sample; backward hands each part its slice of `∂L/∂y`.
//! * **concat along dimension `k`** (`concat(a, b, dim = 1)` on `[T, D]`):
//!   a sample is `outer` blocks, `outer` the product of the dimensions before
//!   `k`; part `i`'s block `o` (its `n_i·inner` values, `inner` the product
//!   after `k`) lands at `offset_i` in output block `o`. Forward and backward
//!   are the same strided copies as along the first dimension, with
//!   `batch·outer` rows.
//!
//! Gradients go through [`Acc`], so a tensor consumed by several operations
//! receives the sum of their gradients.

use crate::device::{Acc, Backend, Block};
use crate::elem::Elem;
use crate::error::{check_batch, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// `y = a + b`.
pub fn add_fwd<S: Shape, E: Elem, D: Backend<E>>(
    a: &Tensor<S, E, D>,
    b: &Tensor<S, E, D>,
    y: &mut Tensor<S, E, D>,
) -> Result<()> {
    check_batch("add", "left operand", a.batch(), "right operand", b.batch())?;
    y.set_batch(a.batch())?;
    a.device().add(&a.buf, &b.buf, &mut y.buf, a.numel())
}

/// `dx (acc)= dy` for a tensor that reaches its consumer unchanged (an
/// identity edge, an output that is also read by a layer).
pub fn pass_grad<S: Shape, E: Elem, D: Backend<E>>(
    dy: &Tensor<S, E, D>,
    dx: &mut Tensor<S, E, D>,
    acc: Acc,
) -> Result<()> {
    if acc == Acc::Set {
        dx.set_batch(dy.batch())?;
    } else {
        check_batch(
            "gradient accumulation",
            "gradient",
            dy.batch(),
            "destination",
            dx.batch(),
        )?;
    }
    dy.device()
        .axpy(E::one(), &dy.buf, &mut dx.buf, dy.numel(), acc)
}

/// Writes `part` into its slice of each sample of `y`, starting at `offset`
/// values into the sample. The caller sizes `y` first ([`concat_begin`]).
pub fn concat_fwd<P: Shape, S: Shape, E: Elem, D: Backend<E>>(
    part: &Tensor<P, E, D>,
    y: &mut Tensor<S, E, D>,
    offset: usize,
) -> Result<()> {
    check_batch("concat", "part", part.batch(), "output", y.batch())?;
    let block = Block {
        rows: part.batch(),
        cols: P::NUMEL,
        src_ld: P::NUMEL,
        src_off: 0,
        dst_ld: S::NUMEL,
        dst_off: offset,
    };
    part.device()
        .copy_block(&block, &part.buf, &mut y.buf, Acc::Set)
}

/// The block copy of one part of a concatenation along a dimension that
/// leaves `outer` blocks per sample: rows of the part are `P::NUMEL / outer`
/// values, rows of the output `S::NUMEL / outer`.
fn along<P: Shape, S: Shape>(batch: usize, outer: usize, offset: usize) -> Result<Block> {
    if outer == 0 || P::NUMEL % outer != 0 || S::NUMEL % outer != 0 {
        return Err(crate::Error::InvalidArgument {
            op: "concat",
            msg: format!(
                "{outer} blocks per sample do not divide a part of {} values and an output of {}",
                P::NUMEL,
                S::NUMEL
            ),
        });
    }
    let (cols, ld) = (P::NUMEL / outer, S::NUMEL / outer);
    if offset + cols > ld {
        return Err(crate::Error::InvalidArgument {
            op: "concat",
            msg: format!("a block of {cols} values at {offset} overruns an output block of {ld}"),
        });
    }
    Ok(Block {
        rows: batch * outer,
        cols,
        src_ld: cols,
        src_off: 0,
        dst_ld: ld,
        dst_off: offset,
    })
}

/// [`concat_fwd`] along an inner dimension: each sample of `part` is `outer`
/// blocks, block `o` written at `offset` values into block `o` of the
/// sample of `y`.
pub fn concat_fwd_along<P: Shape, S: Shape, E: Elem, D: Backend<E>>(
    part: &Tensor<P, E, D>,
    y: &mut Tensor<S, E, D>,
    outer: usize,
    offset: usize,
) -> Result<()> {
    check_batch("concat", "part", part.batch(), "output", y.batch())?;
    let block = along::<P, S>(part.batch(), outer, offset)?;
    part.device()
        .copy_block(&block, &part.buf, &mut y.buf, Acc::Set)
}

/// Backward of [`concat_fwd_along`]: `∂L/∂part (acc)=` its blocks of
/// `∂L/∂y`, into an optional destination (skipped when `None`).
pub fn concat_bwd_along_to<P: Shape, S: Shape, E: Elem, D: Backend<E>>(
    dy: &Tensor<S, E, D>,
    outer: usize,
    offset: usize,
    dst: Option<(&mut Tensor<P, E, D>, Acc)>,
) -> Result<()> {
    let Some((dpart, acc)) = dst else {
        return Ok(());
    };
    if acc == Acc::Set {
        dpart.set_batch(dy.batch())?;
    }
    let b = along::<P, S>(dy.batch(), outer, offset)?;
    // The forward block with source and destination swapped.
    let block = Block {
        rows: b.rows,
        cols: b.cols,
        src_ld: b.dst_ld,
        src_off: b.dst_off,
        dst_ld: b.src_ld,
        dst_off: 0,
    };
    dy.device().copy_block(&block, &dy.buf, &mut dpart.buf, acc)
}

/// Sizes the output of a concatenation for `batch` samples.
pub fn concat_begin<S: Shape, E: Elem, D: Backend<E>>(
    y: &mut Tensor<S, E, D>,
    batch: usize,
) -> Result<()> {
    y.set_batch(batch)
}

/// Backward of one part: `∂L/∂part (acc)=` its slice of `∂L/∂y`.
pub fn concat_bwd<P: Shape, S: Shape, E: Elem, D: Backend<E>>(
    dy: &Tensor<S, E, D>,
    offset: usize,
    dpart: &mut Tensor<P, E, D>,
    acc: Acc,
) -> Result<()> {
    if acc == Acc::Set {
        dpart.set_batch(dy.batch())?;
    }
    let block = Block {
        rows: dy.batch(),
        cols: P::NUMEL,
        src_ld: S::NUMEL,
        src_off: offset,
        dst_ld: P::NUMEL,
        dst_off: 0,
    };
    dy.device().copy_block(&block, &dy.buf, &mut dpart.buf, acc)
}

/// Reborrows an optional gradient destination; contributions after the first
/// always add (`first` is false for them).
pub fn reborrow<'a, S: Shape, E: Elem, D: Backend<E>>(
    d: &'a mut Option<(&mut Tensor<S, E, D>, Acc)>,
    first: bool,
) -> Option<(&'a mut Tensor<S, E, D>, Acc)> {
    d.as_mut()
        .map(|(t, a)| (&mut **t, if first { *a } else { Acc::Add }))
}

/// [`pass_grad`] into an optional destination (skipped when `None`).
pub fn pass_grad_to<S: Shape, E: Elem, D: Backend<E>>(
    dy: &Tensor<S, E, D>,
    dst: Option<(&mut Tensor<S, E, D>, Acc)>,
) -> Result<()> {
    match dst {
        Some((dx, acc)) => pass_grad(dy, dx, acc),
        None => Ok(()),
    }
}

/// [`concat_bwd`] into an optional destination (skipped when `None`).
pub fn concat_bwd_to<P: Shape, S: Shape, E: Elem, D: Backend<E>>(
    dy: &Tensor<S, E, D>,
    offset: usize,
    dst: Option<(&mut Tensor<P, E, D>, Acc)>,
) -> Result<()> {
    match dst {
        Some((dp, acc)) => concat_bwd(dy, offset, dp, acc),
        None => Ok(()),
    }
}

/// Anomaly detection: fails with [`crate::Error::NonFinite`] naming `layer`
/// and `pass` when `t` holds a NaN or an infinity (copies `t` to the host;
/// called only when [`crate::TrainCtx::detect_anomaly`] is on).
pub fn check_finite<S: Shape, E: Elem, D: Backend<E>>(
    t: &Tensor<S, E, D>,
    layer: &str,
    pass: &str,
) -> Result<()> {
    match t
        .to_vec()?
        .into_iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
    {
        None => Ok(()),
        Some((i, v)) => Err(crate::Error::NonFinite {
            what: format!(
                "{pass} of `{layer}` (element {} of sample {})",
                i % S::NUMEL,
                i / S::NUMEL
            ),
            value: v.f64(),
        }),
    }
}

/// Calls into a network declared by another `network!` invocation.
///
/// The outer macro knows the shapes it wires around the inner network (`I`
/// in, the declared `O` out) but not the inner network's own `L::In`/`L::Out`.
/// It emits one checking function that states `L::forward(&Tensor<I>, &mut
/// Tensor<O>)` — so a mismatch is a single E0308 at the layer, with both
/// shapes — and calls through these adapters, which see the tensors as the
/// inner network's types. When the checking function compiles the types are
/// equal and the downcasts cannot fail.
pub mod subnet {
    use super::*;
    use crate::error::Error;
    use crate::module::{Layer, Layer2, TrainCtx};
    use std::any::Any;

    fn cast<T: 'static, U: 'static>(t: &T) -> Result<&U> {
        (t as &dyn Any).downcast_ref::<U>().ok_or_else(mismatch)
    }
    fn cast_mut<T: 'static, U: 'static>(t: &mut T) -> Result<&mut U> {
        (t as &mut dyn Any).downcast_mut::<U>().ok_or_else(mismatch)
    }
    fn mismatch() -> Error {
        Error::invalid(
            "nested network",
            "kiln internal error: shapes differ from the checked ones",
        )
    }

    /// `L::forward` on tensors typed by the outer network.
    pub fn forward<L: Layer<E, D>, I: Shape, O: Shape, E: Elem, D: Backend<E>>(
        l: &L,
        x: &Tensor<I, E, D>,
        y: &mut Tensor<O, E, D>,
        c: &mut L::Cache,
    ) -> Result<()> {
        l.forward(cast(x)?, cast_mut(y)?, c)
    }

    /// `L::forward_train` on tensors typed by the outer network.
    pub fn forward_train<L: Layer<E, D>, I: Shape, O: Shape, E: Elem, D: Backend<E>>(
        l: &mut L,
        x: &Tensor<I, E, D>,
        y: &mut Tensor<O, E, D>,
        c: &mut L::Cache,
        ctx: &mut TrainCtx,
    ) -> Result<()> {
        l.forward_train(cast(x)?, cast_mut(y)?, c, ctx)
    }

    /// `L::backward` on tensors typed by the outer network.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<L: Layer<E, D>, I: Shape, O: Shape, E: Elem, D: Backend<E>>(
        l: &L,
        x: &Tensor<I, E, D>,
        y: &Tensor<O, E, D>,
        c: &mut L::Cache,
        dy: &Tensor<O, E, D>,
        dx: Option<(&mut Tensor<I, E, D>, Acc)>,
        g: &mut L::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let dx = match dx {
            Some((t, a)) => Some((cast_mut(t)?, a)),
            None => None,
        };
        l.backward(cast(x)?, cast(y)?, c, cast(dy)?, dx, g, gacc)
    }

    /// `L::backward_input` (a nested network's `InputGrad`) on tensors
    /// typed by the outer network.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_input<
        L: crate::input_grad::InputGrad<E, D>,
        I: Shape,
        O: Shape,
        E: Elem,
        D: Backend<E>,
    >(
        l: &L,
        x: &Tensor<I, E, D>,
        y: &Tensor<O, E, D>,
        c: &mut L::Cache,
        dy: &Tensor<O, E, D>,
        dx: Option<(&mut Tensor<I, E, D>, Acc)>,
        mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        let dx = match dx {
            Some((t, a)) => Some((cast_mut(t)?, a)),
            None => None,
        };
        l.backward_input(cast(x)?, cast(y)?, c, cast(dy)?, dx, mode)
    }

    /// `L::forward` of a two-input network on the outer network's tensors.
    pub fn forward2<L: Layer2<E, D>, I: Shape, I2: Shape, O: Shape, E: Elem, D: Backend<E>>(
        l: &L,
        x: &Tensor<I, E, D>,
        x2: &Tensor<I2, E, D>,
        y: &mut Tensor<O, E, D>,
        c: &mut L::Cache,
    ) -> Result<()> {
        l.forward(cast(x)?, cast(x2)?, cast_mut(y)?, c)
    }

    /// `L::forward_train` of a two-input network on the outer network's tensors.
    pub fn forward_train2<
        L: Layer2<E, D>,
        I: Shape,
        I2: Shape,
        O: Shape,
        E: Elem,
        D: Backend<E>,
    >(
        l: &mut L,
        x: &Tensor<I, E, D>,
        x2: &Tensor<I2, E, D>,
        y: &mut Tensor<O, E, D>,
        c: &mut L::Cache,
        ctx: &mut TrainCtx,
    ) -> Result<()> {
        l.forward_train(cast(x)?, cast(x2)?, cast_mut(y)?, c, ctx)
    }

    /// `L::backward` of a two-input network on the outer network's tensors.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub fn backward2<L: Layer2<E, D>, I: Shape, I2: Shape, O: Shape, E: Elem, D: Backend<E>>(
        l: &L,
        x: &Tensor<I, E, D>,
        x2: &Tensor<I2, E, D>,
        y: &Tensor<O, E, D>,
        c: &mut L::Cache,
        dy: &Tensor<O, E, D>,
        dx: Option<(&mut Tensor<I, E, D>, Acc)>,
        dx2: Option<(&mut Tensor<I2, E, D>, Acc)>,
        g: &mut L::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let dx = match dx {
            Some((t, a)) => Some((cast_mut(t)?, a)),
            None => None,
        };
        let dx2 = match dx2 {
            Some((t, a)) => Some((cast_mut(t)?, a)),
            None => None,
        };
        l.backward(
            cast(x)?,
            cast(x2)?,
            cast(y)?,
            c,
            cast(dy)?,
            dx,
            dx2,
            g,
            gacc,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::S1;
    use crate::Cpu;

    #[test]
    fn concat_and_split() {
        let a = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1., 2., 3., 4.]).unwrap();
        let b = Tensor::<S1<1>, f64>::from_slice(&Cpu, &[9., 8.]).unwrap();
        let mut y = Tensor::<S1<3>, f64>::empty(&Cpu).unwrap();
        concat_begin(&mut y, 2).unwrap();
        concat_fwd(&a, &mut y, 0).unwrap();
        concat_fwd(&b, &mut y, 2).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![1., 2., 9., 3., 4., 8.]);
        let mut db = Tensor::<S1<1>, f64>::empty(&Cpu).unwrap();
        concat_bwd(&y, 2, &mut db, Acc::Set).unwrap();
        concat_bwd(&y, 2, &mut db, Acc::Add).unwrap();
        assert_eq!(db.to_vec().unwrap(), vec![18., 16.]);
    }

    /// `[2, 2]` and `[2, 1]` joined along dim 1 into `[2, 3]`: each row of
    /// the output is a row of `a` then a row of `b`; the backward hands back
    /// exactly the values written.
    #[test]
    fn concat_along_an_inner_dimension() {
        use crate::shape::S2;
        let a =
            Tensor::<S2<2, 2>, f64>::from_slice(&Cpu, &[1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
        let b = Tensor::<S2<2, 1>, f64>::from_slice(&Cpu, &[9., 10., 11., 12.]).unwrap();
        let mut y = Tensor::<S2<2, 3>, f64>::empty(&Cpu).unwrap();
        concat_begin(&mut y, 2).unwrap();
        concat_fwd_along(&a, &mut y, 2, 0).unwrap();
        concat_fwd_along(&b, &mut y, 2, 2).unwrap();
        assert_eq!(
            y.to_vec().unwrap(),
            vec![1., 2., 9., 3., 4., 10., 5., 6., 11., 7., 8., 12.]
        );
        let mut da = Tensor::<S2<2, 2>, f64>::empty(&Cpu).unwrap();
        concat_bwd_along_to(&y, 2, 0, Some((&mut da, Acc::Set))).unwrap();
        assert_eq!(da.to_vec().unwrap(), a.to_vec().unwrap());
        let mut db = Tensor::<S2<2, 1>, f64>::empty(&Cpu).unwrap();
        concat_bwd_along_to(&y, 2, 2, Some((&mut db, Acc::Set))).unwrap();
        concat_bwd_along_to(&y, 2, 2, Some((&mut db, Acc::Add))).unwrap();
        assert_eq!(db.to_vec().unwrap(), vec![18., 20., 22., 24.]);
        // A block that does not fit is an error, not a panic.
        assert!(concat_fwd_along(&b, &mut y, 2, 3).is_err());
        assert!(concat_fwd_along(&b, &mut y, 3, 0).is_err());
    }

    #[test]
    fn add_checks_batches() {
        let a = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1., 2., 3., 4.]).unwrap();
        let b = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[1., 2.]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        let e = add_fwd(&a, &b, &mut y).unwrap_err();
        assert!(
            e.to_string()
                .contains("left operand has 2 samples but right operand has 1"),
            "{e}"
        );
    }
}
