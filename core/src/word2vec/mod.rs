//! word2vec: skip-gram with negative sampling (Mikolov et al. 2013; lesson 13
//! of the course notes), built on two [`Embedding`] tables trained with
//! sparse row updates ([`Embedding::backward_sparse`], [`Sgd::step_sparse`]).
//!
//! * **Corpus** ([`Corpus`]): the [`WordTokenizer`]'s tokens (lower-case
//!   words and punctuation) of each work, cut into sentences of at most
//!   [`MAX_SENTENCE`] tokens as gensim's `LineSentence` cuts a line; words
//!   under the minimum count are dropped from a sentence before any window is
//!   taken (as word2vec and gensim drop out-of-vocabulary words), so `<unk>`
//!   has a row (id 0) but is never trained.
//! * **Per epoch**, for each sentence: subsampling of frequent words
//!   ([`sampling::keep_probability`], the C code's formula), then for each
//!   kept centre word `c` a window `b` uniform in `1..=window`
//!   ([`sampling::reduced_window`]) and a pair `(c, o)` for each word `o` at
//!   distance at most `b`, each with `K` noise words from the unigram^0.75
//!   table ([`sampling::NoiseTable`]).
//! * **Loss** of a pair ([`sgns::loss_and_grad`]):
//!   `L = −log σ(u_o·v_c) − Σ_k log σ(−u_k·v_c)`, `v` the input table's row,
//!   `u` the output table's, the gradient written by hand.
//! * **Updates**: pairs are taken [`Config::batch`] at a time; the two
//!   tables' gradients (the batch's summed per-pair gradients, so the step is
//!   per-pair SGD applied at once, not a mean) are sparse, and plain SGD
//!   with word2vec's learning rate, decayed linearly from `alpha` to
//!   `min_alpha` over all epochs by the fraction of corpus tokens done
//!   (gensim's schedule), updates only the rows the batch touched.
//! * **Initialisation** as gensim 4: input vectors uniform in
//!   `[−1/dim, 1/dim)`, output vectors zero (so the first loss of every pair
//!   is `(K + 1) log 2`).
//!
//! The vocabulary size and the width are type parameters of [`Embedding`]:
//! [`train`] takes a table of `V` rows (a capacity, at least the
//! vocabulary; rows past it are never read or written, so they cost memory
//! only) and `DIM` columns.

pub mod eval;
pub mod sampling;
pub mod sgns;

use crate::data::text::{Split, WordTokenizer};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::layers::{Embedding, EmbeddingConfig, SparseRows, TokenLayer};
use crate::module::Build;
use crate::optim::Sgd;
use crate::shape::{S1, S2};
use crate::tensor::{Tensor, Tokens};
use crate::{rng, Cpu};
use eval::WordVectors;
use rand::Rng as _;
use sampling::{keep_probability, reduced_window, NoiseTable};
use std::time::{Duration, Instant};

/// The longest sentence, in raw tokens (gensim's `max_sentence_length`).
pub const MAX_SENTENCE: usize = 10_000;

/// Training options; the defaults are gensim's `Word2Vec(sg=1)` defaults
/// except `epochs` and `batch`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest window `b` (words each side).
    pub window: usize,
    /// Noise words per pair `K`.
    pub negative: usize,
    /// Minimum count of a vocabulary word.
    pub min_count: u64,
    /// Subsampling threshold (0: none).
    pub sample: f64,
    /// Initial learning rate.
    pub alpha: f64,
    /// Final learning rate.
    pub min_alpha: f64,
    /// Passes over the corpus.
    pub epochs: usize,
    /// Pairs per SGD step.
    pub batch: usize,
    /// Seed of the initialisation and of all sampling.
    pub seed: u64,
    /// Stop after this much training time (checked between sentences).
    pub time_budget: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window: 5,
            negative: 5,
            min_count: 5,
            sample: 1e-3,
            alpha: 0.025,
            min_alpha: 0.0001,
            epochs: 5,
            batch: 64,
            seed: 1,
            time_budget: None,
        }
    }
}

impl Config {
    /// The `--smoke` run of `examples/word2vec.rs` and of its test: the first
    /// [`SMOKE_WORKS`] training works, width [`SMOKE_DIM`], 3 epochs of a
    /// window of 3 with 3 noise words; seconds in a debug build.
    pub fn smoke() -> Config {
        Config {
            window: 3,
            negative: 3,
            min_count: 3,
            epochs: 3,
            ..Config::default()
        }
    }
}

