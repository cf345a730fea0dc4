//! Dates written in 14 human formats translated into ISO `yyyy-mm-dd` by a
//! character-level encoder–decoder transformer (lesson 15 of the course):
//! teacher forcing in training; greedy decoding and beam search
//! ([`kiln::decode`]) in evaluation, on dates never seen in training.
//!
//! ```text
//! cargo run --release --example translate                           # ≤ 15 min of training, then the test set
//! cargo run --release --example translate -- --smoke                # 150 steps, a small test set (CI runs this)
//! cargo run --release --example translate -- --attention-png docs/images/translate_attention.png --plot translate
//! cargo run --release --example translate -- --save t.safetensors   # then --resume t.safetensors --steps 0
//! ```
//!
//! Data (`dates.rs`): every date from 1950 to 2049 in 14 formats ("3rd of
//! March 2011", "Mar 3, 11", "03.03.2011", "03/03/11", "March third, two
//! thousand eleven", …), each unambiguous by construction. The dates are
//! shuffled by a seeded generator and `--test-dates` of them held out: the
//! test set is those dates (each in one format, formats in turn); training
//! draws `(date, format)` pairs from the other dates only.
//!
//! The model: pre-norm transformer blocks, two in the encoder (`x + MHA(LN
//! x)` with the source's padding masked, `x + MLP(LN x)`) and two in the
//! decoder (`x + causal MHA(LN x)`, `x + CrossMHA(LN x, memory)`, `x +
//! MLP(LN x)`), width 64, 4 heads, MLP 256, learned positions. The encoder
//! and decoder are two `network!` graphs joined by the memory: the decoder
//! is asked for its input gradients, and `∂L/∂memory` goes into the
//! encoder's backward. (A nested network in `network!` must have one input
//! and one output, and a decoder block has two, so the blocks are written
//! out; `docs/translate.md` shows the pattern.) The decoder's second output
//! is its last block's normalised queries, from which `--attention-png`
//! recomputes that block's cross-attention weights with the layer's own
//! `cross_attend`. AdamW (weight decay on the 2-D weights only, through
//! parameter groups), warm-up then cosine decay.

use clap::Parser;
use kiln::checkpoint::Checkpoint;
use kiln::decode::{beam_search, greedy, BeamSearch, NextToken, Query};
use kiln::layers::{AttentionCache, KeyPadding};
use kiln::optim::{Adam, Groups, Optimizer, Select};
use kiln::prelude::*;
use kiln::schedule::{LrScheduler, WarmupCosine};
use kiln::train::plot::{plot_heatmaps, plot_panels, Heatmap, Panel};
use kiln::{ParamMut, ParamRef, Path, Role};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

pub mod dates;

use dates::{Date, BOS, EOS, SRC_LEN, SRC_VOCAB, TGT_LEN, TGT_VOCAB};

/// The model's width.
pub const WIDTH: usize = 64;

kiln::network! {
    /// Source characters → memory: two pre-norm encoder blocks.
    pub struct Encoder {
        input src: Tokens<[52], 68>,
        let x0 = src |> emb: Embedding(68, 64) |> pos: PositionalEmbedding(52);
        let a1 = x0 |> e1_ln1: LayerNorm |> e1_attn: MultiHeadAttention(64, heads = 4, key_padding = src == 0);
        let h1 = a1 + x0;
        let m1 = h1 |> e1_ln2: LayerNorm |> e1_fc: Linear(256) |> gelu |> e1_proj: Linear(64);
        let x1 = m1 + h1;
        let a2 = x1 |> e2_ln1: LayerNorm |> e2_attn: MultiHeadAttention(64, heads = 4, key_padding = src == 0);
        let h2 = a2 + x1;
        let m2 = h2 |> e2_ln2: LayerNorm |> e2_fc: Linear(256) |> gelu |> e2_proj: Linear(64);
        let x2 = m2 + h2;
        output memory = x2 |> ln: LayerNorm;
    }
}

