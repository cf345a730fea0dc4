//! An `Embedding` trained by hand (no macro) as a bigram language model: the
//! table `Embedding(V, V)` holds the logits of the next character given the
//! current one, trained with per-position cross-entropy and Adam on a short
//! text. The model must learn something real: its loss on the text falls
//! well below the unigram entropy (what a model that ignores the current
//! character can reach at best) and never below the empirical bigram
//! conditional entropy (the least any bigram table can reach on this text).

use kiln::layers::{Embedding, EmbeddingConfig};
use kiln::prelude::*;

const V: usize = 27; // 'a'..='z' and space
const T: usize = 32;

const TEXT: &str = "it was the best of times it was the worst of times it was the age of \
wisdom it was the age of foolishness it was the epoch of belief it was the epoch of \
incredulity it was the season of light it was the season of darkness it was the spring \
of hope it was the winter of despair we had everything before us we had nothing before us \
we were all going direct to heaven we were all going direct the other way in short the \
period was so far like the present period that some of its noisiest authorities insisted \
on its being received for good or for evil in the superlative degree of comparison only";

fn id(c: char) -> u32 {
    if c == ' ' {
        26
    } else {
        c as u32 - 'a' as u32
    }
}

#[test]
fn bigram_embedding_learns_below_the_unigram_entropy() {
    let ids: Vec<u32> = TEXT.chars().map(id).collect();
    assert!(ids.iter().all(|&i| (i as usize) < V));
    let batch = (ids.len() - 1) / T;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for b in 0..batch {
        xs.extend_from_slice(&ids[b * T..b * T + T]);
        ys.extend_from_slice(&ids[b * T + 1..b * T + T + 1]);
    }
    let n = (batch * T) as f64;

    // The two entropies (nats) of the next character over exactly these pairs.
    let mut uni = [0.0f64; V];
    let mut pair = vec![[0.0f64; V]; V];
    for (&x, &y) in xs.iter().zip(&ys) {
        uni[y as usize] += 1.0;
        pair[x as usize][y as usize] += 1.0;
    }
    let h_uni: f64 = uni
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| -(c / n) * (c / n).ln())
        .sum();
    let h_cond: f64 = pair
        .iter()
        .map(|row| {
            let tot: f64 = row.iter().sum();
            row.iter()
                .filter(|&&c| c > 0.0)
                .map(|&c| -(c / n) * (c / tot).ln())
                .sum::<f64>()
        })
        .sum();
    assert!(
        h_cond < h_uni - 0.8,
        "the text has bigram structure: {h_cond} vs {h_uni}"
    );

    let dev = Cpu;
    let mut table =
        Embedding::<f64, Cpu, V, V>::build(&dev, &mut rng(0), EmbeddingConfig::default()).unwrap();
    let x = Tokens::<S1<T>, V>::new::<f64>(&dev, &xs).unwrap();
    let y = Tokens::<S1<T>, V>::new::<f64>(&dev, &ys).unwrap();
    let mut opt = Adam::<f64, Cpu>::new(0.1);
    let mut logits = Tensor::<S2<T, V>, f64>::empty(&dev).unwrap();
    let mut dlogits = Tensor::<S2<T, V>, f64>::empty(&dev).unwrap();
    let mut grads = table.grads().unwrap();
    let mut ctx = kiln::TrainCtx::new(0);
    let mut first = None;
    let mut last = f64::NAN;
    for _ in 0..300 {
        table
            .forward_train(&x, &mut logits, &mut (), &mut ctx)
            .unwrap();
        last = cross_entropy_tokens(&logits, &y, None, Some(&mut dlogits)).unwrap();
        first.get_or_insert(last);
        table
            .backward(&x, &logits, &mut (), &dlogits, &mut grads, Acc::Set)
            .unwrap();
        opt.step(&mut table, &grads).unwrap();
    }
    let first = first.unwrap();
    println!("loss {first:.4} → {last:.4}; unigram entropy {h_uni:.4}, bigram {h_cond:.4} nats");
    assert!(
        first > h_uni,
        "an untrained N(0, 1) table is worse than unigram: {first}"
    );
    assert!(
        last < (h_uni + h_cond) / 2.0,
        "loss {last} is not well below the unigram entropy {h_uni} (bigram bound {h_cond})"
    );
    assert!(
        last >= h_cond - 1e-9,
        "loss {last} below the bigram bound {h_cond}"
    );
    // with the whole text as the batch, the table's optimum is exactly the
    // empirical conditional distribution: 300 Adam steps come close to it
    assert!(
        last < h_cond + 0.05,
        "loss {last} far from the bigram optimum {h_cond}"
    );
}
