//! Upsampling by an integer factor (PyTorch's `nn.Upsample(scale_factor=s,
//! mode=…)`), per channel, for decoders and U-Net skips.
//!
//! With scale `(sh, sw)`, output `(r, c)`:
//!
//! * nearest: `y[r, c] = x[⌊r/sh⌋, ⌊c/sw⌋]`; backward
//!   `∂L/∂x[i, j] = Σ_{⌊r/sh⌋ = i, ⌊c/sw⌋ = j} ∂L/∂y[r, c]` (the block sum);
//! * bilinear (`align_corners=False`): the source coordinate is
//!   `u = max((r + ½)/sh − ½, 0)`, `i₀ = ⌊u⌋`, `i₁ = min(i₀ + 1, H − 1)`,
//!   `α = u − i₀` (likewise `v`, `j₀`, `j₁`, `β` for columns), and
//!   `y[r, c] = (1−α)(1−β)·x[i₀, j₀] + (1−α)β·x[i₀, j₁] + α(1−β)·x[i₁, j₀] + αβ·x[i₁, j₁]`;
//!   backward sends `∂L/∂y[r, c]` to the same four pixels with the same
//!   weights (the forward pass is linear in `x`; its adjoint is that scatter).
//!
//! Nothing is cached: the weights depend only on the sizes.
//!
//! # Shapes
//! `Upsample<C, H, W, OH, OW>`: input `S3<C, H, W>`, output `S3<C, OH, OW>`
//! with `OH = sh·H`, `OW = sw·W` (checked by [`Build::build`]).

use super::conv_common::{no_params_const, prepare_dx, same_batch};
use super::fit;
use crate::device::{Acc, Backend, Resize2d, UpsampleMode};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::UpsampleKernels;
use crate::module::{Build, Layer, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::S3;
use crate::tensor::Tensor;
use crate::Rng;

/// Options of an [`Upsample`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpsampleConfig {
    /// `(sh, sw)`, default `(2, 2)`.
    pub scale: (usize, usize),
    /// Interpolation, default nearest.
    pub mode: UpsampleMode,
}

impl Default for UpsampleConfig {
    fn default() -> Self {
        UpsampleConfig {
            scale: (2, 2),
            mode: UpsampleMode::Nearest,
        }
    }
}

/// Upsampling from `C × H × W` to `C × OH × OW` (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct Upsample<
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
> {
    mode: UpsampleMode,
}
no_params_const!(Upsample<C, H, W, OH, OW>);

impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize>
    Upsample<C, H, W, OH, OW>
{
    /// The layer, with the scale checked against the sizes in the type.
    pub fn new(cfg: UpsampleConfig) -> Result<Self> {
        let (sh, sw) = cfg.scale;
        if sh == 0 || sw == 0 || H * sh != OH || W * sw != OW {
            return Err(Error::invalid(
                "Upsample",
                format!(
                    "scale {sh}×{sw} maps {H}×{W} to {}×{}, but the layer's type says {OH}×{OW}",
                    H * sh,
                    W * sw
                ),
            ));
        }
        Ok(Upsample { mode: cfg.mode })
    }
    fn geom(&self) -> Resize2d {
        Resize2d {
            mode: self.mode,
            channels: C,
            h: H,
            w: W,
            oh: OH,
            ow: OW,
        }
    }
}

impl<
        E: Elem,
        D: Backend<E>,
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Build<E, D> for Upsample<C, H, W, OH, OW>
{
    type Config = UpsampleConfig;
    fn build(_: &D, _: &mut Rng, cfg: UpsampleConfig) -> Result<Self> {
        Self::new(cfg)
    }
}

