//! The core trait: memory, products, bias, activations and element-wise maps.

use super::*;

pub(crate) fn gemms(r: &mut Rng) -> Vec<Gemm> {
    let mut v = Vec::new();
    for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 10, 100), (2, 3, 0)] {
        for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
            for &beta in &[0.0, 1.0] {
                let mut g = Gemm::dense(m, n, k, ta, tb);
                g.beta = beta;
                if r.random_bool(0.5) {
                    g.alpha = 0.5;
                    g.a_off = 3;
                    g.lda += 2;
                    g.b_off = 1;
                    g.ldb += 3;
                    g.c_off = 2;
                    g.ldc += 1;
                }
                v.push(g);
            }
        }
    }
    v
}

pub(crate) fn span(off: usize, rows: usize, ld: usize, cols: usize) -> usize {
    off + rows.saturating_sub(1) * ld + cols + 2
}

pub(crate) fn memory<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &n in &SIZES {
        let v: Vec<E> = rand_vec(r, n, 3.0);
        let b = up(d, &v);
        rep.add::<E>("upload/download", &down(d, &b), &v);
        // fill a prefix
        let mut b2 = up(d, &v);
        let k = n / 2 + 1;
        let mut want = v.clone();
        <Cpu as Backend<E>>::fill(&Cpu, &mut want, k, E::of(0.75)).unwrap();
        <Cuda as Backend<E>>::fill(d, &mut b2, k, E::of(0.75)).unwrap();
        rep.add::<E>("fill", &down(d, &b2), &want);
        // copy a prefix
        let w: Vec<E> = rand_vec(r, n, 3.0);
        let mut bw = up(d, &w);
        let mut want = w.clone();
        <Cpu as Backend<E>>::copy(&Cpu, &v, &mut want, k).unwrap();
        <Cuda as Backend<E>>::copy(d, &b, &mut bw, k).unwrap();
        rep.add::<E>("copy", &down(d, &bw), &want);
    }
    // resize keeps capacity and zeroes new elements
    let v: Vec<E> = rand_vec(r, 100, 1.0);
    let mut b = up(d, &v);
    <Cuda as Backend<E>>::resize::<E>(d, &mut b, 40).unwrap();
    assert_eq!(b.capacity(), 100);
    <Cuda as Backend<E>>::resize::<E>(d, &mut b, 100).unwrap();
    assert_eq!(b.capacity(), 100);
    let mut want = v.clone();
    want.truncate(40);
    want.resize(100, E::zero());
    rep.add::<E>("resize", &down(d, &b), &want);
    <Cuda as Backend<E>>::resize::<E>(d, &mut b, 150).unwrap();
    want.resize(150, E::zero());
    rep.add::<E>("resize", &down(d, &b), &want);
    let mut e = <Cuda as Backend<E>>::zeros::<E>(d, 0).unwrap();
    assert_eq!(e.capacity(), 0);
    <Cuda as Backend<E>>::resize::<E>(d, &mut e, 3).unwrap();
    rep.add::<E>("resize", &down(d, &e), &[E::zero(); 3]);
}

pub(crate) fn gemm<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for g in gemms(r) {
        let (ar, ac) = if g.trans_a { (g.k, g.m) } else { (g.m, g.k) };
        let (br, bc) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
        let a: Vec<E> = rand_vec(r, span(g.a_off, ar, g.lda, ac), 1.0);
        let b: Vec<E> = rand_vec(r, span(g.b_off, br, g.ldb, bc), 1.0);
        let c: Vec<E> = rand_vec(r, span(g.c_off, g.m, g.ldc, g.n), 1.0);
        let mut want = c.clone();
        <Cpu as Backend<E>>::gemm(&Cpu, &g, &a, &b, &mut want).unwrap();
        let (da, db, mut dc) = (up(d, &a), up(d, &b), up(d, &c));
        <Cuda as Backend<E>>::gemm(d, &g, &da, &db, &mut dc).unwrap();
        rep.add::<E>("gemm", &down(d, &dc), &want);
    }
}

pub(crate) fn gemm_batched<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for g in gemms(r) {
        let (ar, ac) = if g.trans_a { (g.k, g.m) } else { (g.m, g.k) };
        let (br, bc) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
        for (sa0, sb0) in [(false, false), (true, false), (false, true)] {
            let batch = 3;
            let (fa, fb, fc) = (
                span(0, ar, g.lda, ac),
                span(0, br, g.ldb, bc),
                span(0, g.m, g.ldc, g.n),
            );
            let gb = GemmBatched {
                gemm: g,
                batch,
                stride_a: if sa0 { 0 } else { fa },
                stride_b: if sb0 { 0 } else { fb },
                stride_c: fc,
            };
            let a: Vec<E> = rand_vec(r, g.a_off + (batch - 1) * gb.stride_a + fa, 1.0);
            let b: Vec<E> = rand_vec(r, g.b_off + (batch - 1) * gb.stride_b + fb, 1.0);
            let c: Vec<E> = rand_vec(r, g.c_off + (batch - 1) * gb.stride_c + fc, 1.0);
            let mut want = c.clone();
            <Cpu as Backend<E>>::gemm_batched(&Cpu, &gb, &a, &b, &mut want).unwrap();
            let (da, db, mut dc) = (up(d, &a), up(d, &b), up(d, &c));
            <Cuda as Backend<E>>::gemm_batched(d, &gb, &da, &db, &mut dc).unwrap();
            rep.add::<E>("gemm_batched", &down(d, &dc), &want);
        }
    }
}

