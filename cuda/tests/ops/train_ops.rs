//! Losses, optimizers and the training toolkit.

use super::*;

pub(crate) fn losses<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn optimizers<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn toolkit<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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

pub(crate) fn distribution_losses<E: Elem>(d: &Cuda, r: &mut Rng, rep: &mut Report) {
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
