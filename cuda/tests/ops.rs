//! Every `Backend` method of the CUDA device against the CPU device, on random
//! inputs (sizes that are and are not multiples of the block sizes), f32 and
//! f64, `Acc::Set` and `Acc::Add`.
//!
//! By default the CUDA device is the host emulation: kiln's CUDA C kernels
//! compiled with the system C++ compiler against `tests/shim/cuda_shim.h` and
//! run with one host thread per CUDA thread, products through the column-major
//! reference on the exact cuBLAS arguments. With `KILN_TEST_GPU=1` the same
//! checks run on GPU 0 (scripts/gpu-check), with the GPU tolerance
//! |a − b| ≤ 1e-4·(1 + |b|).

mod common;

use common::*;
use kiln_core::device::Block;
use kiln_core::device::{
    AdagradArgs, AdamArgs, BatchNormDims, LossKind, LossTarget, Resize2d, RmspropArgs, SgdArgs,
    UpsampleMode, Window2d,
};
use kiln_core::kernels::{
    BatchNormKernels, ConvKernels, DropoutKernels, EmbeddingKernels, LossKernels, OptimKernels,
    PReluDims, PReluKernels, PoolKernels, SoftmaxKernels, UpsampleKernels,
};
use kiln_core::layers::{LayerNormDims, LayerNormKernels};
use kiln_core::{rng, Acc, Act, Backend, Cpu, Device, Elem, Gemm, GemmBatched, Rng};
use kiln_cuda::Cuda;
use rand::Rng as _;

fn on_gpu() -> bool {
    std::env::var("KILN_TEST_GPU").as_deref() == Ok("1")
}

fn device() -> Cuda {
    if on_gpu() {
        Cuda::new(0).unwrap_or_else(|e| panic!("KILN_TEST_GPU=1 but {e}"))
    } else {
        emulated()
    }
}

fn tolerance<E: Elem>() -> f64 {
    if on_gpu() {
        1e-4
    } else {
        tol::<E>()
    }
}

/// Records the largest error per op, printed at the end as a summary table.
struct Report {
    rows: Vec<(String, &'static str, f64)>,
}

impl Report {
    fn add<E: Elem>(&mut self, op: &str, got: &[E], want: &[E]) {
        let e = check(op, got, want, tolerance::<E>());
        match self.rows.iter_mut().find(|r| r.0 == op && r.1 == E::NAME) {
            Some(r) => r.2 = r.2.max(e),
            None => self.rows.push((op.to_string(), E::NAME, e)),
        }
    }
}

const SIZES: [usize; 6] = [1, 31, 255, 256, 257, 1000];

fn memory<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

fn gemms(r: &mut Rng) -> Vec<Gemm> {
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

fn span(off: usize, rows: usize, ld: usize, cols: usize) -> usize {
    off + rows.saturating_sub(1) * ld + cols + 2
}

fn gemm<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

fn gemm_batched<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

fn embedding<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(n, vocab, dim) in &[(1, 1, 1), (7, 5, 3), (300, 65, 33), (64, 1000, 8)] {
        let w: Vec<E> = rand_vec(r, vocab * dim, 1.0);
        // ids with repeats (more positions than rows, or a skewed draw)
        let ids: Vec<u32> = (0..n)
            .map(|_| r.random_range(0..vocab.min(n / 2 + 1)) as u32)
            .collect();
        let (dw_, dids) = (up(d, &w), up_u32::<E>(d, &ids));
        let mut want = vec![E::zero(); n * dim];
        <Cpu as EmbeddingKernels<E>>::embedding_fwd(&Cpu, &w, &ids, &mut want, n, vocab, dim)
            .unwrap();
        let mut dy_ = up(d, &vec![E::zero(); n * dim]);
        <Cuda as EmbeddingKernels<E>>::embedding_fwd(d, &dw_, &dids, &mut dy_, n, vocab, dim)
            .unwrap();
        rep.add::<E>("embedding_fwd", &down(d, &dy_), &want);
        let g: Vec<E> = rand_vec(r, n * dim, 1.0);
        let dg = up(d, &g);
        for padding in [None, Some(ids[0] as usize)] {
            for acc in [Acc::Set, Acc::Add] {
                let start: Vec<E> = rand_vec(r, vocab * dim, 1.0);
                let mut want = start.clone();
                <Cpu as EmbeddingKernels<E>>::embedding_bwd(
                    &Cpu, &ids, &g, &mut want, n, vocab, dim, padding, acc,
                )
                .unwrap();
                let mut dd = up(d, &start);
                <Cuda as EmbeddingKernels<E>>::embedding_bwd(
                    d, &dids, &dg, &mut dd, n, vocab, dim, padding, acc,
                )
                .unwrap();
                rep.add::<E>("embedding_bwd", &down(d, &dd), &want);
            }
        }
    }
}

fn shapes() -> Vec<(usize, usize)> {
    vec![(1, 1), (5, 7), (7, 33), (3, 100), (257, 10), (40, 300)]
}

fn bias<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

fn acts<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

fn elementwise<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

fn softmax<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(rows, cols) in &[(1, 1), (1, 3), (5, 31), (7, 33), (9, 100), (130, 10)] {
        let x: Vec<E> = rand_vec(r, rows * cols, 6.0);
        let mut y = vec![E::zero(); rows * cols];
        <Cpu as SoftmaxKernels<E>>::softmax_fwd(&Cpu, &x, &mut y, rows, cols).unwrap();
        let mut dy_ = up(d, &vec![E::zero(); rows * cols]);
        <Cuda as SoftmaxKernels<E>>::softmax_fwd(d, &up(d, &x), &mut dy_, rows, cols).unwrap();
        rep.add::<E>("softmax_fwd", &down(d, &dy_), &y);
        for acc in [Acc::Set, Acc::Add] {
            let g: Vec<E> = rand_vec(r, rows * cols, 1.0);
            let dx0: Vec<E> = rand_vec(r, rows * cols, 1.0);
            let mut want = dx0.clone();
            <Cpu as SoftmaxKernels<E>>::softmax_bwd(&Cpu, &y, &g, &mut want, rows, cols, acc)
                .unwrap();
            let mut ddx = up(d, &dx0);
            <Cuda as SoftmaxKernels<E>>::softmax_bwd(
                d,
                &up(d, &y),
                &up(d, &g),
                &mut ddx,
                rows,
                cols,
                acc,
            )
            .unwrap();
            rep.add::<E>("softmax_bwd", &down(d, &ddx), &want);
        }
    }
}

