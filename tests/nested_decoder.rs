//! A network of two inputs nested in another: a pre-norm transformer
//! decoder block (causal self-attention, cross-attention to the encoder's
//! memory, MLP) written once with `network!` and used twice as
//! `dec1: DecoderBlock(m) -> [4, 8]`, both reading the memory `m` of a
//! nested encoder block. Every parameter and both inputs' gradients are
//! checked against central differences in f64 (the memory's gradient sums
//! both decoders' and flows into the encoder), and the model learns a
//! small sequence-to-sequence task.

use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::Path;

kiln::network! {
    /// Pre-norm encoder block: self-attention with a residual, then an MLP.
    pub struct EncoderBlock {
        input x: [5, 8],
        let a = x |> ln1: LayerNorm |> attn: MultiHeadAttention(8, heads = 2);
        let h = a + x;
        let m = h |> ln2: LayerNorm |> fc1: Linear(16) |> gelu |> fc2: Linear(8);
        output y = m + h;
    }
}

kiln::network! {
    /// Pre-norm decoder block: causal self-attention, cross-attention to
    /// `memory`, an MLP, each with a residual.
    pub struct DecoderBlock {
        input x: [4, 8],
        input memory: [5, 8],
        let a = x |> ln1: LayerNorm |> attn: MultiHeadAttention(8, heads = 2, causal = true);
        let h = a + x;
        let c = h |> ln2: LayerNorm |> cross: MultiHeadAttention(8, heads = 2, memory = memory);
        let h2 = c + h;
        let m = h2 |> ln3: LayerNorm |> fc1: Linear(16) |> gelu |> fc2: Linear(8);
        output y = m + h2;
    }
}

kiln::network! {
    /// Encoder → two decoder blocks sharing its memory → a head.
    pub struct Seq2Seq {
        input src: [5, 8],
        input tgt: [4, 8],
        let m = src |> enc: EncoderBlock -> [5, 8];
        let d = tgt |> dec1: DecoderBlock(m) -> [4, 8] |> dec2: DecoderBlock(m) -> [4, 8];
        output y = d |> ln_f: LayerNorm |> head: Linear(3);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn nested_two_input_blocks_match_central_differences() {
    let batch = 2;
    let mut net = Seq2Seq::<f64>::init(&Cpu, &mut rng(1)).unwrap();
    let (sv, tv) = (
        random_input(batch * 40, &mut rng(2)),
        random_input(batch * 32, &mut rng(3)),
    );
    let r = random_input(batch * 12, &mut rng(4));
    let src = |v: &[f64]| Tensor::<S2<5, 8>, f64>::from_slice(&Cpu, v).unwrap();
    let tgt = |v: &[f64]| Tensor::<S2<4, 8>, f64>::from_slice(&Cpu, v).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    tape.input_grads = true;
    net.forward_train(&src(&sv), &tgt(&tv), &mut tape).unwrap();
    let dy = Tensor::<S2<4, 3>, f64>::from_slice(&Cpu, &r).unwrap();
    net.backward(&mut tape, &dy, &mut grads).unwrap();
    let loss = |n: &Seq2Seq<f64>, s: &[f64], t: &[f64]| {
        dot(&n.forward(&src(s), &tgt(t)).unwrap().to_vec().unwrap(), &r)
    };
    // Both inputs.
    let ds = tape.grad_src.to_vec().unwrap();
    let dt = tape.grad_tgt.to_vec().unwrap();
    let mut fs = |v: &[f64]| loss(&net, v, &tv);
    let (ns1, ns2) = (numeric_grad(&sv, &mut fs), numeric_grad_small(&sv, &mut fs));
    let mut ft = |v: &[f64]| loss(&net, &sv, v);
    let (nt1, nt2) = (numeric_grad(&tv, &mut ft), numeric_grad_small(&tv, &mut ft));
    assert!(
        ds.iter().any(|g| g.abs() > 1e-3),
        "the memory's gradient is ~0"
    );
    let (es, et) = (rel_err2(&ds, &ns1, &ns2), rel_err2(&dt, &nt1, &nt2));
    assert!(es < 1e-6 && et < 1e-6, "src {es}, tgt {et}");
    // Every parameter (both decoders' and the encoder's).
    let mut analytic = Vec::new();
    net.visit_grads(&grads, &Path::ROOT, &mut |p, g| {
        analytic.push((p.to_string(), g.grad.unwrap()[..g.numel].to_vec()))
    });
    assert!(analytic.iter().any(|(n, _)| n.starts_with("dec2.cross.")));
    assert!(analytic.iter().any(|(n, _)| n.starts_with("enc.attn.")));
    for (pi, (name, a)) in analytic.iter().enumerate() {
        let mut value = Vec::new();
        net.visit_grads(&grads, &Path::ROOT, &mut |_, p| {
            value.push(p.value[..p.numel].to_vec())
        });
        let p0 = value[pi].clone();
        let mut f = |v: &[f64]| {
            let mut i = 0;
            net.visit_grads(&grads, &Path::ROOT, &mut |_, p| {
                if i == pi {
                    p.value.copy_from_slice(v);
                }
                i += 1;
            });
            loss(&net, &sv, &tv)
        };
        let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
        f(&p0);
        let e = rel_err2(a, &n1, &n2);
        assert!(e < 1e-6, "{name}: relative error {e}");
    }
}

/// The target at position t is the class of the sign pattern of source
/// position t's first two features and the decoder input's first feature.
fn task(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let src = random_input(n * 40, &mut rng(seed));
    let tgt = random_input(n * 32, &mut rng(seed + 1));
    let mut y = Vec::new();
    for b in 0..n {
        for t in 0..4 {
            let s = &src[b * 40 + t * 8..];
            let cls =
                usize::from(s[0] > 0.0) + usize::from(s[1] > 0.0 && tgt[b * 32 + t * 8] > 0.0);
            y.push(cls as u32);
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (f(src), f(tgt), y)
}

#[test]
fn the_nested_encoder_decoder_learns() {
    let mut net = Seq2Seq::<f32>::init(&Cpu, &mut rng(7)).unwrap();
    let mut opt = Adam::new(3e-3);
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let (s, t, y) = task(64, 11);
    let src = Tensor::<S2<5, 8>>::from_slice(&Cpu, &s).unwrap();
    let tgt = Tensor::<S2<4, 8>>::from_slice(&Cpu, &t).unwrap();
    let ys = Tokens::<S1<4>, 3>::new::<f32>(&Cpu, &y).unwrap();
    let mut d = Tensor::empty(&Cpu).unwrap();
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..300 {
        let logits = net.forward_train(&src, &tgt, &mut tape).unwrap();
        let loss = kiln::loss::cross_entropy_tokens(logits, &ys, None, Some(&mut d)).unwrap();
        if step == 0 {
            first = loss;
        }
        last = loss;
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    eprintln!("training loss: step 0 {first:.4}, step 299 {last:.4}");
    // ln 3 = 1.10 at the start; the three classes are a function of the
    // inputs, so the training loss must fall far below it.
    assert!(first > 0.9 && last < 0.25, "loss {first} -> {last}");
}
