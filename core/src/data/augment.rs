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