impl<
        E: Elem,
        D: UpsampleKernels<E>,
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Layer<E, D> for Upsample<C, H, W, OH, OW>
{
    type In = S3<C, H, W>;
    type Out = S3<C, OH, OW>;
    type Cache = ();
    const FLOPS: usize = 4 * C * OH * OW;
    fn cache(&self) -> Result<()> {
        Ok(())
    }

    /// `y = upsample(x)`.
    fn forward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S3<C, OH, OW>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        fit(y, x.batch())?;
        x.device()
            .upsample2d_fwd(&self.geom(), &x.buf, &mut y.buf, x.batch())
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S3<C, OH, OW>, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }

    /// `dx (acc)=` each `dy` scattered back with its interpolation weights.
    fn backward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        _: &Tensor<S3<C, OH, OW>, E, D>,
        _: &mut (),
        dy: &Tensor<S3<C, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<C, H, W>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        same_batch("Upsample backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        x.device()
            .upsample2d_bwd(&self.geom(), &dy.buf, &mut dx.buf, x.batch(), acc)
    }
}

/// ONNX: `Resize(x, scales = [1, 1, sh, sw])`; nearest is
/// `coordinate_transformation_mode = "asymmetric"`, `nearest_mode = "floor"`
/// (`⌊r/sh⌋`), bilinear is `mode = "linear"` with `"pytorch_half_pixel"`
/// (`(r + ½)/sh − ½`, clamped at the border, as above).
impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> Onnx
    for Upsample<C, H, W, OH, OW>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let scales = g.floats(
            &join(at, "scales"),
            &[1.0, 1.0, (OH / H) as f32, (OW / W) as f32],
        )?;
        let attrs = match self.mode {
            UpsampleMode::Nearest => vec![
                graph::string("mode", "nearest"),
                graph::string("coordinate_transformation_mode", "asymmetric"),
                graph::string("nearest_mode", "floor"),
            ],
            UpsampleMode::Bilinear => vec![
                graph::string("mode", "linear"),
                graph::string("coordinate_transformation_mode", "pytorch_half_pixel"),
            ],
        };
        Ok(vec![g.op("Resize", at, &[x, "", &scales], attrs)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_layer;
    use crate::Cpu;

    fn up(mode: UpsampleMode) -> Vec<f64> {
        let x = Tensor::<S3<1, 2, 2>, f64>::from_slice(&Cpu, &[1., 2., 3., 4.]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        Upsample::<1, 2, 2, 4, 4>::new(UpsampleConfig {
            mode,
            ..Default::default()
        })
        .unwrap()
        .forward(&x, &mut y, &mut ())
        .unwrap();
        y.to_vec().unwrap()
    }

    #[test]
    fn values_match_pytorch() {
        #[rustfmt::skip]
        assert_eq!(up(UpsampleMode::Nearest), vec![
            1., 1., 2., 2.,
            1., 1., 2., 2.,
            3., 3., 4., 4.,
            3., 3., 4., 4.,
        ]);
        // torch.nn.functional.interpolate(x, scale_factor=2, mode='bilinear')
        #[rustfmt::skip]
        assert_eq!(up(UpsampleMode::Bilinear), vec![
            1.0, 1.25, 1.75, 2.0,
            1.5, 1.75, 2.25, 2.5,
            2.5, 2.75, 3.25, 3.5,
            3.0, 3.25, 3.75, 4.0,
        ]);
        assert!(Upsample::<1, 2, 2, 4, 5>::new(UpsampleConfig::default()).is_err());
    }

    #[test]
    fn gradchecks() {
        for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
            let cfg = UpsampleConfig {
                mode,
                ..Default::default()
            };
            assert!(
                check_layer(&mut Upsample::<2, 3, 4, 6, 8>::new(cfg).unwrap(), 2, 1).unwrap()
                    < 1e-6
            );
            let cfg = UpsampleConfig {
                mode,
                scale: (3, 1),
            };
            assert!(
                check_layer(&mut Upsample::<1, 2, 3, 6, 3>::new(cfg).unwrap(), 2, 2).unwrap()
                    < 1e-6
            );
            let cfg = UpsampleConfig {
                mode,
                scale: (1, 4),
            };
            assert!(
                check_layer(&mut Upsample::<3, 3, 2, 3, 8>::new(cfg).unwrap(), 2, 3).unwrap()
                    < 1e-6
            );
        }
    }
}
