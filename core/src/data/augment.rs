//! Image transforms for one sample (`[C, H, W]`, row-major `f32`) and CutMix
//! for a batch, following `torchvision.transforms` (v2). Each takes its
//! random draws as arguments, so it can be checked by hand; the
//! [`super::DataLoader`] draws them from a generator seeded by the epoch and
//! batch (so a resumed run, or a background thread, sees the same numbers).
//!
//! | function | torchvision | what it does |
//! |---|---|---|
//! | [`hflip`] | `RandomHorizontalFlip` | mirrors every row |
//! | [`shift_crop`] | `RandomCrop(size, padding=p)` | pads `p` zeros on each side and cuts the original size at offset `(dy, dx) ∈ [0, 2p]²` |
//! | [`brightness`] | `ColorJitter(brightness=b)` | `x ← clamp(f·x, 0, 1)`, `f ∈ [max(0, 1−b), 1+b]` |
//! | [`contrast`] | `ColorJitter(contrast=c)` | `x ← clamp(f·x + (1−f)·m, 0, 1)`, `m` the mean grey level |
//! | [`affine`] | `RandomAffine(degrees, translate, shear)` / `F.affine` | rotation, horizontal shear, translation about the centre, bilinear, zeros outside |
//! | [`rot90`], [`rotation_task`] | `torch.rot90` | exact quarter turns; four turned copies with labels 0–3 (the rotation pretext task) |
//! | [`cutout`] | (`RandomErasing` with a fixed square) | sets a square of the image to a value |
//! | [`resized_crop`], [`resized_crop_box`] | `RandomResizedCrop(size, scale, ratio)` | cuts a box (drawn by area and aspect ratio) and scales it back to the full size, bilinear |
//! | [`normalize`] | `Normalize(mean, std)` | `x ← (x − mean_c)/std_c` per channel |
//! | [`cutmix`] | `v2.CutMix(alpha)` | pastes a box of sample `i−1` into sample `i`, soft labels by area |
//!
//! Brightness and contrast assume values in `[0, 1]` (before normalisation),
//! as torchvision's do for float images; the loader applies them in the
//! order crop, flip, brightness, contrast, normalise (torchvision draws the
//! jitter order at random; a fixed order keeps the transforms checkable).

/// The shape of one image sample: channels, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl ImageShape {
    /// `C × H × W`.
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        ImageShape { c, h, w }
    }
    /// Values per sample.
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// Mirrors every row of `img` (`RandomHorizontalFlip` when drawn).
pub fn hflip(img: &mut [f32], s: ImageShape) {
    for row in img.chunks_exact_mut(s.w.max(1)).take(s.c * s.h) {
        row.reverse();
    }
}

