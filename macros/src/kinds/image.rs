//! Shape helpers shared by the image kinds (NCHW): output sizes are computed
//! here, at expansion time, which is why convolutions work on stable Rust.

use crate::diag::dims;

/// The input as an image `(C, H, W)`, or why it is not one.
pub fn need_image(who: &str, input: &[usize], from: &str) -> Result<(usize, usize, usize), String> {
    match input {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!(
            "`{who}` needs an image [C, H, W] but `{from}` gives {}{}",
            dims(input),
            if input.len() == 1 {
                "; it must come before `flatten`"
            } else {
                ""
            }
        )),
    }
}

/// `(H + 2p − d·(k − 1) − 1)/s + 1`, or why the window does not fit.
pub fn window_out(
    who: &str,
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    axis: &str,
) -> Result<usize, String> {
    if k == 0 || s == 0 || d == 0 {
        return Err(format!(
            "`{who}`: kernel, stride and dilation must be at least 1"
        ));
    }
    let span = d * (k - 1) + 1;
    if n + 2 * p < span {
        return Err(format!(
            "`{who}`: the kernel spans {span} {axis} (kernel {k}, dilation {d}) but the padded input has only {} ({n} + 2×{p})",
            n + 2 * p
        ));
    }
    Ok((n + 2 * p - span) / s + 1)
}

/// The rounding of a strided window along one axis, when its windows do
/// not tile the padded input: `rows: ⌊(15 + 2×1 − 3)/2⌋ + 1 = 8 (15 + 2×1 − 3 = 14 …)`.
pub fn window_rounding(
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    axis: &str,
) -> Option<String> {
    let span = d * (k - 1) + 1;
    let room = (n + 2 * p).checked_sub(span)?;
    if s <= 1 || room % s == 0 {
        return None;
    }
    Some(format!(
        "{axis}: ⌊({n} + 2×{p} − {span})/{s}⌋ + 1 = {}, rounded down (the windows do not tile the {n} input {axis}: the last {} not covered)",
        room / s + 1,
        room % s
    ))
}

/// The explanation of a window layer's output size for messages: the axes
/// that round down, or `None`.
pub fn explain_windows(
    n: (usize, usize),
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    d: (usize, usize),
) -> Option<String> {
    if (n.0, k.0, s.0, p.0, d.0) == (n.1, k.1, s.1, p.1, d.1) {
        return window_rounding(n.0, k.0, s.0, p.0, d.0, "rows and columns");
    }
    let parts: Vec<String> = [
        window_rounding(n.0, k.0, s.0, p.0, d.0, "rows"),
        window_rounding(n.1, k.1, s.1, p.1, d.1, "columns"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A declared channel count against the inferred one.
pub fn check_channels(
    who: &str,
    declared: Option<usize>,
    got: usize,
    input: &[usize],
    from: &str,
) -> Result<(), String> {
    match declared {
        Some(d) if d != got => Err(format!(
            "`{who}` expects {d} input channels but `{from}` gives {got} (shape {})",
            dims(input)
        )),
        Some(0) => Err(format!(
            "`{who}` has zero channels; every dimension must be at least 1"
        )),
        _ => Ok(()),
    }
}

/// `(C, H, W)` of a shape, zeros where it has fewer dimensions.
pub fn chw(d: &[usize]) -> (usize, usize, usize) {
    (
        d.first().copied().unwrap_or(0),
        d.get(1).copied().unwrap_or(0),
        d.get(2).copied().unwrap_or(0),
    )
}
