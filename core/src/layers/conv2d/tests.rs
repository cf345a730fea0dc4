//! The tests of [`Conv2d`](super::Conv2d): the course's patch, the forward
//! pass and the gradients against the definition computed loop by loop,
//! configurations `build` rejects, and a batch cut into chunks against one chunk.

use super::*;
use crate::testing::{check_layer, random_input};
use crate::Cpu;

/// The definition, loop by loop.
#[allow(clippy::too_many_arguments)]
fn naive(
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    batch: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    g: &Window2d,
) -> Vec<f64> {
    let (cg, og) = (cin / groups, cout / groups);
    let mut y = vec![0.0; batch * cout * g.oh * g.ow];
    for s in 0..batch {
        for o in 0..cout {
            for r in 0..g.oh {
                for c in 0..g.ow {
                    let mut acc = bias.map_or(0.0, |b| b[o]);
                    for ci in 0..cg {
                        let xc = (o / og) * cg + ci;
                        for a in 0..g.kh {
                            for bb in 0..g.kw {
                                let iy = (r * g.sh + a * g.dh) as isize - g.ph as isize;
                                let ix = (c * g.sw + bb * g.dw) as isize - g.pw as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w
                                {
                                    acc += x
                                        [((s * cin + xc) * g.h + iy as usize) * g.w + ix as usize]
                                        * w[((o * cg + ci) * g.kh + a) * g.kw + bb];
                                }
                            }
                        }
                    }
                    y[((s * cout + o) * g.oh + r) * g.ow + c] = acc;
                }
            }
        }
    }
    y
}

#[test]
fn course_patch_gives_65() {
    let cfg = Conv2dConfig {
        bias: false,
        ..Default::default()
    };
    let mut conv =
        Conv2d::<f64, Cpu, 1, 1, 1, 3, 3, 3, 3, 1, 1>::build(&Cpu, &mut crate::rng(0), cfg)
            .unwrap();
    conv.weight
        .copy_from_slice(&[1., 0., -1., 2., 0., -2., 1., 0., -1.])
        .unwrap();
    let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(
        &Cpu,
        &[200., 150., 150., 100., 50., 100., 25., 25., 10.],
    )
    .unwrap();
    let mut y = Tensor::empty(&Cpu).unwrap();
    conv.forward(&x, &mut y, &mut conv.cache().unwrap())
        .unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![65.0]);
    // With a bias and zero padding 1 the centre output is 65 + b.
    let cfg = Conv2dConfig {
        padding: (1, 1),
        ..Default::default()
    };
    let mut conv =
        Conv2d::<f64, Cpu, 1, 1, 1, 3, 3, 3, 3, 3, 3>::build(&Cpu, &mut crate::rng(0), cfg)
            .unwrap();
    conv.weight
        .copy_from_slice(&[1., 0., -1., 2., 0., -2., 1., 0., -1.])
        .unwrap();
    conv.bias.as_mut().unwrap().copy_from_slice(&[0.5]).unwrap();
    let mut y = Tensor::empty(&Cpu).unwrap();
    conv.forward(&x, &mut y, &mut conv.cache().unwrap())
        .unwrap();
    let y = y.to_vec().unwrap();
    assert_eq!(y[4], 65.5);
    // Top-left: only taps (1..3, 1..3) see the image: 0·200 − 2·150 + 0·100 − 1·50 = −350.
    assert_eq!(y[0], -350.0 + 0.5);
}

fn matches_naive<
    const CIN: usize,
    const COUT: usize,
    const CG: usize,
    const K: usize,
    const HW: usize,
    const O: usize,
>(
    cfg: Conv2dConfig,
    budget: usize,
) {
    let mut rng = crate::rng(9);
    let conv =
        Conv2d::<f64, Cpu, CIN, COUT, CG, K, K, HW, HW, O, O>::build(&Cpu, &mut rng, cfg).unwrap();
    let batch = 5;
    let xv = random_input(batch * CIN * HW * HW, &mut rng);
    let x = Tensor::<S3<CIN, HW, HW>, f64>::from_slice(&Cpu, &xv).unwrap();
    let mut y = Tensor::empty(&Cpu).unwrap();
    let mut cache = conv.cache().unwrap();
    cache.budget = budget;
    conv.forward(&x, &mut y, &mut cache).unwrap();
    let w = conv.weight.to_vec().unwrap();
    let b = conv.bias.as_ref().map(|b| b.to_vec().unwrap());
    let want = naive(
        &xv,
        &w,
        b.as_deref(),
        batch,
        CIN,
        COUT,
        cfg.groups,
        conv.geometry(),
    );
    for (a, b) in y.to_vec().unwrap().iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{cfg:?}: {a} vs {b}");
    }
}

