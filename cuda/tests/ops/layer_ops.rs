//! The layers' kernel families: embedding, softmax, PReLU, LayerNorm, L2Normalize, convolution and pooling, batch norm and upsampling.

use super::*;

pub(crate) fn embedding<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn softmax<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn prelu<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn layer_norm<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

/// L2 normalisation: with PyTorch's ε (a zero row in each case: y = 0,
/// dx = dy/ε) and with ε = 2 (short rows below it take the clamped branch).
pub(crate) fn l2_normalize<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(rows, cols) in &[
        (1, 1),
        (3, 5),
        (7, 33),
        (9, 100),
        (130, 10),
        (2, 300),
        (40, 2),
    ] {
        for eps in [1e-12, 2.0] {
            let ld = L2NormalizeDims { rows, cols, eps };
            let n = rows * cols;
            let mut x: Vec<E> = rand_vec(r, n, 3.0);
            if rows > 1 {
                x[cols..2 * cols].fill(E::zero());
            }
            let mut y = vec![E::zero(); n];
            <Cpu as L2NormalizeKernels<E>>::l2_normalize_fwd(&Cpu, &ld, &x, &mut y).unwrap();
            let (dx_, mut dy_) = (up(d, &x), up(d, &vec![E::zero(); n]));
            <Cuda as L2NormalizeKernels<E>>::l2_normalize_fwd(d, &ld, &dx_, &mut dy_).unwrap();
            rep.add::<E>("l2_normalize_fwd", &down(d, &dy_), &y);
            for acc in [Acc::Set, Acc::Add] {
                let g: Vec<E> = rand_vec(r, n, 1.0);
                let dx0: Vec<E> = rand_vec(r, n, 1.0);
                let mut want = dx0.clone();
                <Cpu as L2NormalizeKernels<E>>::l2_normalize_bwd(&Cpu, &ld, &x, &g, &mut want, acc)
                    .unwrap();
                let mut ddx = up(d, &dx0);
                <Cuda as L2NormalizeKernels<E>>::l2_normalize_bwd(
                    d,
                    &ld,
                    &dx_,
                    &up(d, &g),
                    &mut ddx,
                    acc,
                )
                .unwrap();
                // The zero row's 1e12·g is compared relative to its size
                // (`check`'s |a − b|/(1 + |b|)).
                rep.add::<E>("l2_normalize_bwd", &down(d, &ddx), &want);
            }
        }
    }
}

/// Window geometries: padding, strides, dilations, non-square, sizes off the block size.
pub(crate) fn windows() -> Vec<Window2d> {
    vec![
        Window2d::new("t", 2, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2)).unwrap(),
        Window2d::new("t", 3, (7, 7), (2, 2), (2, 2), (0, 0), (1, 1)).unwrap(),
        Window2d::new("t", 1, (5, 4), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap(),
        Window2d::new("t", 2, (9, 6), (3, 3), (3, 2), (1, 1), (2, 1)).unwrap(),
    ]
}

