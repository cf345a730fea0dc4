//! `RNN` in `network!`: generated networks with Elman RNNs (tanh and relu,
//! stacked, one beside a GRU) are gradient-checked against central
//! differences in f64, and a character model (Embedding → RNN → Linear)
//! trained with per-position cross-entropy must get below the unigram entropy
//! of its text, which a model that does not carry information along the
//! sequence cannot.

use kiln::prelude::*;
use kiln::testing::check_layer;

kiln::network! {
    /// One RNN with a declared input size, then a position-wise head.
    pub struct SeqRnn {
        input: [6, 3],
        rnn: RNN(3, 5),
        fc: Linear(2),
    }
}

kiln::network! {
    /// A relu RNN, a tanh RNN without biases, and a GRU, stacked.
    pub struct Stacked {
        input: [4, 2],
        l1: RNN(5, nonlinearity = "relu"),
        l2: RNN(5, 3, nonlinearity = "tanh", bias = false),
        l3: GRU(2),
    }
}

#[test]
fn rnn_networks_match_central_differences() {
    let mut a = SeqRnn::<f64>::init(&Cpu, &mut rng(1)).unwrap();
    let e = check_layer(&mut a, 3, 2).unwrap();
    assert!(e < 1e-6, "SeqRnn: {e}");
    let mut b = Stacked::<f64>::init(&Cpu, &mut rng(3)).unwrap();
    let e = check_layer(&mut b, 2, 4).unwrap();
    assert!(e < 1e-6, "Stacked: {e}");
    assert_eq!(
        b.l1.nonlinearity,
        kiln::layers::RnnNonlinearity::Relu,
        "nonlinearity = \"relu\" reaches the layer"
    );
    assert_eq!(b.l2.nonlinearity, kiln::layers::RnnNonlinearity::Tanh);
    assert!(b.l2.bias_ih.is_none() && b.l2.bias_hh.is_none());
    // 5·(3 + 5 + 2) + (5·2 + 2); 5·(2 + 5 + 2) + 3·(5 + 3) + 3·2·(3 + 2 + 2)
    assert_eq!(SeqRnn::PARAMS, 62);
    assert_eq!(Stacked::PARAMS, 111);
}

const T: usize = 12;
const V: usize = 27;

kiln::network! {
    /// A character language model: every position predicts the next character.
    pub struct CharRnn {
        input: Tokens<[12], 27>,
        emb: Embedding(27, 16),
        rnn: RNN(32),
        fc: Linear(27),
    }
}

const TEXT: &str = "it was the best of times it was the worst of times it was the age of wisdom \
it was the age of foolishness it was the epoch of belief it was the epoch of incredulity it was \
the season of light it was the season of darkness it was the spring of hope it was the winter of \
despair";

fn id(c: char) -> u32 {
    if c == ' ' {
        26
    } else {
        c as u32 - 'a' as u32
    }
}

#[test]
fn char_rnn_learns_below_the_unigram_entropy() {
    let ids: Vec<u32> = TEXT.chars().map(id).collect();
    let batch = (ids.len() - 1) / T;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for b in 0..batch {
        xs.extend_from_slice(&ids[b * T..b * T + T]);
        ys.extend_from_slice(&ids[b * T + 1..b * T + T + 1]);
    }
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
    let mut net = CharRnn::<f32>::init(&Cpu, &mut rng(0)).unwrap();
    let x = Tokens::<S1<T>, V>::new::<f32>(&Cpu, &xs).unwrap();
    let y = Tokens::<S1<T>, V>::new::<f32>(&Cpu, &ys).unwrap();
    let mut tape = net.tape().unwrap();
    let mut grads = net.grads().unwrap();
    let mut dlogits = Tensor::<S2<T, V>>::empty(&Cpu).unwrap();
    let mut opt = Adam::<f32, Cpu>::new(0.01);
    let mut losses = Vec::new();
    for _ in 0..300 {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(cross_entropy_tokens(logits, &y, None, Some(&mut dlogits)).unwrap());
        net.backward(&mut tape, &dlogits, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    println!("loss {first:.4} → {last:.4}; unigram entropy {h_uni:.4} nats");
    assert!((first as f64 - (V as f64).ln()).abs() < 0.3, "{first}");
    assert!(
        (last as f64) < 0.7 * h_uni,
        "loss {last} is not well below the unigram entropy {h_uni}"
    );
}
