//! Visualisation from gradients (lesson 7): Grad-CAM, its bilinear
//! upsampling, and heat maps drawn over grey images as PNG.
//!
//! The gradients come from a generated network's `backward_from` and the
//! activations from `tape.activation(name)` ([`crate::input_grad`]).
//!
//! **Grad-CAM** (Selvaraju et al. 2017) for class `c` at a convolution's
//! output `A` (`K` channels of `H × W`), with `g = ∂y_c/∂A` (`y_c` the class
//! score before the softmax):
//!
//! * channel weights `α_k = (1/HW) Σ_ij g[k, i, j]` (global average pooling
//!   of the gradient);
//! * the map `L = ReLU(Σ_k α_k A[k])`, `H × W`;
//! * bilinearly upsampled to the image ([`upsample_bilinear`]: PyTorch's
//!   `F.interpolate(mode='bilinear', align_corners=False)`).
//!
//! **Guided Grad-CAM** is the element-wise product of the guided
//! backpropagation map (the input gradient with [`crate::GradMode::Guided`])
//! and the upsampled Grad-CAM map.

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::input_grad::NodeData;

/// A one-channel map of `h × w` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// `h·w` values.
    pub data: Vec<f32>,
}

/// The Grad-CAM map of sample `b` (see the module doc) from a convolution's
/// activation `act` and the gradient `grad` of a class score at it (both
/// `[K, H, W]` per sample, as `tape.activation(name)` and
/// `tape.gradient(name)` return them). Nonnegative, `H × W`.
pub fn grad_cam<E: Elem>(act: &NodeData<E>, grad: &NodeData<E>, b: usize) -> Result<Map> {
    let (k, h, w) = match act.dims {
        [k, h, w] => (*k, *h, *w),
        d => {
            return Err(Error::invalid(
                "grad_cam",
                format!("node `{}` has shape {d:?}; Grad-CAM needs a [channels, height, width] map (a convolution's output)", act.name),
            ))
        }
    };
    if grad.dims != act.dims {
        return Err(Error::invalid(
            "grad_cam",
            format!(
                "the gradient at `{}` has shape {:?}, the activation at `{}` {:?}",
                grad.name, grad.dims, act.name, act.dims
            ),
        ));
    }
    let (a, g) = (act.sample(b)?, grad.sample(b)?);
    let plane = h * w;
    let mut data = vec![0.0f64; plane];
    for c in 0..k {
        let gc = &g[c * plane..(c + 1) * plane];
        let alpha = gc.iter().map(|v| v.f64()).sum::<f64>() / plane as f64;
        for (d, v) in data.iter_mut().zip(&a[c * plane..(c + 1) * plane]) {
            *d += alpha * v.f64();
        }
    }
    Ok(Map {
        h,
        w,
        data: data.iter().map(|&v| v.max(0.0) as f32).collect(),
    })
}