pub(crate) fn conv<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn norm_and_upsample<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn lstm<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(batch, steps, hidden) in &[(1, 1, 1), (2, 3, 5), (3, 4, 40), (5, 2, 70)] {
        let ld = LstmDims {
            batch,
            steps,
            hidden,
        };
        let (ng, ns, nc) = (
            batch * steps * 4 * hidden,
            batch * steps * hidden,
            batch * hidden,
        );
        let pre: Vec<E> = rand_vec(r, ng, 2.0);
        // A nonzero initial cell state, read at t = 0.
        let c0: Vec<E> = rand_vec(r, nc, 1.0);
        let dc0_ = up(d, &c0);
        let (mut g, mut c, mut h) = (pre.clone(), vec![E::zero(); ns], vec![E::zero(); ns]);
        let (mut dg, mut dc, mut dh) = (up(d, &pre), up(d, &c), up(d, &h));
        for t in 0..steps {
            <Cpu as LstmKernels<E>>::lstm_cell_fwd(&Cpu, &ld, t, &c0, &mut g, &mut c, &mut h)
                .unwrap();
            <Cuda as LstmKernels<E>>::lstm_cell_fwd(d, &ld, t, &dc0_, &mut dg, &mut dc, &mut dh)
                .unwrap();
        }
        rep.add::<E>("lstm_cell_fwd gates", &down(d, &dg), &g);
        rep.add::<E>("lstm_cell_fwd c", &down(d, &dc), &c);
        rep.add::<E>("lstm_cell_fwd h", &down(d, &dh), &h);
        let dy: Vec<E> = rand_vec(r, ns, 1.0);
        let (dhc, dc0): (Vec<E>, Vec<E>) = (rand_vec(r, nc, 1.0), rand_vec(r, nc, 1.0));
        let (mut wdc, mut wdg) = (dc0.clone(), vec![E::zero(); ng]);
        let (mut ddc, mut ddg) = (up(d, &dc0), up(d, &vec![E::zero(); ng]));
        let (ddy, ddh) = (up(d, &dy), up(d, &dhc));
        for t in (0..steps).rev() {
            <Cpu as LstmKernels<E>>::lstm_cell_bwd(
                &Cpu, &ld, t, &c0, &g, &c, &dy, &dhc, &mut wdc, &mut wdg,
            )
            .unwrap();
            <Cuda as LstmKernels<E>>::lstm_cell_bwd(
                d, &ld, t, &dc0_, &dg, &dc, &ddy, &ddh, &mut ddc, &mut ddg,
            )
            .unwrap();
        }
        rep.add::<E>("lstm_cell_bwd dgates", &down(d, &ddg), &wdg);
        rep.add::<E>("lstm_cell_bwd dc", &down(d, &ddc), &wdc);
    }
}

pub(crate) fn gru<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    for &(batch, steps, hidden) in &[(1, 1, 1), (2, 3, 5), (3, 4, 40), (5, 2, 70)] {
        let gd = GruDims {
            batch,
            steps,
            hidden,
        };
        let (ng, ns, nc) = (
            batch * steps * 3 * hidden,
            batch * steps * hidden,
            batch * hidden,
        );
        let pre: Vec<E> = rand_vec(r, ng, 2.0);
        let hg: Vec<E> = rand_vec(r, ng, 2.0);
        // A nonzero initial state, read at t = 0.
        let h0: Vec<E> = rand_vec(r, nc, 1.0);
        let dh0_ = up(d, &h0);
        let (mut g, mut h) = (pre.clone(), vec![E::zero(); ns]);
        let (mut dg, dhg, mut dh) = (up(d, &pre), up(d, &hg), up(d, &h));
        for t in 0..steps {
            <Cpu as GruKernels<E>>::gru_cell_fwd(&Cpu, &gd, t, &h0, &mut g, &hg, &mut h).unwrap();
            <Cuda as GruKernels<E>>::gru_cell_fwd(d, &gd, t, &dh0_, &mut dg, &dhg, &mut dh)
                .unwrap();
        }
        rep.add::<E>("gru_cell_fwd gates", &down(d, &dg), &g);
        rep.add::<E>("gru_cell_fwd h", &down(d, &dh), &h);
        let dy: Vec<E> = rand_vec(r, ns, 1.0);
        let dh0: Vec<E> = rand_vec(r, nc, 1.0);
        let (mut wdh, mut wda, mut wdr) = (dh0.clone(), vec![E::zero(); ng], vec![E::zero(); ng]);
        let (mut ddh, mut dda, mut ddr) = (
            up(d, &dh0),
            up(d, &vec![E::zero(); ng]),
            up(d, &vec![E::zero(); ng]),
        );
        let ddy = up(d, &dy);
        for t in (0..steps).rev() {
            <Cpu as GruKernels<E>>::gru_cell_bwd(
                &Cpu, &gd, t, &h0, &g, &hg, &h, &dy, &mut wdh, &mut wda, &mut wdr,
            )
            .unwrap();
            <Cuda as GruKernels<E>>::gru_cell_bwd(
                d, &gd, t, &dh0_, &dg, &dhg, &dh, &ddy, &mut ddh, &mut dda, &mut ddr,
            )
            .unwrap();
        }
        rep.add::<E>("gru_cell_bwd dgates", &down(d, &dda), &wda);
        rep.add::<E>("gru_cell_bwd dhg", &down(d, &ddr), &wdr);
        rep.add::<E>("gru_cell_bwd dh", &down(d, &ddh), &wdh);
    }
}