fn prelu<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(batch, channels, inner) in &[(1, 1, 1), (3, 1, 257), (2, 5, 31), (4, 3, 100), (300, 2, 1)]
    {
        let pd = PReluDims {
            batch,
            channels,
            inner,
        };
        let n = pd.numel();
        let mut x: Vec<E> = rand_vec(r, n, 2.0);
        x[0] = E::zero(); // x = 0 takes the negative branch (PyTorch's convention)
        let a: Vec<E> = rand_vec(r, channels, 1.0);
        let mut y = vec![E::zero(); n];
        <Cpu as PReluKernels<E>>::prelu_fwd(&Cpu, &pd, &x, &a, &mut y).unwrap();
        let mut dy_ = up(d, &vec![E::zero(); n]);
        <Cuda as PReluKernels<E>>::prelu_fwd(d, &pd, &up(d, &x), &up(d, &a), &mut dy_).unwrap();
        rep.add::<E>("prelu_fwd", &down(d, &dy_), &y);
        for acc in [Acc::Set, Acc::Add] {
            let g: Vec<E> = rand_vec(r, n, 1.0);
            let dx0: Vec<E> = rand_vec(r, n, 1.0);
            let da0: Vec<E> = rand_vec(r, channels, 1.0);
            let (mut want, mut wda) = (dx0.clone(), da0.clone());
            <Cpu as PReluKernels<E>>::prelu_bwd(
                &Cpu,
                &pd,
                &x,
                &a,
                &g,
                Some((&mut want, acc)),
                &mut wda,
                acc,
            )
            .unwrap();
            let (mut ddx, mut dda) = (up(d, &dx0), up(d, &da0));
            <Cuda as PReluKernels<E>>::prelu_bwd(
                d,
                &pd,
                &up(d, &x),
                &up(d, &a),
                &up(d, &g),
                Some((&mut ddx, acc)),
                &mut dda,
                acc,
            )
            .unwrap();
            rep.add::<E>("prelu_bwd dx", &down(d, &ddx), &want);
            rep.add::<E>("prelu_bwd dweight", &down(d, &dda), &wda);
        }
    }
}

fn layer_norm<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(rows, cols) in &[(1, 1), (3, 5), (7, 33), (9, 100), (130, 10), (2, 300)] {
        let ld = LayerNormDims {
            rows,
            cols,
            eps: 1e-5,
        };
        let n = rows * cols;
        let x: Vec<E> = rand_vec(r, n, 3.0);
        let (g, b): (Vec<E>, Vec<E>) = (rand_vec(r, cols, 1.0), rand_vec(r, cols, 1.0));
        // (γ, β), γ only, neither.
        for affine in 0..3 {
            let gamma = (affine < 2).then_some(&g);
            let beta = (affine == 0).then_some(&b);
            let (mut y, mut st) = (vec![E::zero(); n], vec![E::zero(); 2 * rows]);
            <Cpu as LayerNormKernels<E>>::layer_norm_fwd(
                &Cpu, &ld, &x, gamma, beta, &mut y, &mut st,
            )
            .unwrap();
            let (dg, db) = (up(d, &g), up(d, &b));
            let (mut dy_, mut dst) = (
                up(d, &vec![E::zero(); n]),
                up(d, &vec![E::zero(); 2 * rows]),
            );
            <Cuda as LayerNormKernels<E>>::layer_norm_fwd(
                d,
                &ld,
                &up(d, &x),
                gamma.map(|_| &dg),
                beta.map(|_| &db),
                &mut dy_,
                &mut dst,
            )
            .unwrap();
            rep.add::<E>("layer_norm_fwd y", &down(d, &dy_), &y);
            rep.add::<E>("layer_norm_fwd stats", &down(d, &dst), &st);
            for acc in [Acc::Set, Acc::Add] {
                let gy: Vec<E> = rand_vec(r, n, 1.0);
                let dx0: Vec<E> = rand_vec(r, n, 1.0);
                let (g0, b0): (Vec<E>, Vec<E>) = (rand_vec(r, cols, 1.0), rand_vec(r, cols, 1.0));
                let (mut want, mut wg, mut wb) = (dx0.clone(), g0.clone(), b0.clone());
                <Cpu as LayerNormKernels<E>>::layer_norm_bwd(
                    &Cpu,
                    &ld,
                    &x,
                    &st,
                    gamma,
                    &gy,
                    Some((&mut want, acc)),
                    gamma.map(|_| &mut wg),
                    beta.map(|_| &mut wb),
                    acc,
                )
                .unwrap();
                let (mut ddx, mut ddg, mut ddb) = (up(d, &dx0), up(d, &g0), up(d, &b0));
                <Cuda as LayerNormKernels<E>>::layer_norm_bwd(
                    d,
                    &ld,
                    &up(d, &x),
                    &dst,
                    gamma.map(|_| &dg),
                    &up(d, &gy),
                    Some((&mut ddx, acc)),
                    gamma.map(|_| &mut ddg),
                    beta.map(|_| &mut ddb),
                    acc,
                )
                .unwrap();
                rep.add::<E>("layer_norm_bwd dx", &down(d, &ddx), &want);
                rep.add::<E>("layer_norm_bwd dweight", &down(d, &ddg), &wg);
                rep.add::<E>("layer_norm_bwd dbias", &down(d, &ddb), &wb);
            }
        }
    }
}