/// Bilinear resampling of `map` to `oh × ow`, as PyTorch's
/// `F.interpolate(mode='bilinear', align_corners=False)`: output pixel `i`
/// samples the source at `(i + ½)·(h/oh) − ½`, clamped to the first row
/// and column (and so to the last), between the four nearest values.
pub fn upsample_bilinear(map: &Map, oh: usize, ow: usize) -> Result<Map> {
    if map.h == 0 || map.w == 0 || map.data.len() != map.h * map.w {
        return Err(Error::invalid(
            "upsample_bilinear",
            format!(
                "a {}×{} map needs {} values, it has {}",
                map.h,
                map.w,
                map.h * map.w,
                map.data.len()
            ),
        ));
    }
    let src = |i: usize, n_in: usize, n_out: usize| -> (usize, usize, f32) {
        let s = ((i as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, s - i0 as f32)
    };
    let mut data = Vec::with_capacity(oh * ow);
    for r in 0..oh {
        let (r0, r1, fr) = src(r, map.h, oh);
        for c in 0..ow {
            let (c0, c1, fc) = src(c, map.w, ow);
            let at = |r: usize, c: usize| map.data[r * map.w + c];
            let top = at(r0, c0) * (1.0 - fc) + at(r0, c1) * fc;
            let bottom = at(r1, c0) * (1.0 - fc) + at(r1, c1) * fc;
            data.push(top * (1.0 - fr) + bottom * fr);
        }
    }
    Ok(Map { h: oh, w: ow, data })
}

/// `v / max|v|` (all zeros stay zeros): a map scaled to `[0, 1]` (or
/// `[−1, 1]` for signed maps) for display.
pub fn scale_to_unit(v: &[f32]) -> Vec<f32> {
    let m = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if m > 0.0 {
        v.iter().map(|x| x / m).collect()
    } else {
        v.to_vec()
    }
}

/// The "jet" colour map at `t ∈ [0, 1]` (blue → cyan → yellow → red).
pub fn jet(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let ch = |x: f32| ((1.5 - (4.0 * t - x).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [ch(3.0), ch(2.0), ch(1.0)]
}

/// RGB pixels (`3·w·h` bytes) of a heat map `heat` (values in `[0, 1]`)
/// drawn over the grey image `grey` (values in `[0, 1]`, same size):
/// `(1 − a)·grey + a·jet(heat)`, `a = alpha·heat` (the colour shows where
/// the map is high, the digit elsewhere).
pub fn overlay(grey: &[f32], heat: &[f32], alpha: f32) -> Result<Vec<u8>> {
    if grey.len() != heat.len() {
        return Err(Error::invalid(
            "overlay",
            format!(
                "the image has {} pixels, the heat map {}",
                grey.len(),
                heat.len()
            ),
        ));
    }
    Ok(grey
        .iter()
        .zip(heat)
        .flat_map(|(&g, &h)| {
            let (g, h) = (g.clamp(0.0, 1.0) * 255.0, h.clamp(0.0, 1.0));
            let a = alpha * h;
            jet(h).map(|c| ((1.0 - a) * g + a * c as f32).round() as u8)
        })
        .collect())
}

/// RGB pixels of a signed map (values in `[−1, 1]`): red for positive, blue
/// for negative, white at 0 (for input gradients).
pub fn diverging(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| {
            let x = x.clamp(-1.0, 1.0);
            let fade = |a: f32| (255.0 * (1.0 - a)).round() as u8;
            if x >= 0.0 {
                [255, fade(x), fade(x)]
            } else {
                [fade(-x), fade(-x), 255]
            }
        })
        .collect()
}

/// Tiles of `w × h` RGB pixels laid out `cols` to a row (a 1-pixel white
/// border between them), scaled up `zoom` times (nearest), written as a PNG
/// at `path` (feature `plot`, which holds the PNG encoder).
#[cfg(feature = "plot")]
pub fn write_tiles(
    path: impl AsRef<std::path::Path>,
    tiles: &[Vec<u8>],
    w: usize,
    h: usize,
    cols: usize,
    zoom: usize,
) -> Result<()> {
    let path = path.as_ref();
    if let Some(t) = tiles.iter().find(|t| t.len() != 3 * w * h) {
        return Err(Error::LengthMismatch {
            what: format!("write_tiles {}", path.display()),
            expected: 3 * w * h,
            shape: format!("{w}×{h} RGB pixels"),
            got: t.len(),
        });
    }
    let (cols, zoom) = (cols.clamp(1, tiles.len().max(1)), zoom.max(1));
    let rows = tiles.len().div_ceil(cols);
    let (tw, th) = (w * zoom + 1, h * zoom + 1);
    let (iw, ih) = (cols * tw + 1, rows * th + 1);
    let mut rgb = vec![255u8; iw * ih * 3];
    for (i, t) in tiles.iter().enumerate() {
        let (x0, y0) = ((i % cols) * tw + 1, (i / cols) * th + 1);
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                let s = 3 * ((y / zoom) * w + x / zoom);
                let d = 3 * ((y0 + y) * iw + x0 + x);
                rgb[d..d + 3].copy_from_slice(&t[s..s + 3]);
            }
        }
    }
    std::fs::write(
        path,
        crate::train::plot::encode_png(iw as u32, ih as u32, &rgb),
    )
    .map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch: `F.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]),
    /// size=4, mode='bilinear', align_corners=False)`.
    #[test]
    fn bilinear_matches_pytorch() {
        let m = Map {
            h: 2,
            w: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        let up = upsample_bilinear(&m, 4, 4).unwrap();
        assert_eq!(
            up.data,
            [
                1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75,
                4.0
            ]
        );
        // Same size: the identity.
        assert_eq!(upsample_bilinear(&m, 2, 2).unwrap(), m);
    }

    /// α = channel means of the gradient, ReLU of the weighted sum.
    #[test]
    fn grad_cam_worked_example() {
        let act = NodeData {
            name: "conv",
            dims: &[2, 1, 2],
            batch: 1,
            data: vec![1.0f64, 3.0, 4.0, 0.0],
        };
        // α = (0.5, −1): 0.5·[1, 3] − [4, 0] = [−3.5, 1.5] → ReLU [0, 1.5].
        let grad = NodeData {
            name: "conv",
            dims: &[2, 1, 2],
            batch: 1,
            data: vec![0.0, 1.0, -1.0, -1.0],
        };
        let m = grad_cam(&act, &grad, 0).unwrap();
        assert_eq!((m.h, m.w, m.data), (1, 2, vec![0.0, 1.5]));
        let flat = NodeData {
            name: "fc",
            dims: &[4],
            batch: 1,
            data: vec![0.0; 4],
        };
        let e = grad_cam(&flat, &flat, 0).unwrap_err().to_string();
        assert!(e.contains("`fc` has shape [4]"), "{e}");
        assert!(grad_cam(&act, &grad, 1).is_err());
    }

    #[test]
    fn colours_and_overlay() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        // No heat: the grey pixel; full heat at alpha 1: the colour.
        assert_eq!(overlay(&[0.5], &[0.0], 0.6).unwrap(), [128, 128, 128]);
        assert_eq!(overlay(&[0.5], &[1.0], 1.0).unwrap(), [128, 0, 0]);
        assert_eq!(
            diverging(&[1.0, -1.0, 0.0]),
            [255, 0, 0, 0, 0, 255, 255, 255, 255]
        );
        assert_eq!(scale_to_unit(&[2.0, -4.0]), [0.5, -1.0]);
    }
}
