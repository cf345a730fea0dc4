//! A `network!` reading token ids: `input ids: Tokens<[T], V>` feeds an
//! `Embedding(V, DIM)`. A character-level model is trained on next-character
//! prediction with per-position cross-entropy and Adam, and must beat the
//! unigram entropy of its text (which a model ignoring its input cannot);
//! its parameter gradients are checked against central differences in f64
//! (ids have no gradient, so parameters only).

use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, rel_err2};

const V: usize = 27; // 'a'..='z' and space
const T: usize = 8;

kiln::network! {
    /// Embedding → Linear → GELU → Linear, position-wise: next-character logits.
    pub struct CharMlp {
        input ids: Tokens<[8], 27>,
        let h = ids |> emb: Embedding(27, 16) |> fc1: Linear(32) |> gelu;
        output logits = h |> fc2: Linear(27);
    }
}

const VOCAB: usize = 11;

kiln::network! {
    /// A generic length and a named vocabulary, with a padding row.
    pub struct TokSeq<const L: usize> {
        input ids: Tokens<[L], VOCAB>,
        let e = ids |> emb: Embedding(VOCAB, 4, padding_idx = 0, init = normal(0.5));
        output y = e |> head: Linear(3);
    }
}

const TEXT: &str = "it was the best of times it was the worst of times it was the age of \
wisdom it was the age of foolishness it was the epoch of belief it was the epoch of \
incredulity it was the season of light it was the season of darkness it was the spring \
of hope it was the winter of despair we had everything before us we had nothing before us";

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
fn char_model_learns_below_the_unigram_entropy() {
    let (xs, ys) = windows();
    let n = ys.len() as f64;
    let mut uni = [0.0f64; V];
    for &y in &ys {
        uni[y as usize] += 1.0;
    }
    let h_uni: f64 = uni
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| -(c / n) * (c / n).ln())
        .sum();

    let dev = Cpu;
    let mut net = CharMlp::<f32>::init(&dev, &mut rng(0)).unwrap();
    let x = Tokens::<S1<T>, V>::new::<f32>(&dev, &xs).unwrap();
    let y = Tokens::<S1<T>, V>::new::<f32>(&dev, &ys).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    let mut dlogits = Tensor::<S2<T, V>>::empty(&dev).unwrap();
    let mut opt = Adam::<f32, Cpu>::new(0.01);
    let mut first = None;
    let mut last = f32::NAN;
    for _ in 0..200 {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        last = cross_entropy_tokens(logits, &y, None, Some(&mut dlogits)).unwrap();
        first.get_or_insert(last);
        net.backward(&mut tape, &dlogits, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let first = first.unwrap();
    println!("loss {first:.4} → {last:.4}; unigram entropy {h_uni:.4} nats");
    assert!(
        (last as f64) < h_uni,
        "loss {last} is not below the unigram entropy {h_uni}"
    );
    // evaluation mode agrees with the training forward (no dropout here)
    let eval = net.forward(&x).unwrap();
    let loss = cross_entropy_tokens(&eval, &y, None, None).unwrap();
    assert!(loss < first, "{loss} vs {first}");
}

/// `Σ logits · r` for fixed `r`: its gradient with respect to the logits is `r`.
fn loss(net: &CharMlp<f64>, x: &Tokens<S1<T>, V>, r: &[f64]) -> f64 {
    let y = net.forward(x).unwrap().to_vec().unwrap();
    y.iter().zip(r).map(|(a, b)| a * b).sum()
}

#[test]
fn char_model_parameter_gradients_match_central_differences() {
    let dev = Cpu;
    let mut net = CharMlp::<f64>::init(&dev, &mut rng(3)).unwrap();
    let (xs, _) = windows();
    let x = Tokens::<S1<T>, V>::new::<f64>(&dev, &xs[..2 * T]).unwrap();
    let mut r_rng = rng(4);
    let r = kiln::testing::random_input(2 * T * V, &mut r_rng);
    let dr = Tensor::<S2<T, V>, f64>::from_slice(&dev, &r).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    net.forward_train(&x, &mut tape).unwrap();
    net.backward(&mut tape, &dr, &mut grads).unwrap();

    // Each parameter tensor in turn: central differences of the loss.
    let mut worst = 0.0f64;
    macro_rules! check {
        ($($p:ident).+, $($g:tt)+) => {{
            let p0 = net.$($p).+.to_vec().unwrap();
            let analytic = $($g)+.to_vec().unwrap();
            let mut f = |v: &[f64]| {
                net.$($p).+.copy_from_slice(v).unwrap();
                loss(&net, &x, &r)
            };
            let n1 = numeric_grad(&p0, &mut f);
            let n2 = numeric_grad_small(&p0, &mut f);
            net.$($p).+.copy_from_slice(&p0).unwrap();
            let e = rel_err2(&analytic, &n1, &n2);
            println!("{}: {e:e}", stringify!($($p).+));
            worst = worst.max(e);
        }};
    }
    check!(emb.weight, grads.emb.weight);
    check!(fc1.weight, grads.fc1.weight);
    check!(fc2.weight, grads.fc2.weight);
    let b0 = net.fc1.bias.as_ref().unwrap().to_vec().unwrap();
    let ab = grads.fc1.bias.as_ref().unwrap().to_vec().unwrap();
    let mut fb = |v: &[f64]| {
        net.fc1.bias.as_mut().unwrap().copy_from_slice(v).unwrap();
        loss(&net, &x, &r)
    };
    let (n1, n2) = (numeric_grad(&b0, &mut fb), numeric_grad_small(&b0, &mut fb));
    net.fc1.bias.as_mut().unwrap().copy_from_slice(&b0).unwrap();
    worst = worst.max(rel_err2(&ab, &n1, &n2));
    assert!(worst < 1e-6, "largest relative error {worst:e}");
}

#[test]
fn generic_length_and_named_vocabulary() {
    let dev = Cpu;
    let net = TokSeq::<f32, Cpu, 5>::init(&dev, &mut rng(1)).unwrap();
    assert_eq!(TokSeq::<f32, Cpu, 5>::PARAMS, VOCAB * 4 + 4 * 3 + 3);
    // the padding row starts at zero
    let w = net.emb.weight.to_vec().unwrap();
    assert!(w[..4].iter().all(|&v| v == 0.0));
    let ids = Tokens::<S1<5>, VOCAB>::new::<f32>(&dev, &[0, 1, 2, 3, 10, 4, 5, 6, 7, 8]).unwrap();
    let y = net.forward(&ids).unwrap();
    assert_eq!(y.batch(), 2);
    // the same ids through the training pass give the same outputs
    let mut net = net;
    let mut tape = net.tape().unwrap();
    let yt = net
        .forward_train(&ids, &mut tape)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(yt, y.to_vec().unwrap());
    assert_eq!(tape.in_ids.as_slice(), ids.as_slice());
}

kiln::network! {
    /// Ids and floats side by side: only the float input has a gradient.
    pub struct Tagger {
        input ids: Tokens<[4], 10>,
        input feats: [4, 3],
        let e = ids |> emb: Embedding(10, 3);
        output y = e + feats |> fc: Linear(2);
    }
}

#[test]
fn token_and_float_inputs_together() {
    let dev = Cpu;
    let mut net = Tagger::<f64>::init(&dev, &mut rng(5)).unwrap();
    let ids = Tokens::<S1<4>, 10>::new::<f64>(&dev, &[1, 2, 3, 9, 0, 0, 5, 7]).unwrap();
    let f = kiln::testing::random_input(2 * 4 * 3, &mut rng(6));
    let feats = Tensor::<S2<4, 3>, f64>::from_slice(&dev, &f).unwrap();
    let r = kiln::testing::random_input(2 * 4 * 2, &mut rng(7));
    let dr = Tensor::<S2<4, 2>, f64>::from_slice(&dev, &r).unwrap();
    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    let mut grads = net.grads().unwrap();
    net.forward_train(&ids, &feats, &mut tape).unwrap();
    net.backward(&mut tape, &dr, &mut grads).unwrap();
    let analytic = tape.grad_feats.to_vec().unwrap();
    let loss = |v: &[f64]| {
        let x = Tensor::<S2<4, 3>, f64>::from_slice(&dev, v).unwrap();
        let y = net.forward(&ids, &x).unwrap().to_vec().unwrap();
        y.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
    };
    let (n1, n2) = (numeric_grad(&f, loss), numeric_grad_small(&f, loss));
    let e = rel_err2(&analytic, &n1, &n2);
    assert!(e < 1e-6, "∂L/∂feats relative error {e:e}");
    // a batch that disagrees between the inputs is an error
    let one = Tensor::<S2<4, 3>, f64>::from_slice(&dev, &f[..12]).unwrap();
    assert!(net.forward(&ids, &one).is_err());
}

kiln::network! {
    /// `CharMlp` written as a chain: the token input in chain form.
    pub struct CharMlpChain {
        input: Tokens<[8], 27>,
        emb: Embedding(27, 16),
        fc1: Linear(32),
        gelu,
        fc2: Linear(27),
    }
}

#[test]
fn chain_form_token_input_matches_the_graph_form_and_shows_its_vocabulary() {
    let dev = Cpu;
    // Same fields in the same order: the same seed gives the same weights.
    let graph = CharMlp::<f64>::init(&dev, &mut rng(5)).unwrap();
    let chain = CharMlpChain::<f64>::init(&dev, &mut rng(5)).unwrap();
    let (xs, _) = windows();
    let x = Tokens::<S1<T>, V>::new::<f64>(&dev, &xs[..3 * T]).unwrap();
    let a = graph.forward(&x).unwrap().to_vec().unwrap();
    let b = chain.forward(&x).unwrap().to_vec().unwrap();
    assert_eq!(a.len(), 3 * T * V);
    assert_eq!(a, b);
    assert_eq!(CharMlpChain::VOCABS, &[Some(27)]);
    assert_eq!(CharMlpChain::INPUTS, &[&[8usize][..]]);
    assert_eq!(Tagger::VOCABS, &[Some(10), None]);
    let s = CharMlpChain::summary();
    assert!(s.contains("input: Tokens<[8], 27>"), "{s}");
    let s = Tagger::summary();
    assert!(s.contains("input: Tokens<[4], 10>, [4, 3]"), "{s}");
}
