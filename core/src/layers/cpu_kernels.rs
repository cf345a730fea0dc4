//! The CPU bodies of the spatial kernels of [`crate::Backend`] (im2col,
//! col2im, pooling, unpooling, upsampling, batch normalisation, dropout),
//! called by `impl Backend<E> for Cpu`. Formulas are documented on the trait
//! methods; this file only says how the loops are organised.
//!
//! Parallelism: every kernel splits its output into disjoint pieces (rows of
//! the im2col matrix, image planes, channels) handed to kiln's pool
//! (`crate::gemm::par`, which allocates nothing per call), so no two
//! tasks write the same element and results do not depend on the thread
//! count. Small calls run on the calling thread. Nothing here allocates.

use crate::device::{
    dropout_keep, dropout_threshold, Acc, BatchNormDims, Resize2d, UpsampleMode, Window2d,
};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::gemm::par::{self, SyncPtr};

/// Below this many touched elements a kernel runs on one thread.
const PAR_MIN: usize = 1 << 14;

fn need<T>(what: &'static str, b: &[T], n: usize) -> Result<()> {
    if b.len() < n {
        Err(Error::invalid(
            what,
            format!(
                "kiln internal error: buffer holds {} elements, kernel needs {n}",
                b.len()
            ),
        ))
    } else {
        Ok(())
    }
}

/// Calls `f(k, piece)` for the consecutive pieces of length `len` of `dst`,
/// in parallel when `dst` is large.
fn pieces<T: Send>(dst: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    let big = dst.len() >= PAR_MIN;
    par::pieces(dst, len, big, f);
}

/// Like [`pieces`] over two buffers cut into pieces of `la` and `lb`
/// elements (`count` pieces each); `big` says whether to go parallel.
fn pieces2<A: Send, B: Send>(
    a: &mut [A],
    la: usize,
    b: &mut [B],
    lb: usize,
    count: usize,
    big: bool,
    f: impl Fn(usize, &mut [A], &mut [B]) + Send + Sync,
) {
    assert!(a.len() >= count * la && b.len() >= count * lb);
    let (pa, pb) = (SyncPtr(a.as_mut_ptr()), SyncPtr(b.as_mut_ptr()));
    par::ranges(count, big, |r| {
        for k in r {
            // SAFETY: pieces are disjoint and inside `a` and `b` (asserted above).
            f(k, unsafe { pa.slice(k * la, la) }, unsafe {
                pb.slice(k * lb, lb)
            });
        }
    });
}

/// The positions `o < on` whose tap `o·s + off` lands inside `0..n`, as a range.
#[inline]
fn valid(on: usize, n: usize, s: usize, off: isize) -> (usize, usize) {
    if s == 1 {
        // No divisions on the common path (pooling windows call this per output).
        let lo = (-off).max(0) as usize;
        let hi = (n as isize - off).clamp(0, on as isize) as usize;
        return (lo.min(hi), hi);
    }
    let s = s as isize;
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s } as usize;
    let lim = n as isize - off;
    let hi = if lim <= 0 {
        0
    } else {
        ((lim + s - 1) / s) as usize
    }
    .min(on);
    (lo.min(hi), hi)
}

/// Window position `o` along one axis (stride `s`, padding `p`, dilation
/// `d`, `k` taps, input length `n`): its first tap's coordinate `o·s − p`
/// and the range of taps that land inside the input.
#[inline]
fn window_taps(
    o: usize,
    s: usize,
    p: usize,
    d: usize,
    k: usize,
    n: usize,
) -> (isize, usize, usize) {
    let base = (o * s) as isize - p as isize;
    let (lo, hi) = valid(k, n, d, base);
    (base, lo, hi)
}

/// Tap offsets of row `i`, column `j` of the window.
#[inline]
fn offsets(g: &Window2d, i: usize, j: usize) -> (isize, isize) {
    (
        (i * g.dh) as isize - g.ph as isize,
        (j * g.dw) as isize - g.pw as isize,
    )
}

