//! `examples/style.rs --smoke`, run through the example's own code (the file
//! is included as a module): texture synthesis and style transfer at 64×64,
//! 60 Adam steps each, on a foolbox photograph. The style loss must fall by
//! a real factor and the images must stay in `[0, 1]`.
//!
//! Also, in f64 on a tiny twin of the example's feature network (same
//! layers, fewer channels, an 8×8 image): the generated backward of the
//! multi-output network (input and parameter gradients), and the gradient
//! of the whole style-transfer objective (two Gram losses, a content loss,
//! total variation) with respect to the pixels, against central differences.
//!
//! Needs `data/foolbox/` (`scripts/fetch-foolbox`): without it the smoke test
//! fails when `CI=true` and is skipped with a message otherwise.

#[path = "../examples/style.rs"]
#[allow(dead_code)]
mod example;

use clap::Parser;
use kiln::loss::{total_variation, ContentTarget, StyleTarget};
use kiln::prelude::*;
use kiln::testing::{numeric_grad, random_input, rel_err};
use kiln::{ParamMut, Path};
use std::io::Write;

#[test]
fn style_smoke_run_lowers_the_losses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("data/foolbox");
    if !dir.is_dir() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "the foolbox images are required in CI: run scripts/fetch-foolbox"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {} is missing (scripts/fetch-foolbox)",
            dir.display()
        );
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("kiln-style-smoke-{}", std::process::id()));
    let mut args = example::Args::parse_from(["style", "--smoke"]);
    args.texture = dir.join("imagenet_04_949.jpg");
    args.content = dir.join("imagenet_00_243.jpg");
    args.style = dir.join("imagenet_12_741.jpg");
    args.out_dir = out_dir.clone();
    let out = example::run(&args).unwrap();
    let (t0, t1) = (out.texture_losses[0], *out.texture_losses.last().unwrap());
    let (s0, s1) = (out.transfer_style[0], *out.transfer_style.last().unwrap());
    println!(
        "texture style loss {t0:.4} → {t1:.4}; transfer style {s0:.4} → {s1:.4}, content {:.4}; pixels in [{}, {}]",
        out.transfer_content.last().unwrap(),
        out.pixel_range.0,
        out.pixel_range.1
    );
    assert_eq!(out.texture_losses.len(), 60);
    assert_eq!(out.transfer_style.len(), 60);
    // Noise starts far from the texture's statistics (relative error near 1).
    assert!(t0 > 0.3, "{t0}");
    assert!(t1 < 0.1 * t0, "texture loss {t0} → {t1}");
    assert!(s1 < 0.2 * s0, "transfer style loss {s0} → {s1}");
    // The content term starts at 0 (the image is the content) and stays small.
    assert_eq!(out.transfer_content[0], 0.0);
    assert!(*out.transfer_content.last().unwrap() < 0.1);
    assert!(out.pixel_range.0 >= 0.0 && out.pixel_range.1 <= 1.0);
    assert!(
        out.pixel_range.1 - out.pixel_range.0 > 0.5,
        "{:?}",
        out.pixel_range
    );
    for f in ["texture.png", "style_transfer.png"] {
        let bytes = std::fs::read(out_dir.join(f)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn style_rejects_bad_arguments_by_name() {
    let mut args = example::Args::parse_from(["style", "--size", "100"]);
    args.out_dir = std::env::temp_dir().join(format!("kiln-style-args-{}", std::process::id()));
    let here = file!();
    (args.texture, args.content, args.style) = (here.into(), here.into(), here.into());
    let e = example::run(&args).unwrap_err().to_string();
    assert!(e.contains("--size") && e.contains("64, 128, 256"), "{e}");
    args.style = "no/such.jpg".into();
    let e = example::run(&args).unwrap_err().to_string();
    assert!(e.contains("--style") && e.contains("no/such.jpg"), "{e}");
    args.lr = -1.0;
    let e = example::run(&args).unwrap_err().to_string();
    assert!(e.contains("--lr"), "{e}");
    let _ = std::fs::remove_dir_all(&args.out_dir);
}

kiln::network! {
    /// The example's feature network in small: the same four stages with
    /// 2, 3, 4, 4 channels, on an 8×8 image.
    pub struct TinyFeat {
        input x: [3, 8, 8],
        let f1 = x |> conv1: Conv2d(2, kernel = 3, padding = 1) |> relu;
        let f2 = f1 |> AvgPool2d(2) |> conv2: Conv2d(3, kernel = 3, padding = 1) |> relu;
        let f3 = f2 |> AvgPool2d(2) |> conv3: Conv2d(4, kernel = 3, padding = 1) |> relu;
        let f4 = f3 |> AvgPool2d(2) |> conv4: Conv2d(4, kernel = 3, padding = 1) |> relu;
        output f1;
        output f2;
        output f3;
        output f4;
    }
}

fn t<S: Shape>(v: &[f64]) -> Tensor<S, f64> {
    Tensor::from_slice(&Cpu, v).unwrap()
}

/// `Σ_k r_k · f_k` over the four outputs: the loss whose gradient the
/// network's backward computes from `d f_k = r_k`.
fn dot4(net: &TinyFeat<f64, Cpu>, x: &[f64], r: &[Vec<f64>; 4]) -> f64 {
    let (a, b, c, d) = net.forward(&t(x)).unwrap();
    [a.to_vec(), b.to_vec(), c.to_vec(), d.to_vec()]
        .iter()
        .zip(r)
        .map(|(o, r)| {
            o.as_ref()
                .unwrap()
                .iter()
                .zip(r)
                .map(|(p, q)| p * q)
                .sum::<f64>()
        })
        .sum()
}

#[test]
fn feature_network_backward_matches_central_differences() {
    let mut g = rng(11);
    let mut net = TinyFeat::<f64, Cpu>::init(&Cpu, &mut g).unwrap();
    let n = 2;
    let x = random_input(n * 3 * 64, &mut g);
    let r = [
        random_input(n * 2 * 64, &mut g),
        random_input(n * 3 * 16, &mut g),
        random_input(n * 4 * 4, &mut g),
        random_input(n * 4, &mut g),
    ];
    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    let mut grads = net.grads().unwrap();
    net.forward_train(&t(&x), &mut tape).unwrap();
    net.backward(
        &mut tape,
        &t(&r[0]),
        &t(&r[1]),
        &t(&r[2]),
        &t(&r[3]),
        &mut grads,
    )
    .unwrap();
    let dx = tape.grad_x.to_vec().unwrap();
    let err = rel_err(&dx, &numeric_grad(&x, |v| dot4(&net, v, &r)));
    assert!(err < 1e-6, "input gradient: {err}");

    let mut p0 = Vec::new();
    net.visit(&Path::ROOT, &mut |_, p| {
        p0.extend_from_slice(&p.value[..p.numel])
    });
    let mut dp = Vec::new();
    net.visit_grads(&grads, &Path::ROOT, &mut |_, p| {
        dp.extend_from_slice(&p.grad.unwrap()[..p.numel])
    });
    let set = |net: &mut TinyFeat<f64, Cpu>, v: &[f64]| {
        let mut i = 0;
        net.visit_mut(&Path::ROOT, &mut |_, p: ParamMut<'_, f64, Cpu>, _| {
            p.value[..p.numel].copy_from_slice(&v[i..i + p.numel]);
            i += p.numel;
        });
    };
    let num = numeric_grad(&p0, |v| {
        set(&mut net, v);
        dot4(&net, &x, &r)
    });
    set(&mut net, &p0);
    let err = rel_err(&dp, &num);
    assert!(err < 1e-6, "parameter gradient: {err}");
}

/// The style-transfer objective of the example on the tiny network: Gram
/// losses at `f1` and `f3`, a content loss at `f2`, total variation.
struct Objective {
    net: TinyFeat<f64, Cpu>,
    s1: StyleTarget<2, f64, Cpu>,
    s3: StyleTarget<4, f64, Cpu>,
    c2: ContentTarget<S3<3, 4, 4>, f64, Cpu>,
}

impl Objective {
    fn value(&mut self, img: &[f64]) -> f64 {
        let (a, b, c, _) = self.net.forward(&t(img)).unwrap();
        self.s1.loss(&a, 0.7, None).unwrap()
            + self.s3.loss(&c, 1.3, None).unwrap()
            + self.c2.loss(&b, 0.4, None).unwrap()
            + total_variation(img, [3, 8, 8], 0.05, None).unwrap()
    }
}

#[test]
fn style_transfer_objective_gradient_matches_central_differences() {
    let mut g = rng(12);
    let net = TinyFeat::<f64, Cpu>::init(&Cpu, &mut g).unwrap();
    let (style, content, img) = (
        random_input(3 * 64, &mut g),
        random_input(3 * 64, &mut g),
        random_input(3 * 64, &mut g),
    );
    let (a, _, c, _) = net.forward(&t(&style)).unwrap();
    let (s1, s3) = (StyleTarget::new(&a).unwrap(), StyleTarget::new(&c).unwrap());
    let c2 = ContentTarget::new(&net.forward(&t(&content)).unwrap().1).unwrap();
    let mut obj = Objective { net, s1, s3, c2 };

    // Analytic: the losses' gradients into the outputs, one backward pass.
    let mut tape = obj.net.tape().unwrap();
    tape.input_grads = true;
    let mut grads = obj.net.grads().unwrap();
    let (mut d1, mut d2, mut d3) = (
        Tensor::empty(&Cpu).unwrap(),
        Tensor::empty(&Cpu).unwrap(),
        Tensor::empty(&Cpu).unwrap(),
    );
    let d4 = Tensor::<S3<4, 1, 1>, f64>::zeros(&Cpu, 1).unwrap();
    let (f1, f2, f3, _) = obj.net.forward_train(&t(&img), &mut tape).unwrap();
    let total = obj.s1.loss(f1, 0.7, Some((&mut d1, Acc::Set))).unwrap()
        + obj.s3.loss(f3, 1.3, Some((&mut d3, Acc::Set))).unwrap()
        + obj.c2.loss(f2, 0.4, Some((&mut d2, Acc::Set))).unwrap();
    obj.net
        .backward(&mut tape, &d1, &d2, &d3, &d4, &mut grads)
        .unwrap();
    let mut dimg = tape.grad_x.to_vec().unwrap();
    let total =
        total + total_variation(&img, [3, 8, 8], 0.05, Some((&mut dimg, Acc::Add))).unwrap();
    assert!((total - obj.value(&img)).abs() < 1e-12 * total.abs());
    let num = numeric_grad(&img, |v| obj.value(v));
    let err = rel_err(&dimg, &num);
    assert!(err < 1e-6, "{err}");
}