fn losses<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    let kinds = [
        ("cross_entropy", LossKind::SoftmaxCrossEntropy),
        ("hinge", LossKind::Hinge { margin: 1.0 }),
        ("mse", LossKind::Mse),
        ("l1", LossKind::L1),
        ("bce_with_logits", LossKind::BceWithLogits),
    ];
    // On a GPU also (1, 70000): more values than REDUCE_GRID · REDUCE_BLOCK, so
    // `sum_fwd`'s grid-stride loop takes a second lap, and a warp loops 2188
    // times over one row. (In emulation `sum_sq` covers that loop: large
    // reduction grids are slow on the shim.)
    let mut shapes = vec![(1, 2), (3, 4), (37, 10), (300, 3), (5, 70)];
    if on_gpu() {
        shapes.push((1, 70000));
    }
    for &(rows, cols) in &shapes {
        let x: Vec<E> = rand_vec(r, rows * cols, 4.0);
        let labels: Vec<u32> = (0..rows).map(|_| r.random_range(0..cols as u32)).collect();
        let dense: Vec<E> = (0..rows * cols)
            .map(|_| E::of(r.random_range(0.0..=1.0)))
            .collect();
        let (dxb, dl, dt) = (up(d, &x), up_u32::<E>(d, &labels), up(d, &dense));
        // per-position cross-entropy: every row, and ignoring the first row's label
        let mut all = kinds.to_vec();
        all.push((
            "token_cross_entropy",
            LossKind::TokenCrossEntropy {
                ignore_index: None,
                positions: rows,
            },
        ));
        let positions = labels.iter().filter(|&&l| l != labels[0]).count();
        if positions > 0 {
            all.push((
                "token_cross_entropy ignore",
                LossKind::TokenCrossEntropy {
                    ignore_index: Some(labels[0]),
                    positions,
                },
            ));
        }
        for (name, kind) in all {
            let classes = matches!(
                kind,
                LossKind::SoftmaxCrossEntropy
                    | LossKind::Hinge { .. }
                    | LossKind::TokenCrossEntropy { .. }
            );
            let mut want_dx = vec![E::zero(); rows * cols];
            let want = {
                let t = if classes {
                    LossTarget::Classes(&labels)
                } else {
                    LossTarget::Dense(&dense)
                };
                <Cpu as LossKernels<E>>::loss(&Cpu, kind, &x, t, Some(&mut want_dx), rows, cols)
                    .unwrap()
            };
            let mut ddx = up(d, &rand_vec::<E>(r, rows * cols, 1.0));
            let got = {
                let t = if classes {
                    LossTarget::Classes(&dl)
                } else {
                    LossTarget::Dense(&dt)
                };
                <Cuda as LossKernels<E>>::loss(d, kind, &dxb, t, Some(&mut ddx), rows, cols)
                    .unwrap()
            };
            rep.add::<E>(&format!("loss {name}"), &[got], &[want]);
            rep.add::<E>(&format!("loss {name} grad"), &down(d, &ddx), &want_dx);
            let got_no_grad = {
                let t = if classes {
                    LossTarget::Classes(&dl)
                } else {
                    LossTarget::Dense(&dt)
                };
                <Cuda as LossKernels<E>>::loss(d, kind, &dxb, t, None, rows, cols).unwrap()
            };
            rep.add::<E>(&format!("loss {name}"), &[got_no_grad], &[want]);
        }
    }
}

fn optimizers<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &n in &[1usize, 257, 1000] {
        let sgds = [
            (0.1, 0.0, 0.0, 0.0, false),
            (0.05, 0.9, 0.0, 1e-2, false),
            (0.05, 0.9, 0.1, 0.0, true),
        ];
        for (lr, momentum, dampening, weight_decay, nesterov) in sgds {
            let mut p: Vec<E> = rand_vec(r, n, 1.0);
            let mut buf = if momentum != 0.0 {
                vec![E::zero(); n]
            } else {
                Vec::new()
            };
            let (mut dp, mut dbuf) = (up(d, &p), up(d, &buf));
            for step in 0..3 {
                let g: Vec<E> = rand_vec(r, n, 1.0);
                let a = SgdArgs {
                    lr,
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                    first: step == 0,
                };
                <Cpu as OptimKernels<E>>::sgd_step(&Cpu, &a, &mut p, &g, &mut buf, n).unwrap();
                <Cuda as OptimKernels<E>>::sgd_step(d, &a, &mut dp, &up(d, &g), &mut dbuf, n)
                    .unwrap();
            }
            rep.add::<E>("sgd_step", &down(d, &dp), &p);
            rep.add::<E>("sgd_step momentum", &down(d, &dbuf), &buf);
        }
        for (weight_decay, decoupled) in [(0.0, false), (0.01, false), (0.01, true)] {
            let mut p: Vec<E> = rand_vec(r, n, 1.0);
            let (mut m, mut v) = (vec![E::zero(); n], vec![E::zero(); n]);
            let (mut dp, mut dm, mut dv) = (up(d, &p), up(d, &m), up(d, &v));
            for step in 1..=4 {
                let g: Vec<E> = rand_vec(r, n, 1.0);
                let a = AdamArgs {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay,
                    decoupled,
                    step,
                };
                <Cpu as OptimKernels<E>>::adam_step(&Cpu, &a, &mut p, &g, &mut m, &mut v, n)
                    .unwrap();
                <Cuda as OptimKernels<E>>::adam_step(
                    d,
                    &a,
                    &mut dp,
                    &up(d, &g),
                    &mut dm,
                    &mut dv,
                    n,
                )
                .unwrap();
            }
            rep.add::<E>("adam_step", &down(d, &dp), &p);
            rep.add::<E>("adam_step m", &down(d, &dm), &m);
            rep.add::<E>("adam_step v", &down(d, &dv), &v);
        }
    }
}