pub(crate) fn shapes() -> Vec<(usize, usize)> {
    vec![(1, 1), (5, 7), (7, 33), (3, 100), (257, 10), (40, 300)]
}

pub(crate) fn bias<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for (rows, cols) in shapes() {
        let y: Vec<E> = rand_vec(r, rows * cols, 2.0);
        let b: Vec<E> = rand_vec(r, cols, 2.0);
        let mut want = y.clone();
        <Cpu as Backend<E>>::add_bias(&Cpu, &mut want, &b, rows, cols).unwrap();
        let mut dy = up(d, &y);
        <Cuda as Backend<E>>::add_bias(d, &mut dy, &up(d, &b), rows, cols).unwrap();
        rep.add::<E>("add_bias", &down(d, &dy), &want);
        for acc in [Acc::Set, Acc::Add] {
            let db0: Vec<E> = rand_vec(r, cols, 1.0);
            let mut want = db0.clone();
            <Cpu as Backend<E>>::bias_grad(&Cpu, &y, &mut want, rows, cols, acc).unwrap();
            let mut ddb = up(d, &db0);
            <Cuda as Backend<E>>::bias_grad(d, &up(d, &y), &mut ddb, rows, cols, acc).unwrap();
            rep.add::<E>("bias_grad", &down(d, &ddb), &want);
        }
    }
}

/// A dense layer's product with its epilogue (`gemm_bias_act`: cuBLAS, then
/// the fused `<f>_bias_fwd` kernel, or `add_bias` alone, or `act_fwd` alone)
/// and the fused backward (`bias_act_bwd`: `<f>_bias_bwd`), against the CPU.
pub(crate) fn bias_act<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    // Every function of the element-wise table, so that each fused kernel runs.
    for &f in Act::ALL {
        for (rows, cols) in shapes() {
            let k = 9;
            let g = Gemm::dense(rows, cols, k, false, true);
            let a: Vec<E> = rand_vec(r, rows * k, 1.0);
            let w: Vec<E> = rand_vec(r, cols * k, 1.0);
            let bias: Vec<E> = rand_vec(r, cols, 1.0);
            let (da, dw, dbias) = (up(d, &a), up(d, &w), up(d, &bias));
            for (with_bias, with_act) in [(true, true), (true, false), (false, true)] {
                let (mut pre, mut y) = (vec![E::zero(); rows * cols], vec![E::zero(); rows * cols]);
                <Cpu as Backend<E>>::gemm_bias_act(
                    &Cpu,
                    &g,
                    &a,
                    &w,
                    &mut pre,
                    with_bias.then_some(&bias),
                    with_act.then_some((f, &mut y)),
                )
                .unwrap();
                let (mut dpre, mut dy) = (
                    up(d, &vec![E::zero(); rows * cols]),
                    up(d, &vec![E::zero(); rows * cols]),
                );
                <Cuda as Backend<E>>::gemm_bias_act(
                    d,
                    &g,
                    &da,
                    &dw,
                    &mut dpre,
                    with_bias.then_some(&dbias),
                    with_act.then_some((f, &mut dy)),
                )
                .unwrap();
                rep.add::<E>("gemm_bias_act pre", &down(d, &dpre), &pre);
                if with_act {
                    rep.add::<E>("gemm_bias_act y", &down(d, &dy), &y);
                }
            }
            let x: Vec<E> = rand_nonzero(r, rows * cols, 4.0);
            let mut y = vec![E::zero(); rows * cols];
            <Cpu as Backend<E>>::act_fwd(&Cpu, f, &x, &mut y, rows * cols).unwrap();
            let gy: Vec<E> = rand_vec(r, rows * cols, 1.0);
            for acc in [Acc::Set, Acc::Add] {
                let db0: Vec<E> = rand_vec(r, cols, 1.0);
                let (mut dx, mut db) = (vec![E::zero(); rows * cols], db0.clone());
                <Cpu as Backend<E>>::bias_act_bwd(
                    &Cpu, f, &x, &y, &gy, &mut dx, &mut db, rows, cols, acc,
                )
                .unwrap();
                let (mut ddx, mut ddb) = (up(d, &vec![E::zero(); rows * cols]), up(d, &db0));
                <Cuda as Backend<E>>::bias_act_bwd(
                    d,
                    f,
                    &up(d, &x),
                    &up(d, &y),
                    &up(d, &gy),
                    &mut ddx,
                    &mut ddb,
                    rows,
                    cols,
                    acc,
                )
                .unwrap();
                rep.add::<E>("bias_act_bwd dx", &down(d, &ddx), &dx);
                rep.add::<E>("bias_act_bwd db", &down(d, &ddb), &db);
            }
        }
    }
}