kiln::network! {
    /// `BOS` + the target so far, attending to the memory → next-character
    /// logits; also the last block's normalised queries (for the heat map).
    pub struct Decoder {
        input src: Tokens<[52], 68>,
        input memory: [52, 64],
        input tgt: Tokens<[11], 14>,
        let y0 = tgt |> emb: Embedding(14, 64) |> pos: PositionalEmbedding(11);
        let s1 = y0 |> d1_ln1: LayerNorm |> d1_self: MultiHeadAttention(64, heads = 4, causal = true);
        let g1 = s1 + y0;
        let c1 = g1 |> d1_ln2: LayerNorm |> d1_cross: MultiHeadAttention(64, heads = 4, memory = memory, key_padding = src == 0);
        let h1 = c1 + g1;
        let m1 = h1 |> d1_ln3: LayerNorm |> d1_fc: Linear(256) |> gelu |> d1_proj: Linear(64);
        let y1 = m1 + h1;
        let s2 = y1 |> d2_ln1: LayerNorm |> d2_self: MultiHeadAttention(64, heads = 4, causal = true);
        let g2 = s2 + y1;
        let q2 = g2 |> d2_ln2: LayerNorm;
        let c2 = q2 |> d2_cross: MultiHeadAttention(64, heads = 4, memory = memory, key_padding = src == 0);
        let h2 = c2 + g2;
        let m2 = h2 |> d2_ln3: LayerNorm |> d2_fc: Linear(256) |> gelu |> d2_proj: Linear(64);
        let y2 = m2 + h2;
        output logits = y2 |> ln: LayerNorm |> head: Linear(14);
        output queries = q2;
    }
}

/// The encoder and the decoder as one [`Module`] (`encoder.*`, `decoder.*`):
/// one optimizer, one checkpoint.
pub struct Model {
    /// Source → memory.
    pub enc: Encoder<f32>,
    /// Memory and target prefix → logits.
    pub dec: Decoder<f32>,
}

/// Gradients of a [`Model`].
pub struct ModelGrads {
    enc: EncoderGrads<f32, Cpu>,
    dec: DecoderGrads<f32, Cpu>,
}

impl Module<f32, Cpu> for Model {
    type Grads = ModelGrads;
    fn grads(&self) -> kiln::Result<ModelGrads> {
        Ok(ModelGrads {
            enc: self.enc.grads()?,
            dec: self.dec.grads()?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, f32, Cpu>)) {
        self.enc.visit(&path.child("encoder"), f);
        self.dec.visit(&path.child("decoder"), f);
    }
    fn visit_grads(
        &mut self,
        g: &ModelGrads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f32, Cpu>),
    ) {
        self.enc.visit_grads(&g.enc, &path.child("encoder"), f);
        self.dec.visit_grads(&g.dec, &path.child("decoder"), f);
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f32, Cpu>, Role),
    ) {
        self.enc.visit_mut(&path.child("encoder"), f);
        self.dec.visit_mut(&path.child("decoder"), f);
    }
}

/// Translate human-written dates into ISO form with an encoder–decoder transformer.
#[derive(Parser, Debug, Clone)]
#[command(about = "Translate dates in human formats into ISO yyyy-mm-dd with a kiln transformer")]
pub struct Args {
    /// Training steps (the cosine decay ends here).
    #[arg(long, default_value_t = 3500)]
    pub steps: u64,
    /// Stop training after this many minutes, even if steps remain.
    #[arg(long, default_value_t = 15.0)]
    pub minutes: f64,
    /// Pairs per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// AdamW's peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// Weight decay of the 2-D weights.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Steps between reports (test loss, a log line, a checkpoint).
    #[arg(long, default_value_t = 500)]
    pub eval_every: u64,
    /// Dates held out for the test set (of 36,525).
    #[arg(long, default_value_t = 2000)]
    pub test_dates: usize,
    /// Beam size of beam search.
    #[arg(long, default_value_t = 4)]
    pub beam: usize,
    /// α of beam search's length normalisation (log p / L^α).
    #[arg(long, default_value_t = 1.0)]
    pub length_penalty: f64,
    /// Seed of the weights and of the training batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the train/test split of the dates.
    #[arg(long, default_value_t = 2011)]
    pub data_seed: u64,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Save the model and the optimizer here after every report.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Continue (or, with --steps 0, only evaluate) the run saved in PATH.
    #[arg(long, value_name = "PATH")]
    pub resume: Option<PathBuf>,
    /// Draw the loss curves into PREFIX.png and PREFIX.svg.
    #[arg(long, value_name = "PREFIX")]
    pub plot: Option<PathBuf>,
    /// Write the cross-attention weights of a few test examples as a PNG heat map.
    #[arg(long, value_name = "PATH")]
    pub attention_png: Option<PathBuf>,
    /// A short run for CI: 150 steps, 200 test dates.
    #[arg(long)]
    pub smoke: bool,
}