fn toolkit<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    // 70000 > REDUCE_GRID · REDUCE_BLOCK: the reduction's grid-stride loop (f32
    // only in emulation, where large reduction grids are slow).
    let big = if on_gpu() || std::mem::size_of::<E>() == 4 {
        70000
    } else {
        1
    };
    for &n in &[1usize, 257, 1000, big] {
        let x: Vec<E> = rand_vec(r, n, 2.0);
        let dx = up(d, &x);
        let (a, b) = (
            <Cpu as Backend<E>>::sum_sq(&Cpu, &x, n).unwrap(),
            <Cuda as Backend<E>>::sum_sq(d, &dx, n).unwrap(),
        );
        rep.add::<f64>("sum_sq (f64 result)", &[b], &[a]);
        if n == 70000 {
            continue;
        }
        let (a, b) = (
            <Cpu as Backend<E>>::sum_abs(&Cpu, &x, n).unwrap(),
            <Cuda as Backend<E>>::sum_abs(d, &dx, n).unwrap(),
        );
        rep.add::<f64>("sum_abs (f64 result)", &[b], &[a]);
        let mut x0 = x.clone();
        x0[0] = E::zero(); // sign(0) = 0
        for acc in [Acc::Set, Acc::Add] {
            let dst: Vec<E> = rand_vec(r, n, 1.0);
            let mut want = dst.clone();
            <Cpu as OptimKernels<E>>::penalty_grad(&Cpu, 0.3, 0.05, &x0, &mut want, n, acc)
                .unwrap();
            let mut dd = up(d, &dst);
            <Cuda as OptimKernels<E>>::penalty_grad(d, 0.3, 0.05, &up(d, &x0), &mut dd, n, acc)
                .unwrap();
            rep.add::<E>("penalty_grad", &down(d, &dd), &want);
        }
        for p in [0.0, 0.3, 1.0] {
            let mut want = vec![E::zero(); n];
            <Cpu as DropoutKernels<E>>::dropout_fwd(&Cpu, &x, &mut want, n, p, 42).unwrap();
            let mut dy = up(d, &vec![E::zero(); n]);
            <Cuda as DropoutKernels<E>>::dropout_fwd(d, &dx, &mut dy, n, p, 42).unwrap();
            rep.add::<E>("dropout_fwd", &down(d, &dy), &want);
            for acc in [Acc::Set, Acc::Add] {
                let g0: Vec<E> = rand_vec(r, n, 1.0);
                let mut want = g0.clone();
                <Cpu as DropoutKernels<E>>::dropout_bwd(&Cpu, &x, &mut want, n, p, 42, acc)
                    .unwrap();
                let mut dg = up(d, &g0);
                <Cuda as DropoutKernels<E>>::dropout_bwd(d, &dx, &mut dg, n, p, 42, acc).unwrap();
                rep.add::<E>("dropout_bwd", &down(d, &dg), &want);
            }
        }
        // Adagrad
        let mut p: Vec<E> = rand_vec(r, n, 1.0);
        let mut sum = vec![E::of(0.1); n];
        let (mut dp, mut ds) = (up(d, &p), up(d, &sum));
        for step in 1..=3 {
            let g: Vec<E> = rand_vec(r, n, 1.0);
            let a = AdagradArgs {
                lr: 0.1,
                lr_decay: 0.01,
                weight_decay: 0.01,
                eps: 1e-10,
                step,
            };
            <Cpu as OptimKernels<E>>::adagrad_step(&Cpu, &a, &mut p, &g, &mut sum, n).unwrap();
            <Cuda as OptimKernels<E>>::adagrad_step(d, &a, &mut dp, &up(d, &g), &mut ds, n)
                .unwrap();
        }
        rep.add::<E>("adagrad_step", &down(d, &dp), &p);
        rep.add::<E>("adagrad_step sum", &down(d, &ds), &sum);
        // RMSprop: plain, centred (both lerp forms), with momentum
        for (alpha, momentum, centered) in [(0.99, 0.0, false), (0.9, 0.9, true), (0.3, 0.0, true)]
        {
            let mut p: Vec<E> = rand_vec(r, n, 1.0);
            let mut sq = vec![E::zero(); n];
            let mut ga = if centered {
                vec![E::zero(); n]
            } else {
                Vec::new()
            };
            let mut buf = if momentum > 0.0 {
                vec![E::zero(); n]
            } else {
                Vec::new()
            };
            let (mut dp, mut dsq, mut dga, mut dbuf) =
                (up(d, &p), up(d, &sq), up(d, &ga), up(d, &buf));
            for _ in 0..3 {
                let g: Vec<E> = rand_vec(r, n, 1.0);
                let a = RmspropArgs {
                    lr: 0.01,
                    alpha,
                    eps: 1e-8,
                    weight_decay: 0.01,
                    momentum,
                    centered,
                };
                <Cpu as OptimKernels<E>>::rmsprop_step(
                    &Cpu, &a, &mut p, &g, &mut sq, &mut ga, &mut buf, n,
                )
                .unwrap();
                <Cuda as OptimKernels<E>>::rmsprop_step(
                    d,
                    &a,
                    &mut dp,
                    &up(d, &g),
                    &mut dsq,
                    &mut dga,
                    &mut dbuf,
                    n,
                )
                .unwrap();
            }
            rep.add::<E>("rmsprop_step", &down(d, &dp), &p);
            rep.add::<E>("rmsprop_step square_avg", &down(d, &dsq), &sq);
        }
    }
}