#[test]
fn forward_matches_the_definition() {
    let d = Conv2dConfig::default();
    matches_naive::<3, 4, 3, 3, 7, 5>(d, 1 << 20);
    matches_naive::<3, 4, 3, 3, 7, 4>(
        Conv2dConfig {
            stride: (2, 2),
            padding: (1, 1),
            ..d
        },
        1 << 20,
    );
    matches_naive::<2, 2, 2, 3, 7, 3>(
        Conv2dConfig {
            dilation: (2, 2),
            ..d
        },
        1 << 20,
    );
    matches_naive::<4, 6, 2, 3, 6, 6>(
        Conv2dConfig {
            padding: (1, 1),
            groups: 2,
            ..d
        },
        1 << 20,
    );
    matches_naive::<3, 3, 1, 3, 6, 3>(
        Conv2dConfig {
            stride: (2, 2),
            padding: (1, 1),
            groups: 3,
            bias: false,
            ..d
        },
        1 << 20,
    );
    // Chunked: 2 samples per chunk, the last chunk short.
    matches_naive::<3, 4, 3, 3, 7, 4>(
        Conv2dConfig {
            stride: (2, 2),
            padding: (1, 1),
            ..d
        },
        2 * 27 * 16,
    );
    // One sample per chunk (multiplied in place), with groups.
    matches_naive::<4, 6, 2, 3, 6, 6>(
        Conv2dConfig {
            padding: (1, 1),
            groups: 2,
            ..d
        },
        1,
    );
}

#[test]
fn build_rejects_inconsistent_configurations() {
    let d = Conv2dConfig::default();
    let e = Conv2d::<f64, Cpu, 1, 1, 1, 3, 3, 5, 5, 5, 5>::build(&Cpu, &mut crate::rng(0), d)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("map 5×5 to 3×3, but the layer's type says 5×5"),
        "{e}"
    );
    let e = Conv2d::<f64, Cpu, 4, 3, 2, 1, 1, 5, 5, 5, 5>::build(
        &Cpu,
        &mut crate::rng(0),
        Conv2dConfig { groups: 2, ..d },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("groups = 2 must divide"), "{e}");
    assert!(
        Conv2d::<f64, Cpu, 1, 1, 1, 7, 7, 5, 5, 1, 1>::build(&Cpu, &mut crate::rng(0), d).is_err()
    );
}

fn grad<
    const CIN: usize,
    const COUT: usize,
    const CG: usize,
    const KH: usize,
    const KW: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    cfg: Conv2dConfig,
) {
    let mut conv = Conv2d::<f64, Cpu, CIN, COUT, CG, KH, KW, H, W, OH, OW>::build(
        &Cpu,
        &mut crate::rng(4),
        cfg,
    )
    .unwrap();
    let err = check_layer(&mut conv, 3, 17).unwrap();
    assert!(err < 1e-6, "{cfg:?}: {err}");
}

#[test]
fn gradchecks() {
    let d = Conv2dConfig::default();
    grad::<2, 3, 2, 3, 3, 5, 5, 5, 5>(Conv2dConfig {
        padding: (1, 1),
        ..d
    });
    grad::<2, 3, 2, 2, 3, 6, 7, 3, 3>(Conv2dConfig {
        stride: (2, 2),
        ..d
    });
    grad::<1, 2, 1, 3, 3, 7, 7, 4, 4>(Conv2dConfig {
        stride: (2, 2),
        padding: (1, 1),
        bias: false,
        ..d
    });
    grad::<2, 2, 2, 3, 3, 7, 6, 3, 2>(Conv2dConfig {
        dilation: (2, 2),
        ..d
    });
    grad::<4, 6, 2, 3, 3, 5, 5, 5, 5>(Conv2dConfig {
        padding: (1, 1),
        groups: 2,
        ..d
    });
    grad::<3, 3, 1, 3, 3, 6, 6, 3, 3>(Conv2dConfig {
        stride: (2, 2),
        padding: (1, 1),
        groups: 3,
        ..d
    });
    grad::<3, 2, 3, 1, 1, 4, 4, 4, 4>(d);
}

