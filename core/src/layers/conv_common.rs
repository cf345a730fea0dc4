//! Pieces shared by [`super::Conv2d`] and [`super::ConvTranspose2d`]: the
//! three grouped GEMMs of a convolution, the batch chunking that bounds the
//! im2col buffer, the bias initialiser, and a parameter-free `Module` impl.
//!
//! A convolution with weight `W` of shape `[co, kg]` (`kg = ci/groups · kh · kw`
//! rows of the im2col matrix per group) and an im2col matrix `cols` of
//! `groups · kg` rows and `n` columns (samples side by side) needs, per group
//! `g` (rows `g·co/groups ..` of `W` and of the outputs, rows `g·kg ..` of `cols`):
//!
//! * [`gemm_out`]: `out[co, n] = W · cols` (forward);
//! * [`gemm_cols`]: `cols = Wᵀ · dout` (input gradient before `col2im`);
//! * [`gemm_weight`]: `dW (acc)= dout · colsᵀ` (weight gradient, summed over
//!   the `n` columns, so over the samples of the chunk).

use crate::device::{Acc, Backend, Gemm};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::shape::{Shape, S1};
use crate::tensor::Tensor;
use crate::Rng;

/// Elements of the im2col buffer a convolution may use (16 MiB of f32): the
/// batch is processed in chunks of samples whose columns fit. When the whole
/// batch fits, the backward pass reuses the forward pass's columns.
pub(crate) const COLS_BUDGET: usize = 1 << 22;

/// A sample with at least this many im2col elements (256 KiB of f32, half an
/// L2 cache) is a chunk of its own: `im2col` writes its columns and the GEMM
/// reads them while they are still in cache, and the GEMMs read and write
/// the NCHW tensors in place (no transposes; see `Conv2d`).
pub(crate) const IN_PLACE_MIN: usize = 1 << 16;

/// Samples per chunk for `per_sample` im2col elements per sample.
pub(crate) fn chunk(budget: usize, batch: usize, per_sample: usize) -> usize {
    if per_sample >= IN_PLACE_MIN {
        return 1;
    }
    (budget / per_sample.max(1)).clamp(1, batch.max(1))
}

/// Sizes of one grouped convolution product (see the module doc).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grouped {
    pub groups: usize,
    /// Output channels (rows of `W`).
    pub co: usize,
    /// im2col rows per group (columns of `W`).
    pub kg: usize,
}

impl Grouped {
    fn cog(&self) -> usize {
        self.co / self.groups
    }
}

/// `out[off.., co, n] = W[co, kg] · cols[g·kg.., n]` per group.
pub(crate) fn gemm_out<E: Elem, D: Backend<E>>(
    dev: &D,
    s: Grouped,
    n: usize,
    w: &D::Buf<E>,
    cols: &D::Buf<E>,
    out: &mut D::Buf<E>,
    off: usize,
) -> Result<()> {
    let cog = s.cog();
    for g in 0..s.groups {
        let mut p = Gemm::dense(cog, n, s.kg, false, false);
        p.a_off = g * cog * s.kg;
        p.b_off = g * s.kg * n;
        p.c_off = off + g * cog * n;
        dev.gemm(&p, w, cols, out)?;
    }
    Ok(())
}

/// `cols[g·kg.., n] = W[co, kg]ᵀ · dout[off.., co, n]` per group.
pub(crate) fn gemm_cols<E: Elem, D: Backend<E>>(
    dev: &D,
    s: Grouped,
    n: usize,
    w: &D::Buf<E>,
    dout: &D::Buf<E>,
    cols: &mut D::Buf<E>,
    off: usize,
) -> Result<()> {
    let cog = s.cog();
    for g in 0..s.groups {
        let mut p = Gemm::dense(s.kg, n, cog, true, false);
        p.a_off = g * cog * s.kg;
        p.b_off = off + g * cog * n;
        p.c_off = g * s.kg * n;
        dev.gemm(&p, w, dout, cols)?;
    }
    Ok(())
}