/// Training works used by [`Config::smoke`].
pub const SMOKE_WORKS: usize = 4;
/// Width used by [`Config::smoke`].
pub const SMOKE_DIM: usize = 32;

/// The training corpus as word ids, ready for sampling.
pub struct Corpus {
    /// The vocabulary (id 0 `<unk>`, then the words by count).
    pub tokenizer: WordTokenizer,
    /// Raw sentences, each at most [`MAX_SENTENCE`] tokens, with only
    /// vocabulary words kept (ids ≥ 1).
    pub sentences: Vec<Vec<u32>>,
    /// Raw tokens per sentence (before dropping rare words), for the
    /// learning-rate schedule, which counts raw tokens as gensim does.
    pub raw_lengths: Vec<usize>,
}

impl Corpus {
    /// The corpus of `split`'s works with the vocabulary of words seen at
    /// least `min_count` times in them. `f` receives each raw sentence
    /// (tokens), for writing the token stream another program reads.
    pub fn from_split(split: &Split, min_count: u64, mut f: impl FnMut(&[String])) -> Corpus {
        let texts: Vec<&str> = split.works.iter().map(|w| w.text.as_str()).collect();
        let tokenizer = WordTokenizer::from_texts(texts.iter().copied(), min_count);
        let (mut sentences, mut raw_lengths) = (Vec::new(), Vec::new());
        for text in texts {
            let tokens = WordTokenizer::tokenize(text);
            for chunk in tokens.chunks(MAX_SENTENCE) {
                f(chunk);
                let ids: Vec<u32> = chunk
                    .iter()
                    .filter_map(|t| tokenizer.id(t))
                    .filter(|&id| id != WordTokenizer::UNK_ID)
                    .collect();
                sentences.push(ids);
                raw_lengths.push(chunk.len());
            }
        }
        Corpus {
            tokenizer,
            sentences,
            raw_lengths,
        }
    }
    /// The number of vocabulary words (without `<unk>`).
    pub fn words(&self) -> usize {
        self.tokenizer.vocab_size() - 1
    }
    /// Vocabulary tokens in the corpus.
    pub fn tokens(&self) -> usize {
        self.sentences.iter().map(Vec::len).sum()
    }
}

/// What one epoch did.
#[derive(Clone, Debug)]
pub struct Epoch {
    /// Epoch number from 1.
    pub epoch: usize,
    /// Mean loss per pair over the epoch.
    pub loss: f64,
    /// Pairs trained.
    pub pairs: usize,
    /// Centre words kept by subsampling.
    pub kept: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Seconds of the epoch.
    pub seconds: f64,
    /// Whether the time budget stopped it early.
    pub cut_short: bool,
    /// Fraction of the epoch's sentences done: below 1 for the progress
    /// reports made at each quarter, 1 for the report at the epoch's end.
    pub done: f64,
}

/// The two trained tables.
pub struct Trained<const V: usize, const DIM: usize> {
    /// Input vectors `v` (the word vectors kept).
    pub input: Embedding<f32, Cpu, V, DIM>,
    /// Output vectors `u`.
    pub output: Embedding<f32, Cpu, V, DIM>,
    /// One report per epoch run.
    pub epochs: Vec<Epoch>,
}

impl<const V: usize, const DIM: usize> Trained<V, DIM> {
    /// The input vectors of the vocabulary words (`<unk>` left out), in id order.
    pub fn vectors(&self, corpus: &Corpus) -> Result<WordVectors> {
        let n = corpus.words();
        let w = self.input.weight.to_vec()?;
        WordVectors::new(
            corpus.tokenizer.words()[1..].to_vec(),
            DIM,
            w[DIM..(n + 1) * DIM].to_vec(),
        )
    }
}

/// The reusable buffers of one SGD step.
struct Step<const V: usize, const DIM: usize> {
    centres: Vec<u32>,
    outputs: Vec<u32>,
    mask: Vec<f32>,
    x_in: Tokens<S1<1>, V>,
    x_out: Tokens<S1<1>, V>,
    v: Tensor<S2<1, DIM>>,
    u: Tensor<S2<1, DIM>>,
    dv: Tensor<S2<1, DIM>>,
    du: Tensor<S2<1, DIM>>,
    g_in: SparseRows<f32, Cpu, V, DIM>,
    g_out: SparseRows<f32, Cpu, V, DIM>,
}