#[test]
fn chunked_backward_matches_one_chunk() {
    let cfg = Conv2dConfig {
        stride: (2, 1),
        padding: (1, 2),
        groups: 2,
        ..Default::default()
    };
    let conv = Conv2d::<f64, Cpu, 4, 6, 2, 3, 3, 6, 5, 3, 7>::build(&Cpu, &mut crate::rng(2), cfg)
        .unwrap();
    let mut rng = crate::rng(5);
    let batch = 5;
    let x =
        Tensor::<S3<4, 6, 5>, f64>::from_slice(&Cpu, &random_input(batch * 120, &mut rng)).unwrap();
    let dy =
        Tensor::<S3<6, 3, 7>, f64>::from_slice(&Cpu, &random_input(batch * 126, &mut rng)).unwrap();
    let run = |budget: usize| {
        let mut cache = conv.cache().unwrap();
        cache.budget = budget;
        let mut y = Tensor::empty(&Cpu).unwrap();
        conv.forward(&x, &mut y, &mut cache).unwrap();
        let mut dx = Tensor::empty(&Cpu).unwrap();
        let mut g = conv.grads().unwrap();
        conv.backward(
            &x,
            &y,
            &mut cache,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut g,
            Acc::Set,
        )
        .unwrap();
        // A second contribution adds.
        conv.backward(
            &x,
            &y,
            &mut cache,
            &dy,
            Some((&mut dx, Acc::Add)),
            &mut g,
            Acc::Add,
        )
        .unwrap();
        (
            y.to_vec().unwrap(),
            dx.to_vec().unwrap(),
            g.weight.to_vec().unwrap(),
            g.bias.unwrap().to_vec().unwrap(),
        )
    };
    let one = run(1 << 20);
    let many = run(2 * 36 * 21);
    // A budget below one sample: per-sample chunks, read and written in place.
    let single = run(1);
    for (a, b) in [
        (&one.0, &many.0),
        (&one.1, &many.1),
        (&one.2, &many.2),
        (&one.3, &many.3),
        (&one.0, &single.0),
        (&one.1, &single.1),
        (&one.2, &single.2),
        (&one.3, &single.3),
    ] {
        assert_eq!(a.len(), b.len());
        for (u, v) in a.iter().zip(b.iter()) {
            assert!((u - v).abs() < 1e-12, "{u} vs {v}");
        }
    }
}

/// With AVX-512F an `f32` layer with few channels runs the direct kernel
/// (`kernels::conv_direct`) for its forward pass and its input gradient;
/// under a kernel cap of AVX2 the same layer takes im2col + GEMM. Both give
/// the same outputs and gradients (to `f32` rounding), accumulation included.
#[test]
fn direct_kernel_matches_the_gemm_path() {
    use crate::kernels::conv_direct::applies;
    use crate::kernels::DirectPass;
    let cfg = Conv2dConfig {
        padding: (1, 1),
        ..Default::default()
    };
    let conv =
        Conv2d::<f32, Cpu, 12, 10, 12, 3, 3, 9, 21, 9, 21>::build(&Cpu, &mut crate::rng(3), cfg)
            .unwrap();
    let direct = applies(conv.geometry(), 10, DirectPass::Forward)
        && applies(conv.geometry(), 10, DirectPass::InputGrad);
    if !direct {
        eprintln!("direct_kernel_matches_the_gemm_path: this CPU has no AVX-512F; both runs take the GEMM path");
    }
    let mut rng = crate::rng(8);
    let batch = 4;
    let f = |v: Vec<f64>| v.iter().map(|&v| v as f32 - 0.5).collect::<Vec<f32>>();
    let x = Tensor::<S3<12, 9, 21>, f32>::from_slice(
        &Cpu,
        &f(random_input(batch * 12 * 189, &mut rng)),
    )
    .unwrap();
    let dy = Tensor::<S3<10, 9, 21>, f32>::from_slice(
        &Cpu,
        &f(random_input(batch * 10 * 189, &mut rng)),
    )
    .unwrap();
    let run = || {
        let mut cache = conv.cache().unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        conv.forward(&x, &mut y, &mut cache).unwrap();
        let mut dx = Tensor::empty(&Cpu).unwrap();
        let mut g = conv.grads().unwrap();
        for acc in [Acc::Set, Acc::Add] {
            conv.backward(&x, &y, &mut cache, &dy, Some((&mut dx, acc)), &mut g, acc)
                .unwrap();
        }
        [
            y.to_vec().unwrap(),
            dx.to_vec().unwrap(),
            g.weight.to_vec().unwrap(),
            g.bias.unwrap().to_vec().unwrap(),
        ]
    };
    let fast = run();
    let gemm = crate::gemm::with_kernel_cap(crate::gemm::Isa::Avx2, run);
    for (what, (a, b)) in ["y", "dx", "dW", "db"]
        .iter()
        .zip(fast.iter().zip(gemm.iter()))
    {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (i, (u, v)) in a.iter().zip(b).enumerate() {
            assert!(
                (u - v).abs() <= 1e-5 * scale,
                "{what}[{i}]: direct {u}, GEMM {v}"
            );
        }
    }
}