impl Args {
    fn effective(&self) -> Args {
        let mut a = self.clone();
        if a.smoke {
            a.steps = a.steps.min(150);
            a.warmup = a.warmup.min(20);
            a.eval_every = a.eval_every.min(75);
            a.test_dates = a.test_dates.min(200);
        }
        a
    }
}

/// What a run returns.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Every step's training loss (nats per target character).
    pub losses: Vec<f32>,
    /// `(step, test loss)` at each report (teacher forcing).
    pub test_losses: Vec<(u64, f64)>,
    /// Exact-match accuracy of greedy decoding on the test set.
    pub greedy_acc: f64,
    /// Exact-match accuracy of beam search.
    pub beam_acc: f64,
    /// Seconds spent in training steps.
    pub train_secs: f64,
    /// `(source, greedy, beam, truth)` of every test example.
    pub decoded: Vec<(String, String, String, String)>,
}

/// Fills a batch: source ids, decoder inputs (`BOS` + ISO) and targets (ISO + `EOS`).
fn fill(
    pairs: &[(String, Date)],
    src: &mut Vec<u32>,
    tin: &mut Vec<u32>,
    tout: &mut Vec<u32>,
) -> kiln::Result<()> {
    src.clear();
    tin.clear();
    tout.clear();
    for (text, t) in pairs {
        dates::encode_source(text, src)?;
        let iso = dates::encode_target(&dates::iso(t));
        tin.push(BOS);
        tin.extend(&iso);
        tout.extend(&iso);
        tout.push(EOS);
    }
    Ok(())
}

/// Mean teacher-forced cross-entropy over `pairs`.
fn test_loss(model: &Model, pairs: &[(String, Date)]) -> kiln::Result<f64> {
    let (mut et, mut dt) = (model.enc.tape()?, model.dec.tape()?);
    let (mut s, mut ti, mut to) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sum, mut n) = (0.0, 0);
    for chunk in pairs.chunks(500) {
        fill(chunk, &mut s, &mut ti, &mut to)?;
        let src = Tokens::<S1<SRC_LEN>, SRC_VOCAB>::new::<f32>(&Cpu, &s)?;
        let tin = Tokens::<S1<TGT_LEN>, TGT_VOCAB>::new::<f32>(&Cpu, &ti)?;
        let tout = Tokens::<S1<TGT_LEN>, TGT_VOCAB>::new::<f32>(&Cpu, &to)?;
        let mem = model.enc.forward_with(&src, &mut et)?;
        let (logits, _) = model.dec.forward_with(&src, mem, &tin, &mut dt)?;
        sum += cross_entropy_tokens(logits, &tout, None, None)? as f64 * chunk.len() as f64;
        n += chunk.len();
    }
    Ok(sum / n as f64)
}

/// The model as a [`NextToken`] scorer for a set of sources: each source is
/// encoded once; a query runs the decoder on `BOS + prefix` (padded to the
/// static target length) and reads the log-softmax at the prefix's end.
pub struct Scorer<'a> {
    model: &'a Model,
    src: Vec<u32>,
    memory: Vec<f32>,
    tape: DecoderTape<f32, Cpu>,
}