/// Window geometries: padding, strides, dilations, non-square, sizes off the block size.
fn windows() -> Vec<Window2d> {
    vec![
        Window2d::new("t", 2, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2)).unwrap(),
        Window2d::new("t", 3, (7, 7), (2, 2), (2, 2), (0, 0), (1, 1)).unwrap(),
        Window2d::new("t", 1, (5, 4), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap(),
        Window2d::new("t", 2, (9, 6), (3, 3), (3, 2), (1, 1), (2, 1)).unwrap(),
    ]
}

fn conv<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for g in windows() {
        let batch = 3;
        let x: Vec<E> = rand_vec(r, batch * g.channels * g.in_plane(), 2.0);
        let dx = up(d, &x);
        for (first, count) in [(0, 3), (1, 2)] {
            let n = g.rows() * count * g.out_plane();
            let mut want = vec![E::zero(); n];
            <Cpu as ConvKernels<E>>::im2col(&Cpu, &g, &x, first, count, &mut want).unwrap();
            let mut dc = up(d, &vec![E::zero(); n]);
            <Cuda as ConvKernels<E>>::im2col(d, &g, &dx, first, count, &mut dc).unwrap();
            rep.add::<E>("im2col", &down(d, &dc), &want);
            let cols: Vec<E> = rand_vec(r, n, 1.0);
            for acc in [Acc::Set, Acc::Add] {
                let mut want = x.clone();
                <Cpu as ConvKernels<E>>::col2im(&Cpu, &g, &cols, &mut want, first, count, acc)
                    .unwrap();
                let mut dd = up(d, &x);
                <Cuda as ConvKernels<E>>::col2im(d, &g, &up(d, &cols), &mut dd, first, count, acc)
                    .unwrap();
                rep.add::<E>("col2im", &down(d, &dd), &want);
            }
        }
        // max pooling, unpooling both ways
        let planes = batch * g.channels;
        let (op, ip) = (g.out_plane(), g.in_plane());
        let mut y = vec![E::zero(); planes * op];
        let mut idx = vec![0u32; planes * op];
        <Cpu as PoolKernels<E>>::max_pool2d_fwd(&Cpu, &g, &x, &mut y, &mut idx, batch).unwrap();
        let (mut dy, mut didx) = (up(d, &y), up_u32::<E>(d, &idx));
        <Cuda as PoolKernels<E>>::max_pool2d_fwd(d, &g, &dx, &mut dy, &mut didx, batch).unwrap();
        rep.add::<E>("max_pool2d_fwd", &down(d, &dy), &y);
        let mut got_idx = vec![0u32; planes * op];
        <Cuda as Backend<E>>::download(d, &didx, &mut got_idx).unwrap();
        assert_eq!(got_idx, idx, "max_pool2d indices ({g:?})");
        for acc in [Acc::Set, Acc::Add] {
            let src: Vec<E> = rand_vec(r, planes * op, 1.0);
            let dst0: Vec<E> = rand_vec(r, planes * ip, 1.0);
            let mut want = dst0.clone();
            <Cpu as PoolKernels<E>>::max_unpool2d(&Cpu, &g, &idx, &src, &mut want, batch, acc)
                .unwrap();
            let mut dd = up(d, &dst0);
            <Cuda as PoolKernels<E>>::max_unpool2d(d, &g, &didx, &up(d, &src), &mut dd, batch, acc)
                .unwrap();
            rep.add::<E>("max_unpool2d", &down(d, &dd), &want);
            let big: Vec<E> = rand_vec(r, planes * ip, 1.0);
            let small0: Vec<E> = rand_vec(r, planes * op, 1.0);
            let mut want = small0.clone();
            <Cpu as PoolKernels<E>>::max_unpool2d_bwd(&Cpu, &g, &idx, &big, &mut want, batch, acc)
                .unwrap();
            let mut dd = up(d, &small0);
            <Cuda as PoolKernels<E>>::max_unpool2d_bwd(
                d,
                &g,
                &didx,
                &up(d, &big),
                &mut dd,
                batch,
                acc,
            )
            .unwrap();
            rep.add::<E>("max_unpool2d_bwd", &down(d, &dd), &want);
        }
        // average pooling
        let mut want = vec![E::zero(); planes * op];
        <Cpu as PoolKernels<E>>::avg_pool2d_fwd(&Cpu, &g, &x, &mut want, batch).unwrap();
        let mut dy = up(d, &vec![E::zero(); planes * op]);
        <Cuda as PoolKernels<E>>::avg_pool2d_fwd(d, &g, &dx, &mut dy, batch).unwrap();
        rep.add::<E>("avg_pool2d_fwd", &down(d, &dy), &want);
        for acc in [Acc::Set, Acc::Add] {
            let gy: Vec<E> = rand_vec(r, planes * op, 1.0);
            let mut want = x.clone();
            <Cpu as PoolKernels<E>>::avg_pool2d_bwd(&Cpu, &g, &gy, &mut want, batch, acc).unwrap();
            let mut dd = up(d, &x);
            <Cuda as PoolKernels<E>>::avg_pool2d_bwd(d, &g, &up(d, &gy), &mut dd, batch, acc)
                .unwrap();
            rep.add::<E>("avg_pool2d_bwd", &down(d, &dd), &want);
        }
    }
    // transpose01 and the per-channel bias
    for &(a, b, n) in &[(1, 1, 1), (3, 5, 7), (16, 6, 25), (2, 37, 3)] {
        for acc in [Acc::Set, Acc::Add] {
            let src: Vec<E> = rand_vec(r, a * b * n + 4, 1.0);
            let dst: Vec<E> = rand_vec(r, a * b * n + 3, 1.0);
            let mut want = dst.clone();
            <Cpu as ConvKernels<E>>::transpose01(&Cpu, &src, 4, &mut want, 3, a, b, n, acc)
                .unwrap();
            let mut dd = up(d, &dst);
            <Cuda as ConvKernels<E>>::transpose01(d, &up(d, &src), 4, &mut dd, 3, a, b, n, acc)
                .unwrap();
            rep.add::<E>("transpose01", &down(d, &dd), &want);
        }
        let (batch, channels, spatial) = (a, b, n);
        let y: Vec<E> = rand_vec(r, batch * channels * spatial, 1.0);
        let bias: Vec<E> = rand_vec(r, channels, 1.0);
        let mut want = y.clone();
        <Cpu as ConvKernels<E>>::add_channel_bias(&Cpu, &mut want, &bias, batch, channels, spatial)
            .unwrap();
        let mut dyb = up(d, &y);
        <Cuda as ConvKernels<E>>::add_channel_bias(
            d,
            &mut dyb,
            &up(d, &bias),
            batch,
            channels,
            spatial,
        )
        .unwrap();
        rep.add::<E>("add_channel_bias", &down(d, &dyb), &want);
        for acc in [Acc::Set, Acc::Add] {
            let db0: Vec<E> = rand_vec(r, channels, 1.0);
            let mut want = db0.clone();
            <Cpu as ConvKernels<E>>::channel_bias_grad(
                &Cpu, &y, &mut want, batch, channels, spatial, acc,
            )
            .unwrap();
            let mut ddb = up(d, &db0);
            <Cuda as ConvKernels<E>>::channel_bias_grad(
                d,
                &up(d, &y),
                &mut ddb,
                batch,
                channels,
                spatial,
                acc,
            )
            .unwrap();
            rep.add::<E>("channel_bias_grad", &down(d, &ddb), &want);
        }
    }
}