pub(crate) fn rnn<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    let shapes = [(1, 1, 1), (2, 3, 5), (3, 4, 40), (5, 2, 70)];
    for (&(batch, steps, hidden), f) in shapes.iter().zip([
        RnnNonlinearity::Tanh,
        RnnNonlinearity::Relu,
        RnnNonlinearity::Tanh,
        RnnNonlinearity::Relu,
    ]) {
        let rd = RnnDims {
            batch,
            steps,
            hidden,
        };
        let (ns, nc) = (batch * steps * hidden, batch * hidden);
        let a: Vec<E> = rand_vec(r, ns, 2.0);
        let mut h = vec![E::zero(); ns];
        let (da_, mut dh_) = (up(d, &a), up(d, &h));
        for t in 0..steps {
            <Cpu as RnnKernels<E>>::rnn_cell_fwd(&Cpu, &rd, f, t, &a, &mut h).unwrap();
            <Cuda as RnnKernels<E>>::rnn_cell_fwd(d, &rd, f, t, &da_, &mut dh_).unwrap();
        }
        let name = format!("{f:?}").to_lowercase();
        rep.add::<E>(&format!("rnn_cell_fwd h ({name})"), &down(d, &dh_), &h);
        let dy: Vec<E> = rand_vec(r, ns, 1.0);
        let dhc: Vec<E> = rand_vec(r, nc, 1.0);
        let mut wda = vec![E::zero(); ns];
        let mut dda = up(d, &wda);
        let (ddy, ddh) = (up(d, &dy), up(d, &dhc));
        for t in (0..steps).rev() {
            <Cpu as RnnKernels<E>>::rnn_cell_bwd(&Cpu, &rd, f, t, &h, &dy, &dhc, &mut wda).unwrap();
            <Cuda as RnnKernels<E>>::rnn_cell_bwd(d, &rd, f, t, &dh_, &ddy, &ddh, &mut dda)
                .unwrap();
        }
        rep.add::<E>(&format!("rnn_cell_bwd da ({name})"), &down(d, &dda), &wda);
    }
}

pub(crate) fn attention<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
    // (batch, heads, queries, keys, causal, padded); 70 keys span three lanes
    // per warp, and the padding leaves sample 0's last keys and all of
    // sample 1's masked (fully masked rows are zeros on both devices).
    let shapes = [
        (1, 1, 1, 1, false, false),
        (2, 3, 4, 5, true, false),
        (2, 2, 3, 70, false, true),
        (2, 4, 33, 33, true, true),
    ];
    for &(batch, heads, queries, keys, causal, padded) in &shapes {
        let ad = AttnDims {
            batch,
            heads,
            queries,
            keys,
            causal,
        };
        let n = ad.len();
        let ids: Vec<u32> = (0..batch * keys)
            .map(|i| {
                if i / keys == 1 || i % keys > keys / 2 {
                    0
                } else {
                    1 + (i % 3) as u32
                }
            })
            .collect();
        let did = up_u32::<E>(d, &ids);
        let a: Vec<E> = rand_vec(r, n, 3.0);
        let (mut p, mut dp_) = (a.clone(), up(d, &a));
        let pad = padded.then_some(0);
        <Cpu as AttentionKernels<E>>::attn_softmax_fwd(&Cpu, &ad, pad.map(|v| (&ids, v)), &mut p)
            .unwrap();
        <Cuda as AttentionKernels<E>>::attn_softmax_fwd(d, &ad, pad.map(|v| (&did, v)), &mut dp_)
            .unwrap();
        let name = format!("causal {causal}, padded {padded}");
        rep.add::<E>(&format!("attn_softmax_fwd ({name})"), &down(d, &dp_), &p);
        let g: Vec<E> = rand_vec(r, n, 1.0);
        let (mut want, mut dg) = (g.clone(), up(d, &g));
        <Cpu as AttentionKernels<E>>::attn_softmax_bwd(&Cpu, &ad, &p, &mut want).unwrap();
        <Cuda as AttentionKernels<E>>::attn_softmax_bwd(d, &ad, &dp_, &mut dg).unwrap();
        rep.add::<E>(&format!("attn_softmax_bwd ({name})"), &down(d, &dg), &want);
    }
}