impl<'a> Scorer<'a> {
    /// Encodes `texts`.
    pub fn new(model: &'a Model, texts: &[&str]) -> kiln::Result<Self> {
        let mut src = Vec::new();
        for t in texts {
            dates::encode_source(t, &mut src)?;
        }
        let ids = Tokens::<S1<SRC_LEN>, SRC_VOCAB>::new::<f32>(&Cpu, &src)?;
        let mut et = model.enc.tape()?;
        let memory = model.enc.forward_with(&ids, &mut et)?.to_vec()?;
        Ok(Scorer {
            model,
            src,
            memory,
            tape: model.dec.tape()?,
        })
    }
}

impl NextToken for Scorer<'_> {
    fn vocab(&self) -> usize {
        TGT_VOCAB
    }
    fn log_probs(&mut self, queries: &[Query<'_>], out: &mut [f64]) -> kiln::Result<()> {
        let (mut s, mut m, mut t) = (Vec::new(), Vec::new(), Vec::new());
        let per = SRC_LEN * WIDTH;
        for q in queries {
            s.extend_from_slice(&self.src[q.source * SRC_LEN..][..SRC_LEN]);
            m.extend_from_slice(&self.memory[q.source * per..][..per]);
            let start = t.len();
            t.push(BOS);
            t.extend_from_slice(q.prefix);
            t.resize(start + TGT_LEN, dates::PAD);
        }
        let src = Tokens::<S1<SRC_LEN>, SRC_VOCAB>::new::<f32>(&Cpu, &s)?;
        let mem = Tensor::<S2<SRC_LEN, WIDTH>>::from_slice(&Cpu, &m)?;
        let tgt = Tokens::<S1<TGT_LEN>, TGT_VOCAB>::new::<f32>(&Cpu, &t)?;
        let (logits, _) = self
            .model
            .dec
            .forward_with(&src, &mem, &tgt, &mut self.tape)?;
        let logits = logits.to_vec()?;
        for ((q, o), l) in queries
            .iter()
            .zip(out.chunks_exact_mut(TGT_VOCAB))
            .zip(logits.chunks_exact(TGT_LEN * TGT_VOCAB))
        {
            let row = &l[q.prefix.len() * TGT_VOCAB..][..TGT_VOCAB];
            let top = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let z = row
                .iter()
                .map(|&x| (x as f64 - top).exp())
                .sum::<f64>()
                .ln()
                + top;
            for (o, &x) in o.iter_mut().zip(row) {
                *o = x as f64 - z;
            }
        }
        Ok(())
    }
}

/// Greedy and beam-search translations of `texts` (ISO strings).
pub fn translate(
    model: &Model,
    texts: &[&str],
    beam: usize,
    length_penalty: f64,
) -> kiln::Result<(Vec<String>, Vec<String>)> {
    let (mut g, mut b) = (Vec::new(), Vec::new());
    for chunk in texts.chunks(250) {
        let mut scorer = Scorer::new(model, chunk)?;
        for h in greedy(&mut scorer, chunk.len(), EOS, TGT_LEN)? {
            g.push(dates::decode_target(&h.tokens));
        }
        let cfg = BeamSearch {
            beam,
            eos: EOS,
            max_len: TGT_LEN,
            length_penalty,
        };
        for hs in beam_search(&mut scorer, chunk.len(), &cfg)? {
            b.push(
                hs.first()
                    .map_or(String::new(), |h| dates::decode_target(&h.tokens)),
            );
        }
    }
    Ok((g, b))
}