/// `RandomCrop(size = (H, W), padding = pad)` with the offset `(dy, dx)`
/// (each in `0..=2·pad`) given: output pixel `(i, j)` is input pixel
/// `(i + dy − pad, j + dx − pad)`, or 0 outside the image. `scratch` is
/// resized to one sample and reused.
pub fn shift_crop(
    img: &mut [f32],
    s: ImageShape,
    pad: usize,
    dy: usize,
    dx: usize,
    scratch: &mut Vec<f32>,
) {
    if dy == pad && dx == pad {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(&img[..s.numel()]);
    let (oy, ox) = (dy as isize - pad as isize, dx as isize - pad as isize);
    for c in 0..s.c {
        let plane = c * s.h * s.w;
        for i in 0..s.h {
            let si = i as isize + oy;
            let row = &mut img[plane + i * s.w..plane + (i + 1) * s.w];
            if si < 0 || si >= s.h as isize {
                row.fill(0.0);
                continue;
            }
            let src = &scratch[plane + si as usize * s.w..plane + (si as usize + 1) * s.w];
            for (j, v) in row.iter_mut().enumerate() {
                let sj = j as isize + ox;
                *v = if sj < 0 || sj >= s.w as isize {
                    0.0
                } else {
                    src[sj as usize]
                };
            }
        }
    }
}

/// Brightness by `factor`: `x ← clamp(factor·x, 0, 1)`.
pub fn brightness(img: &mut [f32], factor: f32) {
    for v in img {
        *v = (*v * factor).clamp(0.0, 1.0);
    }
}

/// The mean grey level torchvision's `adjust_contrast` blends towards: the
/// mean of `0.2989·R + 0.587·G + 0.114·B` for three channels, the mean of all
/// values otherwise.
pub fn grey_mean(img: &[f32], s: ImageShape) -> f32 {
    let n = (s.h * s.w).max(1);
    if s.c == 3 {
        let (r, rest) = img.split_at(n);
        let (g, b) = rest.split_at(n);
        let sum: f64 = (0..n)
            .map(|i| 0.2989 * r[i] as f64 + 0.587 * g[i] as f64 + 0.114 * b[i] as f64)
            .sum();
        (sum / n as f64) as f32
    } else {
        let all = &img[..s.numel()];
        (all.iter().map(|&v| v as f64).sum::<f64>() / all.len().max(1) as f64) as f32
    }
}

/// Contrast by `factor`: `x ← clamp(factor·x + (1 − factor)·m, 0, 1)` with
/// `m` = [`grey_mean`].
pub fn contrast(img: &mut [f32], s: ImageShape, factor: f32) {
    let m = grey_mean(img, s);
    for v in &mut img[..s.numel()] {
        *v = (factor * *v + (1.0 - factor) * m).clamp(0.0, 1.0);
    }
}

/// `x ← (x − mean[c]) / std[c]` for each channel `c`.
pub fn normalize(img: &mut [f32], s: ImageShape, mean: &[f32], std: &[f32]) {
    let plane = s.h * s.w;
    for (c, ch) in img.chunks_exact_mut(plane.max(1)).take(s.c).enumerate() {
        let (m, inv) = (mean[c], 1.0 / std[c]);
        for v in ch {
            *v = (*v - m) * inv;
        }
    }
}

/// The CutMix box of torchvision's `v2.CutMix` for a draw `lambda` ~
/// Beta(α, α) and a centre `(cy, cx)` (`cy < H`, `cx < W`): half-sides
/// `⌊½√(1−λ)·H⌋`, `⌊½√(1−λ)·W⌋`, clipped to the image. Returns
/// `(y1, y2, x1, x2)`, rows `y1..y2` and columns `x1..x2`.
pub fn cutmix_box(
    s: ImageShape,
    lambda: f64,
    cy: usize,
    cx: usize,
) -> (usize, usize, usize, usize) {
    let r = 0.5 * (1.0 - lambda).max(0.0).sqrt();
    let (rh, rw) = ((r * s.h as f64) as usize, (r * s.w as f64) as usize);
    (
        cy.saturating_sub(rh),
        (cy + rh).min(s.h),
        cx.saturating_sub(rw),
        (cx + rw).min(s.w),
    )
}

/// CutMix on a batch of `n` samples (`x`: `n·C·H·W` values, `y`: labels):
/// sample `i` receives the box `(y1, y2, x1, x2)` (from [`cutmix_box`]) of
/// sample `i − 1` (the batch rolled by one, as torchvision pairs them), and
/// its soft label (written to `soft`, `n·classes` values) is
/// `λ'·onehot(y_i) + (1 − λ')·onehot(y_{i−1})` with `λ'` = 1 − box area /
/// image area. Returns `λ'`. With `n = 1` the sample is pasted onto itself.
pub fn cutmix(
    x: &mut [f32],
    y: &[u32],
    s: ImageShape,
    bx: (usize, usize, usize, usize),
    classes: usize,
    soft: &mut Vec<f32>,
) -> f64 {
    let n = y.len();
    let d = s.numel();
    let (y1, y2, x1, x2) = bx;
    let area = (y2 - y1) * (x2 - x1);
    let lam = 1.0 - area as f64 / (s.h * s.w).max(1) as f64;
    // Rolling in place: walk from the last sample down, keeping the last
    // sample's box aside for sample 0.
    if area > 0 && n > 1 {
        let mut saved = Vec::with_capacity(s.c * area);
        let copy_box = |src: &[f32], dst: &mut Vec<f32>| {
            for c in 0..s.c {
                for i in y1..y2 {
                    let o = c * s.h * s.w + i * s.w;
                    dst.extend_from_slice(&src[o + x1..o + x2]);
                }
            }
        };
        copy_box(&x[(n - 1) * d..n * d], &mut saved);
        for k in (1..n).rev() {
            let (head, tail) = x.split_at_mut(k * d);
            let (src, dst) = (&head[(k - 1) * d..], &mut tail[..d]);
            for c in 0..s.c {
                for i in y1..y2 {
                    let o = c * s.h * s.w + i * s.w;
                    dst[o + x1..o + x2].copy_from_slice(&src[o + x1..o + x2]);
                }
            }
        }
        let mut it = saved.iter();
        for c in 0..s.c {
            for i in y1..y2 {
                let o = c * s.h * s.w + i * s.w;
                for v in &mut x[o + x1..o + x2] {
                    *v = *it.next().unwrap_or(&0.0);
                }
            }
        }
    }
    soft.clear();
    soft.resize(n * classes, 0.0);
    for i in 0..n {
        let other = y[(i + n - 1) % n] as usize;
        let row = &mut soft[i * classes..(i + 1) * classes];
        if let Some(v) = row.get_mut(y[i] as usize) {
            *v += lam as f32;
        }
        if let Some(v) = row.get_mut(other) {
            *v += (1.0 - lam) as f32;
        }
    }
    lam
}

/// The draws of one [`affine`] transform: rotation by `angle` degrees
/// (counter-clockwise on screen, torchvision's sign), a horizontal shear by
/// `shear` degrees, then a translation by `(tx, ty)` pixels (`ty` down), all
/// about the image centre, torchvision's `F.affine(img, angle, (tx, ty),
/// scale = 1, shear = (shear, 0))` up to its interpolation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Rotation in degrees, counter-clockwise on screen.
    pub angle: f32,
    /// Horizontal shear in degrees.
    pub shear: f32,
    /// Translation to the right, in pixels.
    pub tx: f32,
    /// Translation down, in pixels.
    pub ty: f32,
}