fn distribution_losses<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(rows, cols) in &[(1, 2), (37, 40)] {
        let n = rows * cols;
        let x: Vec<E> = rand_vec(r, n, 3.0);
        let labels: Vec<u32> = (0..rows).map(|_| r.random_range(0..cols as u32)).collect();
        // probability rows for soft targets, positive values for KL
        let mut t: Vec<E> = (0..n).map(|_| E::of(r.random_range(0.0..1.0))).collect();
        for row in t.chunks_mut(cols) {
            let s: E = row.iter().copied().sum();
            row.iter_mut().for_each(|v| *v = *v / s);
        }
        t[0] = E::zero(); // KL's 0·log 0
        let (dxb, dl, dt) = (up(d, &x), up_u32::<E>(d, &labels), up(d, &t));
        let dx0: Vec<E> = rand_vec(r, n, 1.0);
        for smoothing in [0.0, 0.1] {
            for classes in [true, false] {
                let mut want_dx = dx0.clone();
                let tgt = if classes {
                    LossTarget::Classes(&labels)
                } else {
                    LossTarget::Dense(&t)
                };
                let want = <Cpu as LossKernels<E>>::soft_cross_entropy(
                    &Cpu,
                    &x,
                    tgt,
                    smoothing,
                    Some(&mut want_dx),
                    rows,
                    cols,
                )
                .unwrap();
                let mut ddx = up(d, &dx0);
                let tgt = if classes {
                    LossTarget::Classes(&dl)
                } else {
                    LossTarget::Dense(&dt)
                };
                let got = <Cuda as LossKernels<E>>::soft_cross_entropy(
                    d,
                    &dxb,
                    tgt,
                    smoothing,
                    Some(&mut ddx),
                    rows,
                    cols,
                )
                .unwrap();
                rep.add::<E>("soft_cross_entropy", &[got], &[want]);
                rep.add::<E>("soft_cross_entropy grad", &down(d, &ddx), &want_dx);
            }
        }
        let alpha: Vec<E> = (0..cols).map(|_| E::of(r.random_range(0.1..1.0))).collect();
        let da = up(d, &alpha);
        for gamma in [0.0, 2.0] {
            for with_alpha in [false, true] {
                let mut want_dx = dx0.clone();
                let a = with_alpha.then_some(&alpha);
                let want = <Cpu as LossKernels<E>>::focal_loss(
                    &Cpu,
                    &x,
                    &labels,
                    a,
                    gamma,
                    Some(&mut want_dx),
                    rows,
                    cols,
                )
                .unwrap();
                let mut ddx = up(d, &dx0);
                let a = with_alpha.then_some(&da);
                let got = <Cuda as LossKernels<E>>::focal_loss(
                    d,
                    &dxb,
                    &dl,
                    a,
                    gamma,
                    Some(&mut ddx),
                    rows,
                    cols,
                )
                .unwrap();
                rep.add::<E>("focal_loss", &[got], &[want]);
                rep.add::<E>("focal_loss grad", &down(d, &ddx), &want_dx);
            }
        }
        for log_target in [false, true] {
            let tt: Vec<E> = if log_target {
                t.iter().map(|v| E::of((v.f64() + 1e-3).ln())).collect()
            } else {
                t.clone()
            };
            let mut want_dx = dx0.clone();
            let want = <Cpu as LossKernels<E>>::kl_div(
                &Cpu,
                &x,
                &tt,
                log_target,
                Some(&mut want_dx),
                rows,
                cols,
            )
            .unwrap();
            let mut ddx = up(d, &dx0);
            let got = <Cuda as LossKernels<E>>::kl_div(
                d,
                &dxb,
                &up(d, &tt),
                log_target,
                Some(&mut ddx),
                rows,
                cols,
            )
            .unwrap();
            rep.add::<E>("kl_div", &[got], &[want]);
            rep.add::<E>("kl_div grad", &down(d, &ddx), &want_dx);
            let got = <Cuda as LossKernels<E>>::kl_div(
                d,
                &dxb,
                &up(d, &tt),
                log_target,
                None,
                rows,
                cols,
            )
            .unwrap();
            rep.add::<E>("kl_div", &[got], &[want]);
        }
    }
}