impl<const V: usize, const DIM: usize> Step<V, DIM> {
    /// One SGD step on the collected pairs; returns the summed loss.
    fn run(&mut self, t: &mut Trained<V, DIM>, sgd: &Sgd<f32, Cpu>, k1: usize) -> Result<f64> {
        let b = self.centres.len();
        self.x_in.set::<f32>(&self.centres)?;
        self.x_out.set::<f32>(&self.outputs)?;
        TokenLayer::<f32, Cpu, S1<1>, V>::forward(&t.input, &self.x_in, &mut self.v, &mut ())?;
        TokenLayer::<f32, Cpu, S1<1>, V>::forward(&t.output, &self.x_out, &mut self.u, &mut ())?;
        self.dv.set_batch(b)?;
        self.du.set_batch(b * k1)?;
        let (v, u) = (self.v.buf(), self.u.buf());
        let (dv, du) = (self.dv.buf_mut(), self.du.buf_mut());
        let mut loss = 0.0;
        for i in 0..b {
            loss += sgns::loss_and_grad(
                &v[i * DIM..][..DIM],
                &u[i * k1 * DIM..][..k1 * DIM],
                &self.mask[i * k1..][..k1],
                &mut dv[i * DIM..][..DIM],
                &mut du[i * k1 * DIM..][..k1 * DIM],
            ) as f64;
        }
        // Both gradients come from the same parameters: take both before
        // changing either table.
        t.input
            .backward_sparse(&self.x_in, &self.dv, &mut self.g_in)?;
        t.output
            .backward_sparse(&self.x_out, &self.du, &mut self.g_out)?;
        sgd.step_sparse(&mut t.input.weight, &self.g_in)?;
        sgd.step_sparse(&mut t.output.weight, &self.g_out)?;
        self.centres.clear();
        self.outputs.clear();
        self.mask.clear();
        Ok(loss)
    }
}

/// Trains skip-gram with negative sampling on `corpus` (module doc), calling
/// `report` at each quarter of an epoch (progress, `done < 1`, the figures
/// so far) and at its end (`done == 1`); [`Trained::epochs`] keeps the
/// latter.
pub fn train<const V: usize, const DIM: usize>(
    corpus: &Corpus,
    cfg: &Config,
    mut report: impl FnMut(&Epoch),
) -> Result<Trained<V, DIM>> {
    let n = corpus.tokenizer.vocab_size();
    if n > V {
        return Err(Error::invalid(
            "word2vec::train",
            format!("a vocabulary of {n} (with <unk>) does not fit a table of {V} rows"),
        ));
    }
    if cfg.window == 0 || cfg.batch == 0 || corpus.words() == 0 {
        return Err(Error::invalid(
            "word2vec::train",
            "the window, the batch and the vocabulary must not be empty",
        ));
    }
    let mut r = rng(cfg.seed);
    let zeros = EmbeddingConfig {
        padding_idx: None,
        init: Init::Zeros,
    };
    let mut input = Embedding::<f32, Cpu, V, DIM>::build(&Cpu, &mut r, zeros)?;
    let output = Embedding::<f32, Cpu, V, DIM>::build(&Cpu, &mut r, zeros)?;
    // gensim 4: uniform in [−1/dim, 1/dim) for the vocabulary rows.
    let mut w = vec![0f32; V * DIM];
    for x in &mut w[DIM..n * DIM] {
        *x = ((r.random::<f64>() * 2.0 - 1.0) / DIM as f64) as f32;
    }
    input.weight.copy_from_slice(&w)?;
    let mut t = Trained {
        input,
        output,
        epochs: Vec::new(),
    };

    let counts = corpus.tokenizer.counts();
    let total: u64 = counts[1..].iter().sum();
    let keep: Vec<f64> = counts
        .iter()
        .map(|&c| keep_probability(c, total, cfg.sample))
        .collect();
    // Noise over the words 1..n (table index i is word i + 1).
    let noise = NoiseTable::new(&counts[1..], 0.75)?;
    let k1 = cfg.negative + 1;
    let mut step = Step::<V, DIM> {
        centres: Vec::with_capacity(cfg.batch),
        outputs: Vec::with_capacity(cfg.batch * k1),
        mask: Vec::with_capacity(cfg.batch * k1),
        x_in: Tokens::zeros::<f32>(&Cpu, 0)?,
        x_out: Tokens::zeros::<f32>(&Cpu, 0)?,
        v: Tensor::zeros(&Cpu, cfg.batch)?,
        u: Tensor::zeros(&Cpu, cfg.batch * k1)?,
        dv: Tensor::zeros(&Cpu, cfg.batch)?,
        du: Tensor::zeros(&Cpu, cfg.batch * k1)?,
        g_in: SparseRows::new(&t.input)?,
        g_out: SparseRows::new(&t.output)?,
    };
    let mut sgd = Sgd::<f32, Cpu>::new(cfg.alpha);
    let raw_per_epoch: usize = corpus.raw_lengths.iter().sum();
    let raw_total = (raw_per_epoch * cfg.epochs).max(1) as f64;
    let start = Instant::now();
    let mut kept = Vec::with_capacity(MAX_SENTENCE);
    let mut raw_done = 0usize;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let (mut loss, mut pairs, mut centres, mut cut_short) = (0.0, 0usize, 0usize, false);
        let quarters = corpus.sentences.len().div_ceil(4).max(1);
        for (si, (sentence, &raw)) in corpus.sentences.iter().zip(&corpus.raw_lengths).enumerate() {
            if si > 0 && si % quarters == 0 {
                report(&Epoch {
                    epoch,
                    loss: loss / pairs.max(1) as f64,
                    pairs,
                    kept: centres,
                    lr: sgd.lr,
                    seconds: t0.elapsed().as_secs_f64(),
                    cut_short: false,
                    done: si as f64 / corpus.sentences.len() as f64,
                });
            }
            if cfg.time_budget.is_some_and(|b| start.elapsed() > b) {
                cut_short = true;
                break;
            }
            // gensim sets a job's rate from the words done before it.
            let progress = raw_done as f64 / raw_total;
            sgd.lr = (cfg.alpha - (cfg.alpha - cfg.min_alpha) * progress).max(cfg.min_alpha);
            raw_done += raw;
            kept.clear();
            kept.extend(
                sentence
                    .iter()
                    .copied()
                    .filter(|&w| keep[w as usize] >= r.random::<f64>()),
            );
            centres += kept.len();
            for i in 0..kept.len() {
                let b = reduced_window(cfg.window, &mut r);
                let lo = i.saturating_sub(b);
                let hi = (i + b + 1).min(kept.len());
                for j in (lo..hi).filter(|&j| j != i) {
                    let o = kept[j];
                    step.centres.push(kept[i]);
                    step.outputs.push(o);
                    step.mask.push(1.0);
                    for _ in 0..cfg.negative {
                        let neg = noise.sample(&mut r) as u32 + 1;
                        step.outputs.push(neg);
                        step.mask.push(if neg == o { 0.0 } else { 1.0 });
                    }
                    if step.centres.len() == cfg.batch {
                        loss += step.run(&mut t, &sgd, k1)?;
                        pairs += cfg.batch;
                    }
                }
            }
        }
        if !step.centres.is_empty() {
            pairs += step.centres.len();
            loss += step.run(&mut t, &sgd, k1)?;
        }
        let e = Epoch {
            epoch,
            loss: loss / pairs.max(1) as f64,
            pairs,
            kept: centres,
            lr: sgd.lr,
            seconds: t0.elapsed().as_secs_f64(),
            cut_short,
            done: 1.0,
        };
        report(&e);
        t.epochs.push(e);
        if cut_short {
            break;
        }
    }
    Ok(t)
}