pub(crate) fn acts<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    // Every function of kiln-core's element-wise table, and a second slope.
    for &f in Act::ALL.iter().chain(&[Act::LeakyRelu(0.3)]) {
        for &n in &SIZES {
            let x: Vec<E> = rand_nonzero(r, n, 4.0);
            let mut y = vec![E::zero(); n];
            <Cpu as Backend<E>>::act_fwd(&Cpu, f, &x, &mut y, n).unwrap();
            let (dx_, mut dy_) = (up(d, &x), up(d, &vec![E::zero(); n]));
            <Cuda as Backend<E>>::act_fwd(d, f, &dx_, &mut dy_, n).unwrap();
            rep.add::<E>("act_fwd", &down(d, &dy_), &y);
            for acc in [Acc::Set, Acc::Add] {
                let g: Vec<E> = rand_vec(r, n, 1.0);
                let dx0: Vec<E> = rand_vec(r, n, 1.0);
                let mut want = dx0.clone();
                <Cpu as Backend<E>>::act_bwd(&Cpu, f, &x, &y, &g, &mut want, n, acc).unwrap();
                let mut ddx = up(d, &dx0);
                <Cuda as Backend<E>>::act_bwd(d, f, &dx_, &up(d, &y), &up(d, &g), &mut ddx, n, acc)
                    .unwrap();
                rep.add::<E>("act_bwd", &down(d, &ddx), &want);
            }
        }
    }
}

pub(crate) fn elementwise<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    let mut sizes = SIZES.to_vec();
    if on_gpu() {
        // more than MAX_GRID · BLOCK elements: the grid-stride loop's second lap
        // (in emulation the large `sum_fwd` of `losses` covers the same loop macro)
        sizes.push(kiln_cuda::plan::MAX_GRID as usize * kiln_cuda::plan::BLOCK as usize + 777);
    }
    for n in sizes {
        let a: Vec<E> = rand_vec(r, n, 2.0);
        let b: Vec<E> = rand_vec(r, n, 2.0);
        let mut want = vec![E::zero(); n];
        <Cpu as Backend<E>>::add(&Cpu, &a, &b, &mut want, n).unwrap();
        let mut dy = up(d, &vec![E::zero(); n]);
        <Cuda as Backend<E>>::add(d, &up(d, &a), &up(d, &b), &mut dy, n).unwrap();
        rep.add::<E>("add", &down(d, &dy), &want);
        for acc in [Acc::Set, Acc::Add] {
            let mut want = b.clone();
            <Cpu as Backend<E>>::axpy(&Cpu, E::of(-1.5), &a, &mut want, n, acc).unwrap();
            let mut db = up(d, &b);
            <Cuda as Backend<E>>::axpy(d, E::of(-1.5), &up(d, &a), &mut db, n, acc).unwrap();
            rep.add::<E>("axpy", &down(d, &db), &want);
        }
    }
    for &(rows, cols, src_ld, src_off, dst_ld, dst_off) in &[
        (1, 1, 1, 0, 1, 0),
        (3, 4, 10, 2, 9, 5),
        (37, 5, 5, 0, 12, 7),
        (300, 3, 8, 4, 3, 0),
    ] {
        for acc in [Acc::Set, Acc::Add] {
            let src: Vec<E> = rand_vec(r, (rows - 1) * src_ld + src_off + cols + 1, 2.0);
            let dst: Vec<E> = rand_vec(r, (rows - 1) * dst_ld + dst_off + cols + 3, 2.0);
            let mut want = dst.clone();
            let blk = Block {
                rows,
                cols,
                src_ld,
                src_off,
                dst_ld,
                dst_off,
            };
            <Cpu as Backend<E>>::copy_block(&Cpu, &blk, &src, &mut want, acc).unwrap();
            let mut dd = up(d, &dst);
            <Cuda as Backend<E>>::copy_block(d, &blk, &up(d, &src), &mut dd, acc).unwrap();
            rep.add::<E>("copy_block", &down(d, &dd), &want);
        }
    }
}

/// Sizes a user can type are errors, never aborts (issue 13): an element
/// count whose byte size overflows, one no device can hold, and a batch
/// whose `batch · NUMEL` would wrap.
#[test]
fn impossible_allocations_are_errors_naming_the_size() {
    use kiln_core::{Tensor, S1};
    let d = device();
    for n in [usize::MAX / 2, 1usize << 46] {
        let e = <Cuda as Backend<f32>>::zeros::<f32>(&d, n)
            .err()
            .unwrap_or_else(|| panic!("{n} elements allocated"))
            .to_string();
        assert!(e.contains(&n.to_string()), "{e}");
    }
    let mut t = Tensor::<S1<784>, f32, Cuda>::zeros(&d, 1).unwrap();
    let Err(e) = t.set_batch(usize::MAX / 784 + 2) else {
        panic!("a wrapping batch was accepted");
    };
    let e = e.to_string();
    assert!(
        e.contains(&(usize::MAX / 784 + 2).to_string()) && e.contains("784"),
        "{e}"
    );
    assert_eq!(t.batch(), 1);
    t.set_batch(3).unwrap();
}