fn norm_and_upsample<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(batch, channels, spatial) in &[(1, 1, 2), (3, 5, 7), (4, 2, 300), (16, 3, 1)] {
        let dims = BatchNormDims {
            batch,
            channels,
            spatial,
            eps: 1e-5,
        };
        let n = batch * channels * spatial;
        let x: Vec<E> = (0..n)
            .map(|i| E::of(r.random_range(-1.0..1.0) + (i % 3) as f64))
            .collect();
        let dx_ = up(d, &x);
        let (mut mean, mut var) = (vec![E::zero(); channels], vec![E::zero(); channels]);
        <Cpu as BatchNormKernels<E>>::batch_norm_stats(&Cpu, &dims, &x, &mut mean, &mut var)
            .unwrap();
        let (mut dm, mut dv) = (up(d, &mean), up(d, &var));
        <Cuda as BatchNormKernels<E>>::batch_norm_stats(d, &dims, &dx_, &mut dm, &mut dv).unwrap();
        rep.add::<E>("batch_norm_stats mean", &down(d, &dm), &mean);
        rep.add::<E>("batch_norm_stats var", &down(d, &dv), &var);
        // running statistics
        let (mut rm, mut rv, mut tr): (Vec<E>, Vec<E>, Vec<E>) = (
            rand_vec(r, channels, 1.0),
            vec![E::one(); channels],
            vec![E::of(3.0)],
        );
        let (mut drm, mut drv, mut dtr) = (up(d, &rm), up(d, &rv), up(d, &tr));
        if batch * spatial > 1 {
            <Cpu as BatchNormKernels<E>>::batch_norm_running(
                &Cpu, &dims, 0.1, &mean, &var, &mut rm, &mut rv, &mut tr,
            )
            .unwrap();
            <Cuda as BatchNormKernels<E>>::batch_norm_running(
                d,
                &dims,
                0.1,
                &up(d, &mean),
                &up(d, &var),
                &mut drm,
                &mut drv,
                &mut dtr,
            )
            .unwrap();
            rep.add::<E>("batch_norm_running", &down(d, &drm), &rm);
            rep.add::<E>("batch_norm_running", &down(d, &drv), &rv);
            rep.add::<E>("batch_norm_running tracked", &down(d, &dtr), &tr);
        }
        let gamma: Vec<E> = rand_vec(r, channels, 2.0);
        let beta: Vec<E> = rand_vec(r, channels, 1.0);
        let mut y = vec![E::zero(); n];
        <Cpu as BatchNormKernels<E>>::batch_norm_fwd(
            &Cpu, &dims, &x, &mean, &var, &gamma, &beta, &mut y,
        )
        .unwrap();
        let (dmean, dvar, dg) = (up(d, &mean), up(d, &var), up(d, &gamma));
        let mut dy_ = up(d, &vec![E::zero(); n]);
        <Cuda as BatchNormKernels<E>>::batch_norm_fwd(
            d,
            &dims,
            &dx_,
            &dmean,
            &dvar,
            &dg,
            &up(d, &beta),
            &mut dy_,
        )
        .unwrap();
        rep.add::<E>("batch_norm_fwd", &down(d, &dy_), &y);
        for (gacc, acc) in [
            (Acc::Set, Some(Acc::Set)),
            (Acc::Add, Some(Acc::Add)),
            (Acc::Set, None),
        ] {
            let g: Vec<E> = rand_vec(r, n, 1.0);
            let (dx0, dg0, db0): (Vec<E>, Vec<E>, Vec<E>) = (
                rand_vec(r, n, 1.0),
                rand_vec(r, channels, 1.0),
                rand_vec(r, channels, 1.0),
            );
            let (mut wdx, mut wdg, mut wdb, mut ws) = (
                dx0.clone(),
                dg0.clone(),
                db0.clone(),
                vec![E::zero(); 2 * channels],
            );
            <Cpu as BatchNormKernels<E>>::batch_norm_bwd(
                &Cpu,
                &dims,
                &x,
                &mean,
                &var,
                &gamma,
                &g,
                acc.map(|a| (&mut wdx, a)),
                &mut wdg,
                &mut wdb,
                gacc,
                &mut ws,
            )
            .unwrap();
            let (mut ddx, mut ddg, mut ddb, mut dsc) = (
                up(d, &dx0),
                up(d, &dg0),
                up(d, &db0),
                up(d, &vec![E::zero(); 2 * channels]),
            );
            <Cuda as BatchNormKernels<E>>::batch_norm_bwd(
                d,
                &dims,
                &dx_,
                &dmean,
                &dvar,
                &dg,
                &up(d, &g),
                acc.map(|a| (&mut ddx, a)),
                &mut ddg,
                &mut ddb,
                gacc,
                &mut dsc,
            )
            .unwrap();
            rep.add::<E>("batch_norm_bwd dx", &down(d, &ddx), &wdx);
            rep.add::<E>("batch_norm_bwd dgamma", &down(d, &ddg), &wdg);
            rep.add::<E>("batch_norm_bwd dbeta", &down(d, &ddb), &wdb);
        }
    }
    for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        for &(channels, h, w, k) in &[(1, 1, 1, 2), (2, 3, 4, 2), (3, 5, 2, 3)] {
            let g = Resize2d {
                mode,
                channels,
                h,
                w,
                oh: h * k,
                ow: w * (k + 1),
            };
            let batch = 2;
            let x: Vec<E> = rand_vec(r, batch * channels * h * w, 1.0);
            let mut want = vec![E::zero(); batch * channels * g.oh * g.ow];
            <Cpu as UpsampleKernels<E>>::upsample2d_fwd(&Cpu, &g, &x, &mut want, batch).unwrap();
            let mut dy = up(d, &want);
            <Cuda as UpsampleKernels<E>>::upsample2d_fwd(d, &g, &up(d, &x), &mut dy, batch)
                .unwrap();
            rep.add::<E>("upsample2d_fwd", &down(d, &dy), &want);
            for acc in [Acc::Set, Acc::Add] {
                let gy: Vec<E> = rand_vec(r, batch * channels * g.oh * g.ow, 1.0);
                let mut want = x.clone();
                <Cpu as UpsampleKernels<E>>::upsample2d_bwd(&Cpu, &g, &gy, &mut want, batch, acc)
                    .unwrap();
                let mut dd = up(d, &x);
                <Cuda as UpsampleKernels<E>>::upsample2d_bwd(
                    d,
                    &g,
                    &up(d, &gy),
                    &mut dd,
                    batch,
                    acc,
                )
                .unwrap();
                rep.add::<E>("upsample2d_bwd", &down(d, &dd), &want);
            }
        }
    }
}