pub(crate) fn im2col<E: Elem>(
    g: &Window2d,
    x: &[E],
    first: usize,
    count: usize,
    cols: &mut [E],
) -> Result<()> {
    let (plane, op) = (g.in_plane(), g.out_plane());
    let n = count * op;
    need("im2col x", x, (first + count) * g.channels * plane)?;
    need("im2col cols", cols, g.rows() * n)?;
    let kk = g.kh * g.kw;
    // One piece per (row r, sample b): the `op` columns of sample b in row r.
    pieces(&mut cols[..g.rows() * n], op, |k, dst| {
        let (r, b) = (k / count, k % count);
        let (c, i, j) = (r / kk, (r / g.kw) % g.kh, r % g.kw);
        let (offy, offx) = offsets(g, i, j);
        let (ylo, yhi) = valid(g.oh, g.h, g.sh, offy);
        let (xlo, xhi) = valid(g.ow, g.w, g.sw, offx);
        let src = &x[((first + b) * g.channels + c) * plane..][..plane];
        if g.sh == 1 && g.sw == 1 && g.ow == g.w {
            // "Same"-width, stride 1 (3×3 pad 1, 5×5 pad 2, …): the valid rows
            // of this tap are one contiguous run of the plane shifted by
            // `offy·w + offx`, copied at once; only the `|offx|` edge columns
            // of each row (which the run fills from the neighbouring image
            // row) and the rows outside the image are then zeroed.
            let (lo, hi) = (ylo * g.ow, yhi * g.ow);
            dst[..lo].fill(E::zero());
            dst[hi..].fill(E::zero());
            if lo < hi {
                let s0 = (ylo as isize + offy) * g.w as isize + offx;
                // Clip the run to the plane; what is clipped is edge columns.
                let skip = (-s0).max(0) as usize;
                let end = ((s0 + (hi - lo) as isize).min(plane as isize)) as isize;
                let start = s0.max(0);
                if end > start {
                    let n = (end - start) as usize;
                    dst[lo + skip..lo + skip + n]
                        .copy_from_slice(&src[start as usize..start as usize + n]);
                }
                for oy in ylo..yhi {
                    let d = &mut dst[oy * g.ow..][..g.ow];
                    for v in &mut d[..xlo] {
                        *v = E::zero();
                    }
                    for v in &mut d[xhi..] {
                        *v = E::zero();
                    }
                }
            }
            return;
        }
        for oy in 0..g.oh {
            let d = &mut dst[oy * g.ow..][..g.ow];
            if oy < ylo || oy >= yhi {
                d.fill(E::zero());
                continue;
            }
            let row = &src[((oy * g.sh) as isize + offy) as usize * g.w..][..g.w];
            // Guarded: an empty `fill` is still a call to `memset`.
            if xlo > 0 {
                d[..xlo].fill(E::zero());
            }
            if xhi < g.ow {
                d[xhi..].fill(E::zero());
            }
            let ix0 = ((xlo * g.sw) as isize + offx) as usize;
            if g.sw == 1 {
                d[xlo..xhi].copy_from_slice(&row[ix0..ix0 + (xhi - xlo)]);
            } else {
                for (t, v) in d[xlo..xhi].iter_mut().enumerate() {
                    *v = row[ix0 + t * g.sw];
                }
            }
        }
    });
    Ok(())
}