/// The last decoder block's cross-attention weights for `text` translated
/// as `out`, averaged over the heads: `[TGT_LEN][SRC_LEN]`, row `i` the
/// query that predicts output character `i` (the last one `EOS`).
pub fn cross_attention(model: &Model, text: &str, out: &str) -> kiln::Result<Vec<Vec<f32>>> {
    let mut s = Vec::new();
    dates::encode_source(text, &mut s)?;
    let mut t = vec![BOS];
    t.extend(dates::encode_target(out));
    t.resize(TGT_LEN, dates::PAD);
    let src = Tokens::<S1<SRC_LEN>, SRC_VOCAB>::new::<f32>(&Cpu, &s)?;
    let tgt = Tokens::<S1<TGT_LEN>, TGT_VOCAB>::new::<f32>(&Cpu, &t)?;
    let mem = model.enc.forward(&src)?;
    let (_, q) = model.dec.forward(&src, &mem, &tgt)?;
    let mut cache = AttentionCache::new(&Cpu)?;
    let mut y = Tensor::<S2<TGT_LEN, WIDTH>>::zeros(&Cpu, 1)?;
    let cross = &model.dec.d2_cross;
    cross.cross_attend(&q, &mem, Some(KeyPadding::new(&src, 0)), &mut y, &mut cache)?;
    let w = cross.attention_weights(&cache)?;
    let heads = w.len() / (TGT_LEN * SRC_LEN);
    Ok((0..TGT_LEN)
        .map(|i| {
            (0..SRC_LEN)
                .map(|j| {
                    (0..heads)
                        .map(|h| w[(h * TGT_LEN + i) * SRC_LEN + j])
                        .sum::<f32>()
                        / heads as f32
                })
                .collect()
        })
        .collect())
}

fn save(
    path: &std::path::Path,
    model: &Model,
    opt: &Groups<Adam<f32, Cpu>>,
    step: u64,
    gen: &Rng,
) -> kiln::Result<()> {
    let mut c = Checkpoint::new();
    c.add_module("", model)?;
    c.add_optimizer(model, opt)?;
    c.set_meta("step", step);
    c.set_rng("rng.batches", gen);
    c.save(path)
}