/// `dW[co, kg] (acc)= dout[off.., co, n] · cols[g·kg.., n]ᵀ` per group.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_weight<E: Elem, D: Backend<E>>(
    dev: &D,
    s: Grouped,
    n: usize,
    dout: &D::Buf<E>,
    cols: &D::Buf<E>,
    dw: &mut D::Buf<E>,
    acc: Acc,
    off: usize,
) -> Result<()> {
    let cog = s.cog();
    for g in 0..s.groups {
        let mut p = Gemm::dense(cog, s.kg, n, false, true).acc(acc);
        p.a_off = off + g * cog * n;
        p.b_off = g * s.kg * n;
        p.c_off = g * cog * s.kg;
        dev.gemm(&p, dout, cols, dw)?;
    }
    Ok(())
}

/// Checks `groups` against the channel counts: `ci = groups · cig` (the
/// per-group count in the weight's type) and `groups` divides `co`.
pub(crate) fn check_groups(
    op: &'static str,
    groups: usize,
    ci: usize,
    cig: usize,
    co: usize,
) -> Result<()> {
    if groups == 0 || ci != groups * cig || !co.is_multiple_of(groups) {
        return Err(Error::invalid(
            op,
            format!(
                "groups = {groups} must divide both the {ci} and the {co} channels, with {cig} of the {ci} per group in the weight"
            ),
        ));
    }
    Ok(())
}

/// A bias of `C` values: PyTorch draws it from `U(−1/√fan_in, 1/√fan_in)` of
/// the weight (`fan_dims`) under its default initialiser; the course's
/// initialisers start it at zero.
pub(crate) fn init_bias<E: Elem, D: Backend<E>, const C: usize>(
    dev: &D,
    rng: &mut Rng,
    init: Init,
    fan_dims: &[usize],
) -> Result<Tensor<S1<C>, E, D>> {
    if init == Init::TorchDefault {
        Init::TorchDefault.tensor_with_fans::<S1<C>, E, D>(dev, rng, fan_dims)
    } else {
        Tensor::zeros(dev, 1)
    }
}

/// Readies an input-gradient buffer for `batch` samples: sized for `Set`,
/// checked for `Add` (accumulating into a gradient of another batch is an error).
pub(crate) fn prepare_dx<S: Shape, E: Elem, D: Backend<E>>(
    dx: &mut Tensor<S, E, D>,
    acc: Acc,
    batch: usize,
) -> Result<()> {
    match acc {
        Acc::Set => dx.set_batch(batch),
        Acc::Add => crate::error::check_batch(
            "gradient accumulation",
            "gradient",
            batch,
            "destination",
            dx.batch(),
        ),
    }
}

/// Fails unless `a` and `b` hold the same number of samples.
pub(crate) fn same_batch<A: Shape, B: Shape, E: Elem, D: Backend<E>>(
    op: &'static str,
    x: &Tensor<A, E, D>,
    dy: &Tensor<B, E, D>,
) -> Result<()> {
    crate::error::check_batch(op, "input", x.batch(), "output gradient", dy.batch())
}

/// Implements [`crate::Module`] for a parameter-free layer whose generics are
/// all `const … : usize`.
macro_rules! no_params_const {
    ($ty:ident < $($g:ident),* >) => {
        impl<E: $crate::Elem, D: $crate::Backend<E>, $(const $g: usize),*> $crate::Module<E, D> for $ty<$($g),*> {
            type Grads = ();
            fn grads(&self) -> $crate::Result<()> {
                Ok(())
            }
            fn visit(&self, _: &$crate::Path<'_>, _: &mut dyn FnMut(&$crate::Path<'_>, $crate::ParamRef<'_, E, D>)) {}
            fn visit_grads(
                &mut self,
                _: &(),
                _: &$crate::Path<'_>,
                _: &mut dyn FnMut(&$crate::Path<'_>, $crate::ParamMut<'_, E, D>),
            ) {
            }
            fn visit_mut(
                &mut self,
                _: &$crate::Path<'_>,
                _: &mut dyn FnMut(&$crate::Path<'_>, $crate::ParamMut<'_, E, D>, $crate::Role),
            ) {
            }
        }
    };
}
pub(crate) use no_params_const;
