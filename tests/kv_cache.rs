//! Key/value-cached decoding of `examples/char_gpt.rs`'s GPT (the file is
//! included as a module) against the whole-window forward pass, in f64 on
//! random weights (wider than nanoGPT's N(0, 0.02), so attention is far from
//! uniform): `GptDecoder::step` at positions 0…63 gives the logits of the
//! causal forward pass's rows 0…63, for two sequences decoded side by side;
//! after `clear`, a refill with a later stretch gives that window's logits;
//! a 65th position is refused; sampling through the cache draws the same
//! text as the whole-window sampler until the context outgrows the window.

use crate::char_gpt;

use char_gpt::{CharGpt, GptDecoder, SEQ, VOCAB};
use kiln::prelude::*;
use kiln::testing::random_input;
use kiln::Path;

/// The example's network with every weight N(0, 0.3)-like (LayerNorm
/// weights 1 + N(0, 0.1)-like).
fn random_gpt() -> CharGpt<f64> {
    let mut net = CharGpt::<f64>::init(&Cpu, &mut rng(0)).unwrap();
    let mut seed = 10;
    net.visit_mut(&Path::ROOT, &mut |p, v: kiln::ParamMut<'_, f64, Cpu>, _| {
        seed += 1;
        let r = random_input(v.numel, &mut rng(seed));
        let ln = p.to_string().contains("ln_");
        for (dst, x) in v.value.iter_mut().zip(r) {
            *dst = if ln { 1.0 + 0.1 * x } else { 0.3 * x };
        }
    });
    net
}

/// The whole-window logits `[batch, SEQ, VOCAB]` of `windows` (`batch·SEQ` ids).
fn full_logits(net: &CharGpt<f64>, windows: &[u32]) -> Vec<f64> {
    let x = Tokens::<S1<SEQ>, VOCAB>::new::<f64>(&Cpu, windows).unwrap();
    net.forward(&x).unwrap().to_vec().unwrap()
}

#[test]
fn cached_logits_equal_the_whole_window() {
    let net = random_gpt();
    let text: Vec<u32> = (0..2 * 100)
        .map(|i| ((i * 37 + i / 7) % VOCAB) as u32)
        .collect();
    let (a, b) = (&text[..100], &text[100..]);
    let windows: Vec<u32> = a[..SEQ].iter().chain(&b[..SEQ]).copied().collect();
    let want = full_logits(&net, &windows);
    let mut dec = GptDecoder::<f64, Cpu>::new(&net, 2).unwrap();
    let mut worst = 0.0f64;
    for t in 0..SEQ {
        let got = dec.step(&net, &[a[t], b[t]]).unwrap().to_vec().unwrap();
        for s in 0..2 {
            let w = &want[(s * SEQ + t) * VOCAB..(s * SEQ + t + 1) * VOCAB];
            for (g, w) in got[s * VOCAB..(s + 1) * VOCAB].iter().zip(w) {
                worst = worst.max((g - w).abs());
            }
        }
    }
    println!("largest difference over {SEQ} positions × 2 sequences: {worst:e}");
    assert!(worst <= 1e-12, "largest difference {worst:e}");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(scale > 1.0, "logits too small to test anything: {scale}");

    // Full: a 65th position is refused.
    assert!(dec.step(&net, &[1, 2]).is_err());

    // Refilled with a later stretch: that window's logits (its padding
    // positions come after and cannot change them).
    dec.clear();
    let k = char_gpt::REFILL;
    let mut windows = vec![0u32; 2 * SEQ];
    windows[..k].copy_from_slice(&a[36..36 + k]);
    windows[SEQ..SEQ + k].copy_from_slice(&b[36..36 + k]);
    let want = full_logits(&net, &windows);
    let mut worst = 0.0f64;
    for t in 0..k {
        let got = dec
            .step(&net, &[a[36 + t], b[36 + t]])
            .unwrap()
            .to_vec()
            .unwrap();
        for s in 0..2 {
            let w = &want[(s * SEQ + t) * VOCAB..(s * SEQ + t + 1) * VOCAB];
            for (g, w) in got[s * VOCAB..(s + 1) * VOCAB].iter().zip(w) {
                worst = worst.max((g - w).abs());
            }
        }
    }
    assert!(
        worst <= 1e-12,
        "after a refill: largest difference {worst:e}"
    );
}

/// In f32 on the example's own initialisation, with a tokenizer over the
/// corpus's 84 symbols: the cached and the whole-window samplers draw the
/// same characters up to the first refill (the window is full after 64).
#[test]
fn cached_sampling_draws_the_whole_window_text() {
    let symbols: String = (0..VOCAB as u32)
        .map(|i| char::from_u32(0x21 + i).unwrap())
        .collect();
    let tok = kiln::data::text::CharTokenizer::from_text(&symbols);
    let net = char_gpt::init_gpt(&Cpu, 3).unwrap();
    let prompt = "ABC";
    let n = SEQ - prompt.len();
    let cached = char_gpt::sample(&net, &tok, prompt, n, 1.0, 0, &mut rng(9)).unwrap();
    let whole = char_gpt::sample_uncached(&net, &tok, prompt, n, 1.0, 0, &mut rng(9)).unwrap();
    assert_eq!(cached.chars().count(), SEQ);
    assert_eq!(cached, whole);
    // Past the window both keep going (the cache refills).
    let long = char_gpt::sample(&net, &tok, prompt, 3 * SEQ, 1.0, 0, &mut rng(9)).unwrap();
    assert_eq!(long.chars().count(), prompt.len() + 3 * SEQ);
    assert!(long.starts_with(&cached));
}
