//! Loop helpers shared by the CPU bodies of the kernel families: disjoint
//! pieces of an output handed to kiln's pool (`crate::gemm::par`, which
//! allocates nothing per call), and the window arithmetic of convolution and
//! pooling.
//!
//! Parallelism: every kernel splits its output into disjoint pieces (rows of
//! the im2col matrix, image planes, channels), so no two tasks write the same
//! element and results do not depend on the thread count. Small calls run on
//! the calling thread. Nothing here allocates.

use crate::device::Window2d;
use crate::gemm::par::{self, SyncPtr};

/// Below this many touched elements a kernel runs on one thread.
pub(crate) const PAR_MIN: usize = 1 << 14;

/// Calls `f(k, piece)` for the consecutive pieces of length `len` of `dst`,
/// in parallel when `dst` is large.
pub(crate) fn pieces<T: Send>(
    dst: &mut [T],
    len: usize,
    f: impl Fn(usize, &mut [T]) + Send + Sync,
) {
    let big = dst.len() >= PAR_MIN;
    par::pieces(dst, len, big, f);
}

/// Like [`pieces`] over two buffers cut into pieces of `la` and `lb`
/// elements (`count` pieces each); `big` says whether to go parallel.
pub(crate) fn pieces2<A: Send, B: Send>(
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
pub(crate) fn valid(on: usize, n: usize, s: usize, off: isize) -> (usize, usize) {
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
pub(crate) fn window_taps(
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
pub(crate) fn offsets(g: &Window2d, i: usize, j: usize) -> (isize, isize) {
    (
        (i * g.dh) as isize - g.ph as isize,
        (j * g.dw) as isize - g.pw as isize,
    )
}
