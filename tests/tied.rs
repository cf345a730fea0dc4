//! Weight tying in `network!`: `head: Linear(V, bias = false, tied = wte)`
//! uses the `Embedding(V, D)` table `wte` as its weight (nanoGPT's
//! `lm_head.weight = transformer.wte.weight`). One tensor: its gradient is
//! the sum of both uses (checked against central differences in f64), an
//! optimizer updates it once, parameter counts count it once, a checkpoint
//! holds it once and round-trips, and a tied char model learns.

use kiln::checkpoint::Checkpoint;
use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, rel_err2};

const V: usize = 27; // 'a'..='z' and space
const T: usize = 8;

kiln::network! {
    /// Embedding → Linear → GELU → the embedding table again as the output layer.
    pub struct TiedChar {
        input ids: Tokens<[8], 27>,
        let h = ids |> wte: Embedding(27, 16, init = normal(0.02)) |> fc: Linear(16) |> gelu;
        output logits = h |> head: Linear(27, bias = false, tied = wte);
    }
}

kiln::network! {
    /// A tied head with a bias of its own.
    pub struct TiedBias {
        input ids: Tokens<[4], 11>,
        let h = ids |> emb: Embedding(11, 6) |> tanh;
        output y = h |> out: Linear(6, 11, tied = emb);
    }
}

const TEXT: &str = "it was the best of times it was the worst of times it was the age of \
wisdom it was the age of foolishness it was the epoch of belief it was the epoch of \
incredulity it was the season of light it was the season of darkness";

fn id(c: char) -> u32 {
    if c == ' ' {
        26
    } else {
        c as u32 - 'a' as u32
    }
}

/// Windows of `T` characters and the `T` characters that follow each.
fn windows() -> (Vec<u32>, Vec<u32>) {
    let ids: Vec<u32> = TEXT.chars().map(id).collect();
    let batch = (ids.len() - 1) / T;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for b in 0..batch {
        xs.extend_from_slice(&ids[b * T..b * T + T]);
        ys.extend_from_slice(&ids[b * T + 1..b * T + T + 1]);
    }
    (xs, ys)
}

#[test]
fn the_tied_weight_is_one_parameter() {
    let net = TiedChar::<f32>::init(&Cpu, &mut rng(0)).unwrap();
    let mut names = Vec::new();
    net.visit(&kiln::Path::ROOT, &mut |p, _| names.push(p.to_string()));
    assert_eq!(names, ["wte.weight", "fc.weight", "fc.bias"]);
    let n = V * 16 + 16 * 16 + 16;
    assert_eq!(TiedChar::PARAMS, n);
    assert_eq!(net.num_params(), n);
    assert_eq!(TiedBias::PARAMS, 11 * 6 + 11);
    assert!(TiedChar::summary().contains("tied = wte"));
}

/// `Σ logits · r`: its gradient with respect to the logits is `r`.
fn loss(net: &TiedChar<f64>, x: &Tokens<S1<T>, V>, r: &[f64]) -> f64 {
    let y = net.forward(x).unwrap().to_vec().unwrap();
    y.iter().zip(r).map(|(a, b)| a * b).sum()
}

/// The table's gradient is the embedding's scatter-add plus the head's
/// `dyᵀ·h`: central differences through both uses agree with it, and with
/// neither part alone.
#[test]
fn the_tied_gradient_is_the_sum_of_both_uses() {
    let dev = Cpu;
    let mut net = TiedChar::<f64>::init(&dev, &mut rng(3)).unwrap();
    // Larger weights than N(0, 0.02), so both uses matter visibly.
    let w: Vec<f64> = kiln::testing::random_input(V * 16, &mut rng(9));
    net.wte.weight.copy_from_slice(&w).unwrap();
    let (xs, _) = windows();
    let x = Tokens::<S1<T>, V>::new::<f64>(&dev, &xs[..2 * T]).unwrap();
    let r = kiln::testing::random_input(2 * T * V, &mut rng(4));
    let dr = Tensor::<S2<T, V>, f64>::from_slice(&dev, &r).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    for _ in 0..2 {
        // Twice: the second backward must overwrite, not add to, the first.
        net.forward_train(&x, &mut tape).unwrap();
        net.backward(&mut tape, &dr, &mut grads).unwrap();
    }
    let analytic = grads.wte.weight.to_vec().unwrap();
    let p0 = net.wte.weight.to_vec().unwrap();
    let mut f = |v: &[f64]| {
        net.wte.weight.copy_from_slice(v).unwrap();
        loss(&net, &x, &r)
    };
    let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
    net.wte.weight.copy_from_slice(&p0).unwrap();
    let e = rel_err2(&analytic, &n1, &n2);
    println!("wte.weight (tied): relative error {e:e}");
    assert!(e < 1e-6, "relative error {e:e}");

    // The head's part alone (the embedding's rows gathered by the ids are a
    // subset; the head touches every row): some row that no id selects has a
    // non-zero gradient, which only the head can have written.
    let used: std::collections::BTreeSet<u32> = xs[..2 * T].iter().copied().collect();
    let unused = (0..V as u32).find(|i| !used.contains(i)).unwrap() as usize;
    assert!(analytic[unused * 16..(unused + 1) * 16]
        .iter()
        .any(|g| g.abs() > 1e-8));
}