/// Rotation, shear and translation (see [`Affine`]) with bilinear
/// interpolation and zeros outside the image. With `x, y` the coordinates
/// relative to the centre `((W−1)/2, (H−1)/2)` (`y` down), the source pixel
/// `u` goes to `R(θ)·Sh(φ)·u + t` with `R(θ) = [[cos θ, sin θ], [−sin θ,
/// cos θ]]` and `Sh(φ) = [[1, tan φ], [0, 1]]`; each output pixel samples
/// the input at `Sh(φ)⁻¹·R(θ)ᵀ·(v − t)`. `scratch` is resized to one sample
/// and reused.
pub fn affine(img: &mut [f32], s: ImageShape, a: Affine, scratch: &mut Vec<f32>) {
    if a == (Affine {
        angle: 0.0,
        shear: 0.0,
        tx: 0.0,
        ty: 0.0,
    }) {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(&img[..s.numel()]);
    let (sin, cos) = (a.angle as f64).to_radians().sin_cos();
    let tan = (a.shear as f64).to_radians().tan();
    let (cx, cy) = ((s.w as f64 - 1.0) / 2.0, (s.h as f64 - 1.0) / 2.0);
    let (h, w) = (s.h as isize, s.w as isize);
    for c in 0..s.c {
        let plane = c * s.h * s.w;
        let src = &scratch[plane..plane + s.h * s.w];
        let at = |i: isize, j: isize| -> f64 {
            if i < 0 || j < 0 || i >= h || j >= w {
                0.0
            } else {
                src[(i * w + j) as usize] as f64
            }
        };
        for i in 0..s.h {
            for j in 0..s.w {
                let (vx, vy) = (j as f64 - cx - a.tx as f64, i as f64 - cy - a.ty as f64);
                // R(θ)ᵀ, then the inverse shear.
                let (rx, ry) = (cos * vx - sin * vy, sin * vx + cos * vy);
                let (ux, uy) = (rx - tan * ry, ry);
                let (sx, sy) = (ux + cx, uy + cy);
                // Snap what is an integer up to rounding, so exact moves stay exact.
                let snap = |v: f64| {
                    if (v - v.round()).abs() < 1e-9 {
                        v.round()
                    } else {
                        v
                    }
                };
                let (sx, sy) = (snap(sx), snap(sy));
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as isize, y0 as isize);
                let v = (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
                    + fy * ((1.0 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
                img[plane + i * s.w + j] = v as f32;
            }
        }
    }
}

/// Rotation by `k` quarter turns counter-clockwise (`k mod 4`: 0°, 90°, 180°,
/// 270°), exact, for square images (`H = W`); `torch.rot90(img, k, (1, 2))`.
/// `scratch` is resized to one sample and reused.
pub fn rot90(img: &mut [f32], s: ImageShape, k: usize, scratch: &mut Vec<f32>) {
    let k = k % 4;
    if k == 0 || s.h != s.w {
        return;
    }
    let n = s.h;
    scratch.clear();
    scratch.extend_from_slice(&img[..s.numel()]);
    for c in 0..s.c {
        let p = c * n * n;
        for i in 0..n {
            for j in 0..n {
                // Output (i, j) reads the input pixel that the turn brings there.
                let (si, sj) = match k {
                    1 => (j, n - 1 - i),
                    2 => (n - 1 - i, n - 1 - j),
                    _ => (n - 1 - j, i),
                };
                img[p + i * n + j] = scratch[p + si * n + sj];
            }
        }
    }
}

/// The rotation pretext task (Gidaris et al. 2018): each of the `x.len() /
/// numel` images of `x` four times, turned by 0°, 90°, 180° and 270°
/// ([`rot90`]), written into `out` (image `b` turned `k` times at row `4b + k`)
/// with labels `k` in `labels`. Needs square images.
pub fn rotation_task(
    x: &[f32],
    s: ImageShape,
    out: &mut Vec<f32>,
    labels: &mut Vec<u32>,
    scratch: &mut Vec<f32>,
) {
    let n = s.numel();
    out.clear();
    labels.clear();
    for img in x.chunks_exact(n.max(1)) {
        for k in 0..4 {
            let at = out.len();
            out.extend_from_slice(img);
            rot90(&mut out[at..], s, k, scratch);
            labels.push(k as u32);
        }
    }
}

/// Cutout (DeVries & Taylor 2017, FixMatch's strong view): sets the square of
/// side `size` whose top-left corner is `(cy − size/2, cx − size/2)`,
/// clipped to the image, to `value` in every channel.
pub fn cutout(img: &mut [f32], s: ImageShape, cy: usize, cx: usize, size: usize, value: f32) {
    let (y1, x1) = (cy.saturating_sub(size / 2), cx.saturating_sub(size / 2));
    let (y2, x2) = (
        (cy + size - size / 2).min(s.h),
        (cx + size - size / 2).min(s.w),
    );
    for c in 0..s.c {
        for i in y1..y2 {
            let row = c * s.h * s.w + i * s.w;
            img[row + x1..row + x2.max(x1)].fill(value);
        }
    }
}

/// A crop box: top row, left column, height, width (in pixels, inside the
/// image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
}

/// `RandomResizedCrop.get_params`: up to ten tries of an area drawn
/// uniformly in `scale · H·W` and an aspect ratio `w/h` drawn log-uniformly
/// in `ratio`, rounded, kept when the box fits (its corner then uniform);
/// otherwise the largest centred box whose ratio is clamped into `ratio`.
pub fn resized_crop_box(
    s: ImageShape,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut crate::Rng,
) -> CropBox {
    use rand::Rng as _;
    let (hh, ww) = (s.h as f64, s.w as f64);
    let area = hh * ww;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= s.w && 0 < h && h <= s.h {
            let top = rng.random_range(0..=s.h - h);
            let left = rng.random_range(0..=s.w - w);
            return CropBox { top, left, h, w };
        }
    }
    let in_ratio = ww / hh;
    let (h, w) = if in_ratio < ratio.0 {
        ((ww / ratio.0).round() as usize, s.w)
    } else if in_ratio > ratio.1 {
        (s.h, (hh * ratio.1).round() as usize)
    } else {
        (s.h, s.w)
    };
    let (h, w) = (h.clamp(1, s.h.max(1)), w.clamp(1, s.w.max(1)));
    CropBox {
        top: (s.h - h) / 2,
        left: (s.w - w) / 2,
        h,
        w,
    }
}

/// `F.resized_crop(img, top, left, h, w, size = (H, W))`: the box `b` scaled
/// to the full image, bilinear as `F.interpolate(align_corners = False)`:
/// output row `i` samples the box at `y = max((i + ½)·h/H − ½, 0)`, between
/// rows `⌊y⌋` and `min(⌊y⌋ + 1, h − 1)` with weight `y − ⌊y⌋` (columns
/// alike). (For a box smaller than the image, the usual case, torchvision's
/// antialiasing changes nothing.) A box that does not fit is clipped to the
/// image. `scratch` is resized to one sample and reused.
pub fn resized_crop(img: &mut [f32], s: ImageShape, b: CropBox, scratch: &mut Vec<f32>) {
    let (top, left) = (
        b.top.min(s.h.saturating_sub(1)),
        b.left.min(s.w.saturating_sub(1)),
    );
    let (bh, bw) = (b.h.min(s.h - top).max(1), b.w.min(s.w - left).max(1));
    if (top, left, bh, bw) == (0, 0, s.h, s.w) {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(&img[..s.numel()]);
    let taps = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f64)> {
        (0..n_out)
            .map(|i| {
                let y = ((i as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
                let y0 = (y.floor() as usize).min(n_in - 1);
                (y0, (y0 + 1).min(n_in - 1), y - y0 as f64)
            })
            .collect()
    };
    let (rows, cols) = (taps(s.h, bh), taps(s.w, bw));
    for c in 0..s.c {
        let plane = c * s.h * s.w;
        let at = |y: usize, x: usize| scratch[plane + (top + y) * s.w + left + x] as f64;
        for (i, &(y0, y1, fy)) in rows.iter().enumerate() {
            for (j, &(x0, x1, fx)) in cols.iter().enumerate() {
                let v = (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x1))
                    + fy * ((1.0 - fx) * at(y1, x0) + fx * at(y1, x1));
                img[plane + i * s.w + j] = v as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: ImageShape = ImageShape { c: 1, h: 2, w: 3 };

    #[test]
    fn flip_by_hand() {
        let mut x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        hflip(&mut x, S);
        assert_eq!(x, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        // Two channels of 1×2.
        let mut x = [1.0, 2.0, 3.0, 4.0];
        hflip(&mut x, ImageShape::new(2, 1, 2));
        assert_eq!(x, [2.0, 1.0, 4.0, 3.0]);
    }

    #[test]
    fn crop_with_padding_by_hand() {
        let mut scratch = Vec::new();
        // pad 1, offset (1, 1) is the identity.
        let mut x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        shift_crop(&mut x, S, 1, 1, 1, &mut scratch);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // offset (0, 0): the window starts one pixel up and left, in the padding:
        // row 0 is padding, row 1 = [0, 1, 2].
        shift_crop(&mut x, S, 1, 0, 0, &mut scratch);
        assert_eq!(x, [0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
        // offset (2, 2) from the original: row 0 = [5, 6, 0], row 1 = padding.
        let mut x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        shift_crop(&mut x, S, 1, 2, 2, &mut scratch);
        assert_eq!(x, [5.0, 6.0, 0.0, 0.0, 0.0, 0.0]);
        // pad 2, offset (2, 0): shift right by two.
        let mut x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        shift_crop(&mut x, S, 2, 2, 0, &mut scratch);
        assert_eq!(x, [0.0, 0.0, 1.0, 0.0, 0.0, 4.0]);
    }

    #[test]
    fn jitter_and_normalize_by_hand() {
        let mut x = [0.25, 0.5, 0.75, 1.0];
        brightness(&mut x, 1.5);
        assert_eq!(x, [0.375, 0.75, 1.0, 1.0]);
        brightness(&mut x, 0.5);
        assert_eq!(x, [0.1875, 0.375, 0.5, 0.5]);
        // contrast 0.5 towards the mean 0.5 of [0, 1, 0.5, 0.5, 0, 1]: x ← 0.5x + 0.25.
        let mut x = [0.0, 1.0, 0.5, 0.5, 0.0, 1.0];
        contrast(&mut x, S, 0.5);
        assert_eq!(x, [0.25, 0.75, 0.5, 0.5, 0.25, 0.75]);
        // RGB grey mean: one pixel (1, 0, 0) → 0.2989.
        assert!((grey_mean(&[1.0, 0.0, 0.0], ImageShape::new(3, 1, 1)) - 0.2989).abs() < 1e-7);
        // Two channels of 1×2: (x − 1)/2 and (x − 0)/0.5.
        let mut x = [1.0, 3.0, 1.0, 2.0];
        normalize(&mut x, ImageShape::new(2, 1, 2), &[1.0, 0.0], &[2.0, 0.5]);
        assert_eq!(x, [0.0, 1.0, 2.0, 4.0]);
    }

    #[test]
    fn cutmix_by_hand() {
        // 4×4 images; λ = 0.75 → r = ½·√0.25 = 0.25, half-sides 1; centre (1, 2)
        // → rows 0..2, columns 1..3: 4 of 16 pixels, λ' = 0.75.
        let s = ImageShape::new(1, 4, 4);
        let bx = cutmix_box(s, 0.75, 1, 2);
        assert_eq!(bx, (0, 2, 1, 3));
        // At a corner the box is clipped: centre (0, 0) → rows 0..1, cols 0..1.
        assert_eq!(cutmix_box(s, 0.75, 0, 0), (0, 1, 0, 1));
        // Three images filled with 1, 2, 3; labels 0, 1, 2 of 3 classes.
        let mut x: Vec<f32> = (0..3).flat_map(|k| vec![(k + 1) as f32; 16]).collect();
        let mut soft = Vec::new();
        let lam = cutmix(&mut x, &[0, 1, 2], s, bx, 3, &mut soft);
        assert_eq!(lam, 0.75);
        // Image 0 gets image 2's box (3s), image 1 image 0's (1s), image 2 image 1's (2s).
        let boxed =
            |k: usize| -> Vec<f32> { [1, 2, 5, 6].iter().map(|&p| x[k * 16 + p]).collect() };
        assert_eq!(
            (boxed(0), boxed(1), boxed(2)),
            (vec![3.0; 4], vec![1.0; 4], vec![2.0; 4])
        );
        assert_eq!(x[0], 1.0);
        assert_eq!(x[16 + 15], 2.0);
        assert_eq!(soft, [0.75, 0.0, 0.25, 0.25, 0.75, 0.0, 0.0, 0.25, 0.75]);
    }
}

#[cfg(test)]
mod affine_tests {
    use super::*;

    /// A 3×3 image with distinct values, row-major.
    const X: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    const S3: ImageShape = ImageShape { c: 1, h: 3, w: 3 };

    fn run(a: Affine) -> Vec<f32> {
        let mut x = X.to_vec();
        affine(&mut x, S3, a, &mut Vec::new());
        x
    }

    fn none() -> Affine {
        Affine {
            angle: 0.0,
            shear: 0.0,
            tx: 0.0,
            ty: 0.0,
        }
    }

    #[test]
    fn rotations_by_hand() {
        assert_eq!(run(none()), X);
        // 90° counter-clockwise: the right column becomes the top row.
        assert_eq!(
            run(Affine {
                angle: 90.0,
                ..none()
            }),
            [3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0]
        );
        assert_eq!(
            run(Affine {
                angle: 180.0,
                ..none()
            }),
            [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
        );
        assert_eq!(
            run(Affine {
                angle: -90.0,
                ..none()
            }),
            [7.0, 4.0, 1.0, 8.0, 5.0, 2.0, 9.0, 6.0, 3.0]
        );
        // 45°: the centre stays; the top-middle output samples the input at
        // R(45°)ᵀ·(0, −1) = (sin 45°, −cos 45°) from the centre, between 2, 3, 5, 6:
        // bilinear weights (1 − f)² on 2, … with f = 1 − √½.
        let r = run(Affine {
            angle: 45.0,
            ..none()
        });
        assert_eq!(r[4], 5.0);
        let f = 1.0 - 0.5f64.sqrt();
        let (fx, fy) = (0.5f64.sqrt(), f);
        let want = (1.0 - fy) * ((1.0 - fx) * 2.0 + fx * 3.0) + fy * ((1.0 - fx) * 5.0 + fx * 6.0);
        assert!((r[1] as f64 - want).abs() < 1e-6, "{} vs {want}", r[1]);
    }

    #[test]
    fn translation_and_shear_by_hand() {
        // One pixel right: columns move right, zeros come in on the left;
        // the same as RandomCrop's shift.
        assert_eq!(
            run(Affine { tx: 1.0, ..none() }),
            [0.0, 1.0, 2.0, 0.0, 4.0, 5.0, 0.0, 7.0, 8.0]
        );
        let mut c = X.to_vec();
        shift_crop(&mut c, S3, 1, 1, 0, &mut Vec::new());
        assert_eq!(run(Affine { tx: 1.0, ..none() }), c);
        // Half a pixel down: the mean of each pixel and the one above it.
        assert_eq!(
            run(Affine { ty: 0.5, ..none() }),
            [0.5, 1.0, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
        );
        // Shear by 45°: row y (from the centre) moves right by y pixels
        // (tan 45° = 1): the top row left by one, the bottom row right by one.
        assert_eq!(
            run(Affine {
                shear: 45.0,
                ..none()
            }),
            [2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0, 7.0, 8.0]
        );
    }

    #[test]
    fn cutout_by_hand() {
        let mut x = [1.0f32; 16];
        cutout(&mut x, ImageShape::new(1, 4, 4), 1, 2, 2, 0.5);
        // Rows 0..2, columns 1..3.
        let want = [
            1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
        ];
        assert_eq!(x, want);
        // Clipped at the corner, in both channels.
        let mut x = [1.0f32; 8];
        cutout(&mut x, ImageShape::new(2, 2, 2), 1, 1, 3, 0.0);
        assert_eq!(x, [0.0; 8]);
        let mut x = [1.0f32; 9];
        cutout(&mut x, S3, 2, 2, 1, 0.0);
        assert_eq!(x, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    /// Values from PyTorch: `F.interpolate(crop[None], size, mode =
    /// "bilinear", align_corners = False)` of the crop (what torchvision's
    /// `resized_crop` does when it enlarges).
    #[test]
    fn resized_crop_matches_pytorch() {
        let mut x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let b = CropBox {
            top: 1,
            left: 0,
            h: 2,
            w: 3,
        };
        resized_crop(&mut x, ImageShape::new(1, 4, 4), b, &mut Vec::new());
        let want = [
            5.0, 5.625, 6.375, 7.0, 6.0, 6.625, 7.375, 8.0, 8.0, 8.625, 9.375, 10.0, 9.0, 9.625,
            10.375, 11.0,
        ];
        assert_eq!(x, want);
        let mut x: Vec<f32> = (1..=6).map(|v| v as f32).collect();
        let b = CropBox {
            top: 0,
            left: 1,
            h: 2,
            w: 2,
        };
        resized_crop(&mut x, ImageShape::new(1, 2, 3), b, &mut Vec::new());
        assert_eq!(x, [2.0, 2.5, 3.0, 5.0, 5.5, 6.0]);
        // The whole image is left as it is.
        let mut x: Vec<f32> = (1..=6).map(|v| v as f32).collect();
        let b = CropBox {
            top: 0,
            left: 0,
            h: 2,
            w: 3,
        };
        resized_crop(&mut x, ImageShape::new(1, 2, 3), b, &mut Vec::new());
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    /// Boxes fit, their areas and ratios lie in the ranges (up to rounding),
    /// and an impossible ratio range falls back to the centred box.
    #[test]
    fn resized_crop_boxes_follow_their_ranges() {
        let s = ImageShape::new(1, 28, 28);
        let mut r = crate::rng(3);
        let mut small = 0;
        for _ in 0..1000 {
            let b = resized_crop_box(s, (0.2, 1.0), (0.75, 4.0 / 3.0), &mut r);
            assert!(
                b.h >= 1 && b.w >= 1 && b.top + b.h <= 28 && b.left + b.w <= 28,
                "{b:?}"
            );
            let area = (b.h * b.w) as f64 / 784.0;
            assert!((0.15..=1.0).contains(&area), "{b:?}");
            let ratio = b.w as f64 / b.h as f64;
            assert!((0.6..=1.5).contains(&ratio), "{b:?}");
            small += usize::from(area < 0.6);
        }
        // Areas are uniform in [0.2, 1]: half of them under 0.6.
        assert!((400..600).contains(&small), "{small}");
        let b = resized_crop_box(ImageShape::new(1, 10, 20), (1.0, 1.0), (0.5, 0.5), &mut r);
        // A 10×20 image whose ratio 2 is above the range's 0.5: the
        // tries cannot fit a 10×20-area box of ratio 0.5, so the centred box
        // of ratio 0.5 would be 20 rows; with the ratio range (0.5, 0.5) and
        // the image's ratio above it, the fallback is the full height with
        // width round(10 · 0.5) = 5, centred.
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 7,
                h: 10,
                w: 5
            }
        );
    }

    const S2: ImageShape = ImageShape { c: 1, h: 2, w: 2 };

    #[test]
    fn quarter_turns_match_affine_and_by_hand() {
        // [[1, 2], [3, 4]] turned 90° counter-clockwise is [[2, 4], [1, 3]].
        let mut x = [1.0, 2.0, 3.0, 4.0];
        rot90(&mut x, S2, 1, &mut Vec::new());
        assert_eq!(x, [2.0, 4.0, 1.0, 3.0]);
        // The same as affine's exact turns on 3×3, for every k.
        let s3 = ImageShape::new(1, 3, 3);
        let base: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        for k in 0..5 {
            let mut a = base.clone();
            rot90(&mut a, s3, k, &mut Vec::new());
            let mut b = base.clone();
            let angle = 90.0 * (k % 4) as f32;
            affine(
                &mut b,
                s3,
                Affine {
                    angle,
                    shear: 0.0,
                    tx: 0.0,
                    ty: 0.0,
                },
                &mut Vec::new(),
            );
            assert_eq!(a, b, "k = {k}");
        }
    }

    #[test]
    fn rotation_pretext_labels() {
        // Two 2×2 images → eight rows, labels 0, 1, 2, 3, 0, 1, 2, 3.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let (mut out, mut y) = (Vec::new(), Vec::new());
        rotation_task(&x, S2, &mut out, &mut y, &mut Vec::new());
        assert_eq!(y, [0, 1, 2, 3, 0, 1, 2, 3]);
        assert_eq!(
            out,
            [
                1.0, 2.0, 3.0, 4.0, // 0°
                2.0, 4.0, 1.0, 3.0, // 90°
                4.0, 3.0, 2.0, 1.0, // 180°
                3.0, 1.0, 4.0, 2.0, // 270°
                5.0, 6.0, 7.0, 8.0, 6.0, 8.0, 5.0, 7.0, 8.0, 7.0, 6.0, 5.0, 7.0, 5.0, 8.0, 6.0,
            ]
        );
    }
}