/// Runs [`train`] with the table width chosen at run time among the widths
/// this function is compiled for (32, 50, 100, 200, 300) and a table of
/// [`MAX_VOCAB`] rows, and returns the word vectors with the epoch reports.
pub fn train_dyn(
    corpus: &Corpus,
    cfg: &Config,
    dim: usize,
    report: impl FnMut(&Epoch),
) -> Result<(WordVectors, Vec<Epoch>)> {
    fn go<const DIM: usize>(
        corpus: &Corpus,
        cfg: &Config,
        report: impl FnMut(&Epoch),
    ) -> Result<(WordVectors, Vec<Epoch>)> {
        let t = train::<MAX_VOCAB, DIM>(corpus, cfg, report)?;
        Ok((t.vectors(corpus)?, t.epochs))
    }
    match dim {
        32 => go::<32>(corpus, cfg, report),
        50 => go::<50>(corpus, cfg, report),
        100 => go::<100>(corpus, cfg, report),
        200 => go::<200>(corpus, cfg, report),
        300 => go::<300>(corpus, cfg, report),
        _ => Err(Error::invalid(
            "word2vec::train_dyn",
            format!("--dim {dim}: the widths compiled in are {DIMS:?}"),
        )),
    }
}

/// The widths [`train_dyn`] accepts.
pub const DIMS: [usize; 5] = [32, 50, 100, 200, 300];

/// The table capacity of [`train_dyn`]: the whole training vocabulary of
/// Shakespeare's 36 training works (24,573 words and `<unk>`) fits, so any
/// minimum count does.
pub const MAX_VOCAB: usize = 1 << 15;