/// Trains, then evaluates greedy decoding and beam search on the test set.
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    let args = &args.effective();
    for (flag, path) in [
        ("--save", &args.save),
        ("--plot", &args.plot),
        ("--attention-png", &args.attention_png),
    ] {
        if let Some(path) = path {
            kiln::train::check_output_path(flag, path)?;
        }
    }
    if args.batch_size == 0 || args.eval_every == 0 || args.beam == 0 {
        return Err(kiln::Error::invalid(
            "translate",
            "--batch-size, --eval-every and --beam must be at least 1",
        ));
    }
    let split = dates::split(&mut rng(args.data_seed), args.test_dates);
    let mut r = rng(args.seed);
    let mut model = Model {
        enc: Encoder::init(&Cpu, &mut r)?,
        dec: Decoder::init(&Cpu, &mut r)?,
    };
    println!(
        "encoder {} + decoder {} parameters; {} training dates, {} test dates, {} formats",
        Encoder::PARAMS,
        Decoder::PARAMS,
        split.train.len(),
        split.test.len(),
        dates::FORMATS.len()
    );
    let adamw = |wd| Adam::adamw(args.lr).betas(0.9, 0.98).weight_decay(wd);
    let mut opt = Groups::builder(&model)
        .group(Select::rank_at_least(2), adamw(args.weight_decay))
        .group(Select::rest(), adamw(0.0))
        .build()?;
    let schedule = WarmupCosine::new(
        args.lr,
        args.warmup,
        args.steps.max(args.warmup + 1),
        args.lr / 10.0,
    )?;
    let mut sched = LrScheduler::new(schedule, &mut opt);
    let mut gen = rng(args.seed ^ 0x6461_7465_7321);
    let mut step = 0u64;
    if let Some(path) = &args.resume {
        let c = Checkpoint::read(path)?;
        step = c.meta("step")?;
        gen = c.rng("rng.batches")?;
        c.load_training(&mut model, &mut opt, path)?;
        sched.set_epoch(&mut opt, step);
        println!("resumed {} at step {step}", path.display());
    }
    let mut grads = model.grads()?;
    let (mut et, mut dt) = (model.enc.tape()?, model.dec.tape()?);
    dt.input_grads = true;
    let b = args.batch_size;
    let mut src = Tokens::<S1<SRC_LEN>, SRC_VOCAB>::zeros::<f32>(&Cpu, b)?;
    let mut tin = Tokens::<S1<TGT_LEN>, TGT_VOCAB>::zeros::<f32>(&Cpu, b)?;
    let mut tout = Tokens::<S1<TGT_LEN>, TGT_VOCAB>::zeros::<f32>(&Cpu, b)?;
    let mut dl = Tensor::<S2<TGT_LEN, TGT_VOCAB>>::zeros(&Cpu, b)?;
    let dq = Tensor::<S2<TGT_LEN, WIDTH>>::zeros(&Cpu, b)?;
    let (mut s, mut ti, mut to) = (Vec::new(), Vec::new(), Vec::new());
    let mut pairs = Vec::with_capacity(b);
    let mut out = Outcome::default();
    let (mut since, mut since_n, mut since_secs) = (0.0f64, 0u64, 0.0f64);
    let budget = args.minutes * 60.0;
    while step < args.steps && out.train_secs < budget {
        let t0 = Instant::now();
        pairs.clear();
        for _ in 0..b {
            let t = split.train[gen.random_range(0..split.train.len())];
            pairs.push((
                dates::render(gen.random_range(0..dates::FORMATS.len()), &t),
                t,
            ));
        }
        fill(&pairs, &mut s, &mut ti, &mut to)?;
        src.set::<f32>(&s)?;
        tin.set::<f32>(&ti)?;
        tout.set::<f32>(&to)?;
        let mem = model.enc.forward_train(&src, &mut et)?;
        let (logits, _) = model.dec.forward_train(&src, mem, &tin, &mut dt)?;
        let loss = cross_entropy_tokens(logits, &tout, None, Some(&mut dl))
            .map_err(|e| e.at_step(step + 1, opt.lr()))?;
        if !loss.is_finite() {
            return Err(kiln::Error::invalid(
                "translate",
                format!("the loss is {loss} at step {}", step + 1),
            ));
        }
        model.dec.backward(&mut dt, &dl, &dq, &mut grads.dec)?;
        model
            .enc
            .backward(&mut et, &dt.grad_memory, &mut grads.enc)?;
        opt.step(&mut model, &grads)?;
        sched.step(&mut opt);
        step += 1;
        let secs = t0.elapsed().as_secs_f64();
        out.train_secs += secs;
        out.losses.push(loss);
        (since, since_n, since_secs) = (since + loss as f64, since_n + 1, since_secs + secs);
        if step.is_multiple_of(args.eval_every) || step == args.steps || out.train_secs >= budget {
            let tl = test_loss(&model, &split.test)?;
            println!(
                "step {step:>5}/{}  train loss {:.4}  test loss {tl:.4}  lr {:.2e}  {:.0} ms/step",
                args.steps,
                since / since_n as f64,
                sched.last_lr(),
                1e3 * since_secs / since_n as f64
            );
            out.test_losses.push((step, tl));
            (since, since_n, since_secs) = (0.0, 0, 0.0);
            if let Some(p) = &args.save {
                save(p, &model, &opt, step, &gen)?;
            }
            if let Some(prefix) = &args.plot {
                let train: Vec<(f64, f64)> = out
                    .losses
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| ((i + 1) as f64, l as f64))
                    .collect();
                let test = out
                    .test_losses
                    .iter()
                    .map(|&(s, l)| (s as f64, l))
                    .collect();
                let panel = Panel {
                    title: "translate: dates → ISO (x: training step)".into(),
                    y_label: "nats per target character".into(),
                    series: vec![
                        ("train".into(), train),
                        ("test (teacher forcing)".into(), test),
                    ],
                };
                plot_panels(&[panel], prefix, 800, 480)?;
            }
        }
    }
    if step < args.steps {
        println!(
            "stopped at step {step} of {}: the --minutes budget ({}) is spent",
            args.steps, args.minutes
        );
    }
    println!(
        "trained {} steps in {:.1} s ({:.0} ms/step)",
        out.losses.len(),
        out.train_secs,
        1e3 * out.train_secs / out.losses.len().max(1) as f64
    );
    let t0 = Instant::now();
    let texts: Vec<&str> = split.test.iter().map(|(s, _)| s.as_str()).collect();
    let (g, bm) = translate(&model, &texts, args.beam, args.length_penalty)?;
    let (mut ng, mut nb) = (0, 0);
    let mut per_format = vec![(0usize, 0usize); dates::FORMATS.len()];
    for (i, ((text, t), (g, bm))) in split.test.iter().zip(g.into_iter().zip(bm)).enumerate() {
        let truth = dates::iso(t);
        ng += usize::from(g == truth);
        nb += usize::from(bm == truth);
        let f = &mut per_format[i % dates::FORMATS.len()];
        f.0 += usize::from(bm == truth);
        f.1 += 1;
        out.decoded.push((text.clone(), g, bm, truth));
    }
    let n = split.test.len() as f64;
    out.greedy_acc = ng as f64 / n;
    out.beam_acc = nb as f64 / n;
    println!(
        "decoded {} test dates in {:.1} s",
        split.test.len(),
        t0.elapsed().as_secs_f64()
    );
    for (src, g, bm, truth) in out.decoded.iter().take(dates::FORMATS.len()) {
        println!(
            "  {src:<50} greedy {g:<10}  beam {bm:<10}  {}",
            if *bm == *truth { "✓" } else { "✗" }
        );
    }
    let wrong: Vec<_> = out.decoded.iter().filter(|d| d.2 != d.3).take(8).collect();
    if !wrong.is_empty() {
        println!("beam-search mistakes (source, beam, truth):");
        for (src, _, bm, truth) in wrong {
            println!("  {src:<50} {bm:<10}  {truth}");
        }
    }
    println!("beam-search accuracy per format:");
    for (name, (ok, all)) in dates::FORMATS.iter().zip(&per_format) {
        println!(
            "  {name:<34} {:6.2} %",
            100.0 * *ok as f64 / (*all).max(1) as f64
        );
    }
    println!(
        "exact match on {} unseen dates: greedy {:.2} %, beam search (k = {}, α = {}) {:.2} %",
        split.test.len(),
        100.0 * out.greedy_acc,
        args.beam,
        args.length_penalty,
        100.0 * out.beam_acc
    );
    if let Some(path) = &args.attention_png {
        let picks: Vec<usize> = [0usize, 4, 9, 13]
            .into_iter()
            .filter(|&i| i < out.decoded.len())
            .collect();
        let mut maps = Vec::new();
        for &i in &picks {
            let (src, _, bm, _) = &out.decoded[i];
            let w = cross_attention(&model, src, bm)?;
            let n = src.chars().count();
            let mut rows: Vec<String> = bm.chars().map(String::from).collect();
            rows.push("EOS".into());
            maps.push(Heatmap {
                title: format!("\"{src}\" → {bm}  (decoder block 2, mean of 4 heads)"),
                cols: src
                    .chars()
                    .map(|c| if c == ' ' { "_".into() } else { c.to_string() })
                    .collect(),
                values: w
                    .iter()
                    .take(rows.len())
                    .map(|r| r[..n].iter().map(|&x| x as f64).collect())
                    .collect(),
                rows,
            });
        }
        plot_heatmaps(&maps, path, 18)?;
        println!(
            "wrote the cross-attention weights of {} test examples to {}",
            maps.len(),
            path.display()
        );
    }
    Ok(out)
}

#[allow(dead_code)] // `tests/translate_smoke.rs` includes this file without `main`.
fn main() -> ExitCode {
    let args = Args::parse();
    if args.threads > 0 {
        if let Err(e) = kiln::set_threads(args.threads) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