pub(crate) fn col2im<E: Elem>(
    g: &Window2d,
    cols: &[E],
    x: &mut [E],
    first: usize,
    count: usize,
    acc: Acc,
) -> Result<()> {
    let (plane, op) = (g.in_plane(), g.out_plane());
    let n = count * op;
    need("col2im cols", cols, g.rows() * n)?;
    need("col2im x", x, (first + count) * g.channels * plane)?;
    let x = &mut x[first * g.channels * plane..(first + count) * g.channels * plane];
    // One piece per image plane (sample b, channel c): it gathers its kh·kw rows.
    pieces(x, plane, |k, dst| {
        let (b, c) = (k / g.channels, k % g.channels);
        if acc == Acc::Set {
            dst.fill(E::zero());
        }
        for i in 0..g.kh {
            for j in 0..g.kw {
                let r = (c * g.kh + i) * g.kw + j;
                let seg = &cols[r * n + b * op..][..op];
                let (offy, offx) = offsets(g, i, j);
                let (ylo, yhi) = valid(g.oh, g.h, g.sh, offy);
                let (xlo, xhi) = valid(g.ow, g.w, g.sw, offx);
                for oy in ylo..yhi {
                    let row = &mut dst[((oy * g.sh) as isize + offy) as usize * g.w..][..g.w];
                    let ix0 = ((xlo * g.sw) as isize + offx) as usize;
                    let s = &seg[oy * g.ow + xlo..oy * g.ow + xhi];
                    if g.sw == 1 {
                        for (d, v) in row[ix0..ix0 + s.len()].iter_mut().zip(s) {
                            *d = *d + *v;
                        }
                    } else {
                        for (t, v) in s.iter().enumerate() {
                            let d = &mut row[ix0 + t * g.sw];
                            *d = *d + *v;
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn transpose01<E: Elem>(
    src: &[E],
    src_off: usize,
    dst: &mut [E],
    dst_off: usize,
    a: usize,
    b: usize,
    n: usize,
    acc: Acc,
) -> Result<()> {
    let total = a * b * n;
    need("transpose01 src", src, src_off + total)?;
    need("transpose01 dst", dst, dst_off + total)?;
    pieces(&mut dst[dst_off..dst_off + total], n, |k, d| {
        let (j, i) = (k / a, k % a);
        let s = &src[src_off + (i * b + j) * n..][..n];
        match acc {
            Acc::Set => d.copy_from_slice(s),
            Acc::Add => d.iter_mut().zip(s).for_each(|(d, s)| *d = *d + *s),
        }
    });
    Ok(())
}

pub(crate) fn add_channel_bias<E: Elem>(
    y: &mut [E],
    bias: &[E],
    batch: usize,
    channels: usize,
    spatial: usize,
) -> Result<()> {
    need("add_channel_bias y", y, batch * channels * spatial)?;
    need("add_channel_bias bias", bias, channels)?;
    pieces(&mut y[..batch * channels * spatial], spatial, |k, row| {
        let b = bias[k % channels];
        row.iter_mut().for_each(|v| *v = *v + b);
    });
    Ok(())
}

pub(crate) fn channel_bias_grad<E: Elem>(
    dy: &[E],
    db: &mut [E],
    batch: usize,
    channels: usize,
    spatial: usize,
    acc: Acc,
) -> Result<()> {
    need("channel_bias_grad dy", dy, batch * channels * spatial)?;
    need("channel_bias_grad db", db, channels)?;
    let sum = |c: usize, d: &mut E| {
        let mut s = E::zero();
        for b in 0..batch {
            s = s + dy[(b * channels + c) * spatial..][..spatial]
                .iter()
                .copied()
                .sum::<E>();
        }
        acc.put(d, s);
    };
    par::pieces(
        &mut db[..channels],
        1,
        batch * channels * spatial >= PAR_MIN,
        |c, d| sum(c, &mut d[0]),
    );
    Ok(())
}

pub(crate) fn max_pool2d_fwd<E: Elem>(
    g: &Window2d,
    x: &[E],
    y: &mut [E],
    idx: &mut [u32],
    batch: usize,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    need("max_pool2d x", x, planes * plane)?;
    need("max_pool2d y", y, planes * op)?;
    need("max_pool2d indices", idx, planes * op)?;
    let work = |k: usize, (yp, ip): (&mut [E], &mut [u32])| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let (by, ilo, ihi) = window_taps(oy, g.sh, g.ph, g.dh, g.kh, g.h);
            for ox in 0..g.ow {
                let (bx, jlo, jhi) = window_taps(ox, g.sw, g.pw, g.dw, g.kw, g.w);
                // Start from the first tap inside the image (none: −∞ at no position).
                let (mut best, mut at) = (E::neg_infinity(), u32::MAX);
                if ilo < ihi && jlo < jhi {
                    at = ((by + (ilo * g.dh) as isize) as usize * g.w
                        + (bx + (jlo * g.dw) as isize) as usize) as u32;
                    best = src[at as usize];
                }
                for i in ilo..ihi {
                    let r = (by + (i * g.dh) as isize) as usize * g.w;
                    for j in jlo..jhi {
                        let p = r + (bx + (j * g.dw) as isize) as usize;
                        let v = src[p];
                        // Branch-free select (random data mispredicts a branch half the time).
                        let take = v > best || v.is_nan();
                        best = if take { v } else { best };
                        at = if take { p as u32 } else { at };
                    }
                }
                yp[oy * g.ow + ox] = best;
                ip[oy * g.ow + ox] = at;
            }
        }
    };
    // The common case (no padding, no dilation: every window lies inside the
    // image) without per-window bounds: the same taps in the same order, so
    // the same results, ties and NaNs included.
    let plain = |k: usize, (yp, ip): (&mut [E], &mut [u32])| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let r0 = oy * g.sh * g.w;
            let (yr, ir) = (&mut yp[oy * g.ow..][..g.ow], &mut ip[oy * g.ow..][..g.ow]);
            for ox in 0..g.ow {
                let p0 = r0 + ox * g.sw;
                let (mut best, mut at) = (src[p0], p0);
                for i in 0..g.kh {
                    let row = &src[p0 + i * g.w..][..g.kw];
                    for (j, &v) in row.iter().enumerate() {
                        let take = v > best || v.is_nan();
                        best = if take { v } else { best };
                        at = if take { p0 + i * g.w + j } else { at };
                    }
                }
                yr[ox] = best;
                ir[ox] = at as u32;
            }
        }
    };
    let (y, idx) = (&mut y[..planes * op], &mut idx[..planes * op]);
    if op == 0 {
        return Ok(());
    }
    if g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 && (g.kh, g.kw, g.sh, g.sw) == (2, 2, 2, 2)
    {
        // 2×2, stride 2 (LeNet's, VGG's): four taps in the same order.
        pieces2(
            y,
            op,
            idx,
            op,
            planes,
            planes * plane >= PAR_MIN,
            |k, yp, ip| {
                let src = &x[k * plane..][..plane];
                for oy in 0..g.oh {
                    let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
                    let (a, b) = (&src[r0..r0 + g.w], &src[r1..r1 + g.w]);
                    let (yr, ir) = (&mut yp[oy * g.ow..][..g.ow], &mut ip[oy * g.ow..][..g.ow]);
                    for ox in 0..g.ow {
                        let x0 = 2 * ox;
                        let (mut best, mut at) = (a[x0], r0 + x0);
                        for (v, p) in [
                            (a[x0 + 1], r0 + x0 + 1),
                            (b[x0], r1 + x0),
                            (b[x0 + 1], r1 + x0 + 1),
                        ] {
                            let take = v > best || v.is_nan();
                            best = if take { v } else { best };
                            at = if take { p } else { at };
                        }
                        yr[ox] = best;
                        ir[ox] = at as u32;
                    }
                }
            },
        );
        return Ok(());
    }
    if g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 {
        pieces2(
            y,
            op,
            idx,
            op,
            planes,
            planes * plane >= PAR_MIN,
            |k, yp, ip| plain(k, (yp, ip)),
        );
        return Ok(());
    }
    pieces2(
        y,
        op,
        idx,
        op,
        planes,
        planes * plane >= PAR_MIN,
        |k, yp, ip| work(k, (yp, ip)),
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn max_unpool2d<E: Elem>(
    g: &Window2d,
    idx: &[u32],
    src: &[E],
    dst: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    need("max_unpool2d indices", idx, planes * op)?;
    need("max_unpool2d src", src, planes * op)?;
    need("max_unpool2d dst", dst, planes * plane)?;
    pieces(&mut dst[..planes * plane], plane, |k, d| {
        if acc == Acc::Set {
            d.fill(E::zero());
        }
        for (t, v) in idx[k * op..][..op].iter().zip(&src[k * op..][..op]) {
            // An index past the plane marks a window without any input pixel.
            if let Some(d) = d.get_mut(*t as usize) {
                *d = *d + *v;
            }
        }
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn max_unpool2d_bwd<E: Elem>(
    g: &Window2d,
    idx: &[u32],
    src: &[E],
    dst: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    need("max_unpool2d_bwd indices", idx, planes * op)?;
    need("max_unpool2d_bwd src", src, planes * plane)?;
    need("max_unpool2d_bwd dst", dst, planes * op)?;
    pieces(&mut dst[..planes * op], op, |k, d| {
        let s = &src[k * plane..][..plane];
        for (d, t) in d.iter_mut().zip(&idx[k * op..][..op]) {
            acc.put(d, s.get(*t as usize).copied().unwrap_or(E::zero()));
        }
    });
    Ok(())
}

pub(crate) fn avg_pool2d_fwd<E: Elem>(
    g: &Window2d,
    x: &[E],
    y: &mut [E],
    batch: usize,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    need("avg_pool2d x", x, planes * plane)?;
    need("avg_pool2d y", y, planes * op)?;
    let inv = E::one() / E::of((g.kh * g.kw) as f64);
    pieces(&mut y[..planes * op], op, |k, yp| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let (by, ilo, ihi) = window_taps(oy, g.sh, g.ph, g.dh, g.kh, g.h);
            for ox in 0..g.ow {
                let (bx, jlo, jhi) = window_taps(ox, g.sw, g.pw, g.dw, g.kw, g.w);
                let mut s = E::zero();
                for i in ilo..ihi {
                    let row = &src[(by + (i * g.dh) as isize) as usize * g.w..][..g.w];
                    for j in jlo..jhi {
                        s = s + row[(bx + (j * g.dw) as isize) as usize];
                    }
                }
                yp[oy * g.ow + ox] = s * inv;
            }
        }
    });
    Ok(())
}

pub(crate) fn avg_pool2d_bwd<E: Elem>(
    g: &Window2d,
    dy: &[E],
    dx: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    need("avg_pool2d_bwd dy", dy, planes * op)?;
    need("avg_pool2d_bwd dx", dx, planes * plane)?;
    let inv = E::one() / E::of((g.kh * g.kw) as f64);
    pieces(&mut dx[..planes * plane], plane, |k, d| {
        if acc == Acc::Set {
            d.fill(E::zero());
        }
        let gp = &dy[k * op..][..op];
        for oy in 0..g.oh {
            let (by, ilo, ihi) = window_taps(oy, g.sh, g.ph, g.dh, g.kh, g.h);
            for ox in 0..g.ow {
                let (bx, jlo, jhi) = window_taps(ox, g.sw, g.pw, g.dw, g.kw, g.w);
                let v = gp[oy * g.ow + ox] * inv;
                for i in ilo..ihi {
                    let row = &mut d[(by + (i * g.dh) as isize) as usize * g.w..][..g.w];
                    for j in jlo..jhi {
                        let t = &mut row[(bx + (j * g.dw) as isize) as usize];
                        *t = *t + v;
                    }
                }
            }
        }
    });
    Ok(())
}

/// PyTorch's bilinear source coordinate (`align_corners=False`) of output
/// index `o` for an input of `n` and an output of `on`: the two neighbours and
/// their weights `(i0, i1, w0, w1)`.
#[inline]
pub(crate) fn bilinear_src(o: usize, n: usize, on: usize) -> (usize, usize, f64, f64) {
    let src = ((o as f64 + 0.5) * (n as f64 / on as f64) - 0.5).max(0.0);
    let i0 = (src as usize).min(n - 1);
    let i1 = if i0 + 1 < n { i0 + 1 } else { i0 };
    let w1 = src - i0 as f64;
    (i0, i1, 1.0 - w1, w1)
}

pub(crate) fn upsample2d_fwd<E: Elem>(
    g: &Resize2d,
    x: &[E],
    y: &mut [E],
    batch: usize,
) -> Result<()> {
    let planes = batch * g.channels;
    let (plane, op) = (g.h * g.w, g.oh * g.ow);
    need("upsample2d x", x, planes * plane)?;
    need("upsample2d y", y, planes * op)?;
    pieces(&mut y[..planes * op], op, |k, yp| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let row = &mut yp[oy * g.ow..][..g.ow];
            match g.mode {
                UpsampleMode::Nearest => {
                    let s = &src[oy * g.h / g.oh * g.w..][..g.w];
                    for (ox, v) in row.iter_mut().enumerate() {
                        *v = s[ox * g.w / g.ow];
                    }
                }
                UpsampleMode::Bilinear => {
                    let (y0, y1, a0, a1) = bilinear_src(oy, g.h, g.oh);
                    let (r0, r1) = (&src[y0 * g.w..][..g.w], &src[y1 * g.w..][..g.w]);
                    let (a0, a1) = (E::of(a0), E::of(a1));
                    for (ox, v) in row.iter_mut().enumerate() {
                        let (x0, x1, b0, b1) = bilinear_src(ox, g.w, g.ow);
                        let (b0, b1) = (E::of(b0), E::of(b1));
                        *v = a0 * (b0 * r0[x0] + b1 * r0[x1]) + a1 * (b0 * r1[x0] + b1 * r1[x1]);
                    }
                }
            }
        }
    });
    Ok(())
}

pub(crate) fn upsample2d_bwd<E: Elem>(
    g: &Resize2d,
    dy: &[E],
    dx: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let planes = batch * g.channels;
    let (plane, op) = (g.h * g.w, g.oh * g.ow);
    need("upsample2d_bwd dy", dy, planes * op)?;
    need("upsample2d_bwd dx", dx, planes * plane)?;
    pieces(&mut dx[..planes * plane], plane, |k, d| {
        if acc == Acc::Set {
            d.fill(E::zero());
        }
        let gp = &dy[k * op..][..op];
        for oy in 0..g.oh {
            let grow = &gp[oy * g.ow..][..g.ow];
            match g.mode {
                UpsampleMode::Nearest => {
                    let r = oy * g.h / g.oh * g.w;
                    for (ox, v) in grow.iter().enumerate() {
                        let t = &mut d[r + ox * g.w / g.ow];
                        *t = *t + *v;
                    }
                }
                UpsampleMode::Bilinear => {
                    let (y0, y1, a0, a1) = bilinear_src(oy, g.h, g.oh);
                    let (a0, a1) = (E::of(a0), E::of(a1));
                    for (ox, v) in grow.iter().enumerate() {
                        let (x0, x1, b0, b1) = bilinear_src(ox, g.w, g.ow);
                        let (b0, b1) = (E::of(b0), E::of(b1));
                        for (r, a) in [(y0, a0), (y1, a1)] {
                            for (c, b) in [(x0, b0), (x1, b1)] {
                                let t = &mut d[r * g.w + c];
                                *t = *t + *v * a * b;
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// `Σ f(a_i, b_i)` over the values `i` of channel `c` (rows `(s, c)` of the
/// `[batch, channels, spatial]` buffers `a` and `b`), in f64 with eight
/// interleaved partial sums (so the loop vectorises), in a fixed order.
#[inline]
fn channel_sum<E: Elem>(
    d: &BatchNormDims,
    c: usize,
    a: &[E],
    b: &[E],
    f: impl Fn(E, E) -> f64,
) -> f64 {
    let (mut lanes, mut tail) = ([0.0f64; 8], 0.0);
    for s in 0..d.batch {
        let o = (s * d.channels + c) * d.spatial;
        let (mut ca, mut cb) = (
            a[o..o + d.spatial].chunks_exact(8),
            b[o..o + d.spatial].chunks_exact(8),
        );
        for (xa, xb) in (&mut ca).zip(&mut cb) {
            for k in 0..8 {
                lanes[k] += f(xa[k], xb[k]);
            }
        }
        for (p, q) in ca.remainder().iter().zip(cb.remainder()) {
            tail += f(*p, *q);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Runs `f(c, a_c, b_c)` over channels, in parallel when the tensor is large.
fn per_channel<E: Elem>(
    d: &BatchNormDims,
    a: &mut [E],
    b: &mut [E],
    f: impl Fn(usize, &mut E, &mut E) + Send + Sync,
) {
    let big = d.batch * d.channels * d.spatial >= PAR_MIN;
    pieces2(a, 1, b, 1, d.channels, big, |c, x, y| {
        f(c, &mut x[0], &mut y[0])
    });
}

pub(crate) fn batch_norm_stats<E: Elem>(
    d: &BatchNormDims,
    x: &[E],
    mean: &mut [E],
    var: &mut [E],
) -> Result<()> {
    need("batch_norm_stats x", x, d.batch * d.channels * d.spatial)?;
    need("batch_norm_stats mean", mean, d.channels)?;
    need("batch_norm_stats var", var, d.channels)?;
    let m = (d.batch * d.spatial) as f64;
    per_channel(d, mean, var, |c, mu, v| {
        let mean = channel_sum(d, c, x, x, |v, _| v.f64()) / m;
        let var = channel_sum(d, c, x, x, |v, _| {
            let t = v.f64() - mean;
            t * t
        }) / m;
        *mu = E::of(mean);
        *v = E::of(var);
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_running<E: Elem>(
    d: &BatchNormDims,
    momentum: f64,
    mean: &[E],
    var: &[E],
    rm: &mut [E],
    rv: &mut [E],
    tracked: &mut [E],
) -> Result<()> {
    let c = d.channels;
    need("batch_norm_running mean", mean, c)?;
    need("batch_norm_running var", var, c)?;
    need("batch_norm_running running_mean", rm, c)?;
    need("batch_norm_running running_var", rv, c)?;
    need("batch_norm_running num_batches_tracked", tracked, 1)?;
    let count = (d.batch * d.spatial) as f64;
    let (keep, m) = (E::of(1.0 - momentum), E::of(momentum));
    let unbias = E::of(count / (count - 1.0));
    for i in 0..c {
        rm[i] = keep * rm[i] + m * mean[i];
        rv[i] = keep * rv[i] + m * var[i] * unbias;
    }
    tracked[0] = tracked[0] + E::one();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_fwd<E: Elem>(
    d: &BatchNormDims,
    x: &[E],
    mean: &[E],
    var: &[E],
    gamma: &[E],
    beta: &[E],
    y: &mut [E],
) -> Result<()> {
    let n = d.batch * d.channels * d.spatial;
    need("batch_norm_fwd x", x, n)?;
    need("batch_norm_fwd y", y, n)?;
    for (what, b) in [
        ("batch_norm_fwd mean", mean),
        ("batch_norm_fwd var", var),
        ("batch_norm_fwd gamma", gamma),
        ("batch_norm_fwd beta", beta),
    ] {
        need(what, b, d.channels)?;
    }
    let eps = E::of(d.eps);
    pieces(&mut y[..n], d.spatial, |k, row| {
        let c = k % d.channels;
        let scale = gamma[c] / (var[c] + eps).sqrt();
        let (mu, b) = (mean[c], beta[c]);
        for (v, xv) in row.iter_mut().zip(&x[k * d.spatial..][..d.spatial]) {
            *v = (*xv - mu) * scale + b;
        }
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_bwd<E: Elem>(
    d: &BatchNormDims,
    x: &[E],
    mean: &[E],
    var: &[E],
    gamma: &[E],
    dy: &[E],
    dx: Option<(&mut Vec<E>, Acc)>,
    dgamma: &mut [E],
    dbeta: &mut [E],
    gacc: Acc,
    scratch: &mut [E],
) -> Result<()> {
    let (n, ch) = (d.batch * d.channels * d.spatial, d.channels);
    need("batch_norm_bwd x", x, n)?;
    need("batch_norm_bwd dy", dy, n)?;
    need("batch_norm_bwd scratch", scratch, 2 * ch)?;
    for (what, b) in [
        ("batch_norm_bwd mean", mean),
        ("batch_norm_bwd var", var),
        ("batch_norm_bwd gamma", gamma),
    ] {
        need(what, b, ch)?;
    }
    need("batch_norm_bwd dgamma", dgamma, ch)?;
    need("batch_norm_bwd dbeta", dbeta, ch)?;
    let eps = d.eps;
    let inv = |c: usize| 1.0 / (var[c].f64() + eps).sqrt();
    // Pass 1: Σdy and Σdy·x̂ per channel.
    let (sdy, sdyx) = scratch[..2 * ch].split_at_mut(ch);
    per_channel(d, sdy, sdyx, |c, a, b| {
        let (mu, is) = (mean[c].f64(), inv(c));
        *a = E::of(channel_sum(d, c, dy, dy, |g, _| g.f64()));
        *b = E::of(channel_sum(d, c, dy, x, |g, v| g.f64() * (v.f64() - mu)) * is);
    });
    for c in 0..ch {
        gacc.put(&mut dbeta[c], sdy[c]);
        gacc.put(&mut dgamma[c], sdyx[c]);
    }
    // Pass 2: dx = (γ/σ)·(dy − Σdy/M − x̂·Σ(dy·x̂)/M).
    if let Some((dx, acc)) = dx {
        need("batch_norm_bwd dx", dx, n)?;
        let m = E::of((d.batch * d.spatial) as f64);
        let (sdy, sdyx) = (&*sdy, &*sdyx);
        pieces(&mut dx[..n], d.spatial, |k, row| {
            let c = k % ch;
            let is = E::of(inv(c));
            let (mu, scale) = (mean[c], gamma[c] * is);
            let (a, b) = (sdy[c] / m, sdyx[c] / m);
            let (xr, gr) = (
                &x[k * d.spatial..][..d.spatial],
                &dy[k * d.spatial..][..d.spatial],
            );
            for ((v, xv), g) in row.iter_mut().zip(xr).zip(gr) {
                let xh = (*xv - mu) * is;
                acc.put(v, scale * (*g - a - xh * b));
            }
        });
    }
    Ok(())
}

/// `1/(1 − p)`, or 0 when everything is dropped.
fn keep_scale(p: f64) -> f64 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

pub(crate) fn dropout_fwd<E: Elem>(
    x: &[E],
    y: &mut [E],
    n: usize,
    p: f64,
    seed: u64,
) -> Result<()> {
    need("dropout x", x, n)?;
    need("dropout y", y, n)?;
    let (thr, scale) = (dropout_threshold(p), E::of(keep_scale(p)));
    pieces(&mut y[..n], 1 << 12, |k, c| {
        let o = k << 12;
        for (t, v) in c.iter_mut().enumerate() {
            let i = o + t;
            *v = if dropout_keep(seed, i as u64, thr) {
                x[i] * scale
            } else {
                E::zero()
            };
        }
    });
    Ok(())
}

pub(crate) fn dropout_bwd<E: Elem>(
    dy: &[E],
    dx: &mut [E],
    n: usize,
    p: f64,
    seed: u64,
    acc: Acc,
) -> Result<()> {
    need("dropout_bwd dy", dy, n)?;
    need("dropout_bwd dx", dx, n)?;
    let (thr, scale) = (dropout_threshold(p), E::of(keep_scale(p)));
    pieces(&mut dx[..n], 1 << 12, |k, c| {
        let o = k << 12;
        for (t, v) in c.iter_mut().enumerate() {
            let i = o + t;
            let g = if dropout_keep(seed, i as u64, thr) {
                dy[i] * scale
            } else {
                E::zero()
            };
            acc.put(v, g);
        }
    });
    Ok(())
}