fn all_ops<E: Elem>(d: &Cuda, rep: &mut Report) {
    let mut r = rng(7);
    type Part = fn(&Cuda, &mut Rng, &mut Report);
    let parts: [(&str, Part); 16] = [
        ("prelu", prelu::<E>),
        ("layer norm", layer_norm::<E>),
        ("distribution losses", distribution_losses::<E>),
        ("batch norm and upsampling", norm_and_upsample::<E>),
        ("toolkit", toolkit::<E>),
        ("conv and pooling", conv::<E>),
        ("memory", memory::<E>),
        ("gemm", gemm::<E>),
        ("gemm_batched", gemm_batched::<E>),
        ("embedding", embedding::<E>),
        ("bias", bias::<E>),
        ("activations", acts::<E>),
        ("element-wise", elementwise::<E>),
        ("softmax", softmax::<E>),
        ("losses", losses::<E>),
        ("optimizers", optimizers::<E>),
    ];
    for (name, f) in parts {
        let t = std::time::Instant::now();
        f(d, &mut r, rep);
        eprintln!("{name} ({}): {:.2} s", E::NAME, t.elapsed().as_secs_f64());
    }
}

/// One test, so that the coverage check at the end sees every launch.
#[test]
fn every_backend_method_matches_the_cpu() {
    let d = device();
    let mut rep = Report { rows: Vec::new() };
    all_ops::<f32>(&d, &mut rep);
    all_ops::<f64>(&d, &mut rep);
    println!(
        "{:<28} {:>5} {:>12}   (device {}, tolerance {:e} / {:e})",
        "op",
        "dtype",
        "max err",
        d.name(),
        tolerance::<f32>(),
        tolerance::<f64>()
    );
    for (op, dt, e) in &rep.rows {
        println!("{op:<28} {dt:>5} {e:>12.3e}");
    }
    println!(
        "{} passed, 0 failed: op × dtype comparisons",
        rep.rows.len()
    );
    if !on_gpu() {
        // Every kernel of the registry, in both dtypes, ran through the shim.
        let ran = d.executed_kernels();
        let missing: Vec<&str> = kiln_cuda::kernels::all()
            .flat_map(|k| [k.f32, k.f64])
            .filter(|s| !ran.contains(s))
            .collect();
        assert!(missing.is_empty(), "kernels never executed: {missing:?}");
        assert_eq!(ran.len(), 2 * kiln_cuda::kernels::KERNEL_COUNT);
    }
}

#[test]
fn loss_scratch_is_allocated_once_and_labels_out_of_range_give_nan() {
    let d = device();
    // A label ≥ the class count (which `Labels` prevents) gives NaN, not a wild read.
    let x = up::<f32>(&d, &[1.0, 2.0, 3.0, 4.0]);
    let l = up_u32::<f32>(&d, &[0, 7]);
    let v = <Cuda as LossKernels<f32>>::loss(
        &d,
        LossKind::SoftmaxCrossEntropy,
        &x,
        LossTarget::Classes(&l),
        None,
        2,
        2,
    )
    .unwrap();
    assert!(v.is_nan());
    // The wrong kind of target is an error, not a panic.
    let e = <Cuda as LossKernels<f32>>::loss(
        &d,
        LossKind::Mse,
        &x,
        LossTarget::Classes(&l),
        None,
        2,
        2,
    )
    .unwrap_err();
    assert!(e.to_string().contains("wrong kind of target"), "{e}");
    // Short buffers are errors.
    let mut y = up::<f32>(&d, &[0.0; 3]);
    assert!(<Cuda as Backend<f32>>::act_fwd(&d, Act::Relu, &x, &mut y, 4).is_err());
}