#[test]
fn a_tied_head_with_a_bias_checks_too() {
    let dev = Cpu;
    let mut net = TiedBias::<f64>::init(&dev, &mut rng(1)).unwrap();
    let x = Tokens::<S1<4>, 11>::new::<f64>(&dev, &[1, 2, 3, 9, 0, 0, 5, 7]).unwrap();
    let r = kiln::testing::random_input(2 * 4 * 11, &mut rng(2));
    let dr = Tensor::<S2<4, 11>, f64>::from_slice(&dev, &r).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    net.forward_train(&x, &mut tape).unwrap();
    net.backward(&mut tape, &dr, &mut grads).unwrap();
    let lossf = |net: &TiedBias<f64>| -> f64 {
        let y = net.forward(&x).unwrap().to_vec().unwrap();
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let p0 = net.emb.weight.to_vec().unwrap();
    let a = grads.emb.weight.to_vec().unwrap();
    let mut f = |v: &[f64]| {
        net.emb.weight.copy_from_slice(v).unwrap();
        lossf(&net)
    };
    let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
    net.emb.weight.copy_from_slice(&p0).unwrap();
    assert!(rel_err2(&a, &n1, &n2) < 1e-6);
    let b0 = net.out.bias.as_ref().unwrap().to_vec().unwrap();
    let ab = grads.out.bias.as_ref().unwrap().to_vec().unwrap();
    let mut fb = |v: &[f64]| {
        net.out.bias.as_mut().unwrap().copy_from_slice(v).unwrap();
        lossf(&net)
    };
    let (n1, n2) = (numeric_grad(&b0, &mut fb), numeric_grad_small(&b0, &mut fb));
    assert!(rel_err2(&ab, &n1, &n2) < 1e-6);
}

/// One SGD step moves the table by `−η·(g_embedding + g_head)`, once.
#[test]
fn an_optimizer_updates_the_tied_weight_once() {
    let dev = Cpu;
    let mut net = TiedChar::<f64>::init(&dev, &mut rng(5)).unwrap();
    let (xs, ys) = windows();
    let x = Tokens::<S1<T>, V>::new::<f64>(&dev, &xs).unwrap();
    let y = Tokens::<S1<T>, V>::new::<f64>(&dev, &ys).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    let mut dlogits = Tensor::<S2<T, V>, f64>::empty(&dev).unwrap();
    let logits = net.forward_train(&x, &mut tape).unwrap();
    cross_entropy_tokens(logits, &y, None, Some(&mut dlogits)).unwrap();
    net.backward(&mut tape, &dlogits, &mut grads).unwrap();
    let w0 = net.wte.weight.to_vec().unwrap();
    let g = grads.wte.weight.to_vec().unwrap();
    let mut opt = Sgd::<f64, Cpu>::new(0.5);
    opt.step(&mut net, &grads).unwrap();
    let w1 = net.wte.weight.to_vec().unwrap();
    for i in 0..w0.len() {
        assert_eq!(w1[i], w0[i] - 0.5 * g[i], "element {i}");
    }
}

/// Only `wte.weight` is written (no `head.weight`: safetensors refuses two
/// names for one tensor, kiln writes the owner's); loading it gives the
/// head the same weight, so the outputs are identical.
#[test]
fn a_checkpoint_holds_the_tied_weight_once_and_round_trips() {
    let dev = Cpu;
    let net = TiedChar::<f32>::init(&dev, &mut rng(6)).unwrap();
    let path = std::env::temp_dir().join(format!("kiln-tied-{}.safetensors", std::process::id()));
    kiln::checkpoint::save(&net, &path).unwrap();
    let c = Checkpoint::read(&path).unwrap();
    assert!(c.values::<f32>("wte.weight").is_some());
    assert!(c.values::<f32>("head.weight").is_none());
    let mut back = TiedChar::<f32>::init(&dev, &mut rng(7)).unwrap();
    kiln::checkpoint::load(&mut back, &path).unwrap();
    std::fs::remove_file(&path).ok();
    let (xs, _) = windows();
    let x = Tokens::<S1<T>, V>::new::<f32>(&dev, &xs[..T]).unwrap();
    assert_eq!(
        net.forward(&x).unwrap().to_vec().unwrap(),
        back.forward(&x).unwrap().to_vec().unwrap()
    );
}

/// A few AdamW steps (nanoGPT's groups: decay on the table and the matrix,
/// none on the bias) on next-character prediction: the loss falls.
#[test]
fn a_tied_char_model_trains() {
    use kiln::optim::{Groups, Select};
    let dev = Cpu;
    let mut net = TiedChar::<f32>::init(&dev, &mut rng(0)).unwrap();
    let (xs, ys) = windows();
    let x = Tokens::<S1<T>, V>::new::<f32>(&dev, &xs).unwrap();
    let y = Tokens::<S1<T>, V>::new::<f32>(&dev, &ys).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    let mut dlogits = Tensor::<S2<T, V>>::empty(&dev).unwrap();
    let adamw = |wd| {
        Adam::<f32, Cpu>::adamw(1e-2)
            .betas(0.9, 0.99)
            .weight_decay(wd)
    };
    let mut opt = Groups::builder(&net)
        .group(Select::rank_at_least(2), adamw(0.1))
        .group(Select::rest(), adamw(0.0))
        .build()
        .unwrap()
        .clip_grad_norm(1.0);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(cross_entropy_tokens(logits, &y, None, Some(&mut dlogits)).unwrap());
        net.backward(&mut tape, &dlogits, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    println!("tied char model: loss {:.4} → {:.4}", losses[0], losses[29]);
    assert!((losses[0] - (V as f32).ln()).abs() < 0.05, "{}", losses[0]);
    // Measured: 3.2963 → 2.6574, falling at every step.
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(losses[29] < losses[0] - 0.5, "{losses:?}");
}
