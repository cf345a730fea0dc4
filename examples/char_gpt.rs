//! A character-level GPT on Shakespeare's works (issue 11, lessons 14–15 of
//! the course): nanoGPT's `model.py` at its "I only have a macbook"
//! settings, with a PyTorch twin that trains the same model from the same
//! initial weights on the same batches.
//!
//! ```text
//! scripts/fetch-shakespeare                          # once: data/shakespeare/
//! cargo run --release --example char_gpt             # 2,000 steps, then samples
//! cargo run --release --example char_gpt -- --smoke  # 60 steps and a short evaluation (CI runs this)
//! cargo run --release --example char_gpt -- --save gpt.safetensors --log gpt.jsonl --plot gpt
//! cargo run --release --example char_gpt -- --resume gpt.safetensors --save gpt.safetensors
//! bench/char-gpt-twin                                # kiln and PyTorch side by side (docs/char_gpt.md)
//! ```
//!
//! The model (nanoGPT's `GPT` with `n_layer = 4`, `n_head = 4`, `n_embd =
//! 128`, `block_size = 64`, `bias = False`, `dropout = 0`): token embedding
//! `wte` (84 × 128) plus learned positions `wpe` (64 × 128), four pre-norm
//! blocks (`LayerNorm` → causal 4-head self-attention → residual;
//! `LayerNorm` → `Linear(512)` → GELU → `Linear(128)` → residual), a final
//! `LayerNorm`, and the head `lm_head`, which *is* `wte` (weight tying, one
//! tensor). No linear or LayerNorm layer has a bias. Initialisation as
//! nanoGPT's `_init_weights`: every linear weight and both embeddings
//! N(0, 0.02), the residual projections (the attention's `out_proj`, the
//! MLP's `c_proj`) N(0, 0.02/√(2·n_layer)); LayerNorm weights 1. kiln's
//! attention keeps PyTorch's `nn.MultiheadAttention` layout
//! (`attn.in_proj_weight` = nanoGPT's `attn.c_attn.weight`,
//! `attn.out_proj.weight` = `attn.c_proj.weight`).
//!
//! Training: batches of 12 windows of 64 characters at offsets drawn
//! uniformly from the 36 training works (as nanoGPT's `get_batch`), every
//! position predicting the next character (mean cross-entropy, nats per
//! character); AdamW (β = (0.9, 0.99), weight decay 0.1 on the 2-D weights
//! only, none on LayerNorm weights: two parameter groups), the rate warmed up
//! linearly over 100 steps to 1e-3 and decayed by a cosine to 1e-4 at step
//! 2,000 (nanoGPT's `get_lr`), the gradient's global norm clipped to 1.0.
//! Validation reads the whole validation split (371,737 characters) as
//! consecutive windows of 64 and averages over every predicted position.
//!
//! Every `--eval-every` steps it prints the mean training loss since the last
//! report, the validation loss and the time per training step (and a
//! progress line every `--log-every` steps); at the end it samples text from
//! `--prompt` with `--temperature` and `--top-k`, through the key/value
//! cache (each new character runs one position through the network; see
//! [`sample`]), or by re-running the whole window with `--no-kv-cache`.
//!
//! * `--save PATH` writes a checkpoint after every report (weights, AdamW's
//!   state of both groups, the step, the batch generator, the history, the
//!   tokenizer); `--resume PATH` continues it (same flags). With `--steps 0`
//!   and `--resume` it only evaluates and samples.
//! * `--export DIR` writes what the PyTorch twin reads: the initial weights
//!   (`init.safetensors`), the encoded text (`train.u8`, `val.u8`), every
//!   batch's offsets (`offsets.u32`) and the settings (`config.json`).
//!   `scripts/pytorch/char_gpt.py DIR` trains the same model on the same
//!   batches and logs the same numbers.
//! * `--log PATH` appends one JSON line per report; `--plot PREFIX` draws the
//!   loss curves (and PyTorch's, with `--twin-log PATH`).

#[path = "common/char_lm.rs"]
mod char_lm;
#[path = "char_gpt/decoder.rs"]
mod decoder;
#[allow(unused_imports)] // used by tests/kv_cache.rs, which includes this file
pub use decoder::{sample, GptDecoder, REFILL};

use char_lm::{draw_offsets, Corpus, TopK, BATCH_STREAM};
use clap::Parser;
use kiln::checkpoint::Checkpoint;
use kiln::data::text::CharTokenizer;
use kiln::kernels::Kernels;
use kiln::optim::{ClipGradNorm, Groups, Optimizer, Select};
use kiln::prelude::*;
use kiln::schedule::{Schedule, WarmupCosine};
use kiln::train::{History, Record, RunLog};
use kiln::{ParamMut, Path as ParamPath, Role};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The context (nanoGPT's `block_size`).
pub const SEQ: usize = 64;
/// Distinct characters in the corpus.
pub const VOCAB: usize = 84;
/// Width (`n_embd`).
pub const N_EMBD: usize = 128;
/// Blocks (`n_layer`).
pub const N_LAYER: usize = 4;
/// Heads (`n_head`).
pub const N_HEAD: usize = 4;
/// nanoGPT's initialisation: N(0, `INIT_STD`) …
pub const INIT_STD: f64 = 0.02;

/// … and N(0, `INIT_STD`/√(2·n_layer)) for the residual projections.
pub fn proj_std() -> f64 {
    INIT_STD / (2.0 * N_LAYER as f64).sqrt()
}

kiln::network! {
    /// nanoGPT's `Block`: `x + attn(ln_1(x))`, then `h + mlp(ln_2(h))`.
    pub struct GptBlock {
        input x: [64, 128],
        let a = x |> ln_1: LayerNorm(bias = false)
                  |> attn: MultiHeadAttention(128, heads = 4, causal = true, bias = false);
        let h = a + x;
        let m = h |> ln_2: LayerNorm(bias = false)
                  |> c_fc: Linear(512, bias = false, init = normal(INIT_STD))
                  |> gelu
                  |> c_proj: Linear(128, bias = false, init = normal(proj_std()));
        output y = m + h;
    }
}

kiln::network! {
    /// nanoGPT's `GPT`: embeddings, four blocks, a final LayerNorm, the tied head.
    pub struct CharGpt {
        input ids: Tokens<[64], 84>,
        let e = ids |> wte: Embedding(84, 128, init = normal(INIT_STD))
                    |> wpe: PositionalEmbedding(64, init = normal(INIT_STD));
        let h = e |> h0: GptBlock -> [64, 128]
                  |> h1: GptBlock -> [64, 128]
                  |> h2: GptBlock -> [64, 128]
                  |> h3: GptBlock -> [64, 128]
                  |> ln_f: LayerNorm(bias = false);
        output logits = h |> lm_head: Linear(84, bias = false, tied = wte);
    }
}

/// The network at nanoGPT's initialisation: `init` draws everything but the
/// attention's projections as `model.py` does (the `init = …` options
/// above); the attention's `in_proj_weight` (nanoGPT's `c_attn`) is redrawn
/// from N(0, 0.02) and its `out_proj.weight` (`c_proj`) from
/// N(0, 0.02/√(2·n_layer)). `MultiHeadAttention(…, init = normal(0.02),
/// out_init = normal(…))` now draws them so in the layer itself; this
/// example keeps its redraw because its recorded runs (docs/char_gpt.md, the
/// PyTorch twin's weights) come from this stream of draws.
pub fn init_gpt<D: Kernels<f32>>(dev: &D, seed: u64) -> kiln::Result<CharGpt<f32, D>> {
    let mut r = rng(seed);
    let mut net = CharGpt::<f32, D>::init(dev, &mut r)?;
    let mut err = None;
    net.visit_mut(
        &ParamPath::ROOT,
        &mut |path, p: ParamMut<'_, f32, D>, _: Role| {
            let name = path.to_string();
            let std = if name.ends_with("attn.in_proj_weight") {
                INIT_STD
            } else if name.ends_with("attn.out_proj.weight") {
                proj_std()
            } else {
                return;
            };
            let v: Vec<f32> = kiln::Init::Normal(std)
                .sample(p.dims, p.numel, &mut r)
                .into_iter()
                .map(|x| x as f32)
                .collect();
            if let Err(e) = p.dev.upload(&v, p.value) {
                err.get_or_insert(e);
            }
        },
    );
    err.map_or(Ok(net), Err)
}

/// Train a character GPT on Shakespeare.
#[derive(Parser, Debug, Clone)]
#[command(
    about = "Train a character-level GPT (nanoGPT's CPU settings) on Shakespeare with kiln",
    args_override_self = true
)]
pub struct Args {
    /// Training steps (nanoGPT's `max_iters`).
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Windows per batch.
    #[arg(long, default_value_t = 12)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-4)]
    pub min_lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// Step at which the cosine reaches --min-lr (0: --steps).
    #[arg(long, default_value_t = 0)]
    pub lr_decay_iters: u64,
    /// AdamW's β₂.
    #[arg(long, default_value_t = 0.99)]
    pub beta2: f64,
    /// Weight decay of the 2-D weights (the others have none).
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    /// Clip the gradient's global norm to this value (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Steps between reports (validation over the whole split, a log line, a checkpoint).
    #[arg(long, default_value_t = 250)]
    pub eval_every: u64,
    /// Steps between progress lines (0: none).
    #[arg(long, default_value_t = 50)]
    pub log_every: u64,
    /// Evaluate on at most this many validation characters (0: the whole split).
    #[arg(long, default_value_t = 0)]
    pub eval_chars: usize,
    /// Seed of the initial weights, of the batches and of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Directory holding the 42 works (scripts/fetch-shakespeare).
    #[arg(long, default_value = kiln::data::text::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Save a checkpoint here after every report.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Continue the run saved in PATH.
    #[arg(long, value_name = "PATH")]
    pub resume: Option<PathBuf>,
    /// Append one JSON line per report to PATH.
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Draw the loss curves into PREFIX.png and PREFIX.svg.
    #[arg(long, value_name = "PREFIX")]
    pub plot: Option<PathBuf>,
    /// The PyTorch twin's JSON-lines log, drawn beside kiln's curves by --plot.
    #[arg(long, value_name = "PATH")]
    pub twin_log: Option<PathBuf>,
    /// Write the initial weights, the data and the batch offsets for the PyTorch twin into DIR.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// Characters to sample after training (0: none).
    #[arg(long, default_value_t = 500)]
    pub sample: usize,
    /// The text sampling starts from.
    #[arg(long, default_value = "KING.\n")]
    pub prompt: String,
    /// Softmax temperature of sampling.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the k most likely characters (0: all; nanoGPT's 200 keeps all 84).
    #[arg(long, default_value_t = 200)]
    pub top_k: usize,
    /// Sample by re-running the whole window for each character instead of the key/value cache.
    #[arg(long)]
    pub no_kv_cache: bool,
    /// A short run for CI: 60 steps (10 of warm-up), 20,000 validation characters, 40 sampled characters.
    #[arg(long)]
    pub smoke: bool,
}

impl Args {
    /// `--smoke`'s settings applied, and `--lr-decay-iters 0` resolved.
    fn effective(&self) -> Args {
        let mut a = self.clone();
        if a.smoke {
            a.steps = a.steps.min(60);
            a.warmup = a.warmup.min(10);
            a.eval_every = a.eval_every.min(30);
            a.log_every = a.log_every.min(20);
            a.eval_chars = 20_000;
            a.sample = a.sample.min(40);
        }
        if a.lr_decay_iters == 0 {
            a.lr_decay_iters = a.steps.max(a.warmup + 1);
        }
        a
    }

    /// The flags a resumed run must share with the saved one (the end of
    /// the decay, `--steps` by default, only when there are steps to train:
    /// `--steps 0` only evaluates and samples).
    fn fingerprint(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("run.batch_size", self.batch_size.to_string()),
            ("run.lr", format!("{:?}", self.lr)),
            ("run.min_lr", format!("{:?}", self.min_lr)),
            ("run.warmup", self.warmup.to_string()),
            ("run.beta2", format!("{:?}", self.beta2)),
            ("run.weight_decay", format!("{:?}", self.weight_decay)),
            ("run.clip", format!("{:?}", self.clip)),
            ("run.seed", self.seed.to_string()),
        ];
        if self.steps > 0 {
            v.push(("run.lr_decay_iters", self.lr_decay_iters.to_string()));
        }
        v
    }

    fn check(&self) -> kiln::Result<()> {
        if self.batch_size == 0 || self.eval_every == 0 {
            return Err(kiln::Error::invalid(
                "char_gpt",
                "--batch-size and --eval-every must be at least 1",
            ));
        }
        for (name, v) in [("--lr", self.lr), ("--min-lr", self.min_lr)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(kiln::Error::invalid(
                    name,
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        if !((0.0..1.0).contains(&self.beta2)
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0)
        {
            return Err(kiln::Error::invalid(
                "char_gpt",
                format!(
                    "need 0 ≤ --beta2 < 1 and --weight-decay ≥ 0, got {} and {}",
                    self.beta2, self.weight_decay
                ),
            ));
        }
        char_lm::check_temperature(self.temperature)
    }
}

/// One report: the step it was made at and its numbers.
#[derive(Clone, Debug)]
pub struct Report {
    /// Steps trained so far.
    pub step: u64,
    /// Mean training loss over the steps since the last report (nats/char).
    pub train_loss: f64,
    /// Validation loss (nats/char).
    pub val_loss: f64,
    /// Mean seconds per training step since the last report.
    pub step_secs: f64,
}

/// What a run returns.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Every step's training loss.
    pub losses: Vec<f32>,
    /// The reports, in order.
    pub reports: Vec<Report>,
    /// The sampled text (prompt included).
    pub sample: String,
    /// Seconds spent in training steps (evaluation excluded).
    pub train_secs: f64,
}

/// AdamW in two parameter groups, the gradient clipped.
pub type Opt<D> = ClipGradNorm<f32, D, Groups<Adam<f32, D>>>;

/// nanoGPT's `configure_optimizers`: weight decay on every parameter of rank
/// ≥ 2, none on the others (LayerNorm weights), the global norm clipped.
pub fn optimizer<D: Kernels<f32>>(net: &CharGpt<f32, D>, args: &Args) -> kiln::Result<Opt<D>> {
    let adamw = |wd| Adam::adamw(args.lr).betas(0.9, args.beta2).weight_decay(wd);
    let clip = if args.clip > 0.0 {
        args.clip
    } else {
        f64::INFINITY
    };
    Ok(Groups::builder(net)
        .group(Select::rank_at_least(2), adamw(args.weight_decay))
        .group(Select::rest(), adamw(0.0))
        .build()?
        .clip_grad_norm(clip))
}

/// Loads and encodes the corpus, checking the vocabulary the network was built for.
pub fn load_corpus(dir: &Path) -> kiln::Result<Corpus> {
    char_lm::load_corpus(dir, VOCAB, "char_gpt")
}

/// Windows evaluated together.
const EVAL_BATCH: usize = 64;

/// Mean cross-entropy (nats/char) over the consecutive windows of `ids`
/// (`ids[k·SEQ .. k·SEQ + SEQ]` predicting the next characters; the last
/// `< SEQ` characters are not read).
pub fn evaluate<D: Kernels<f32>>(net: &CharGpt<f32, D>, ids: &[u32]) -> kiln::Result<f64> {
    let dev = net.wte.weight.device();
    let n_windows = ids.len().saturating_sub(1) / SEQ;
    if n_windows == 0 {
        return Err(kiln::Error::invalid(
            "evaluate",
            format!("{} characters hold no window of {SEQ}", ids.len()),
        ));
    }
    let mut tape = net.tape()?;
    let mut x = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, EVAL_BATCH)?;
    let mut y = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, EVAL_BATCH)?;
    let (mut xs, mut ys, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sum, mut count) = (0.0f64, 0usize);
    for first in (0..n_windows).step_by(EVAL_BATCH) {
        char_lm::eval_offsets(
            first,
            (first + EVAL_BATCH).min(n_windows),
            SEQ,
            &mut offsets,
        );
        char_lm::windows(ids, SEQ, &offsets, &mut xs, &mut ys);
        x.set::<f32>(&xs)?;
        y.set::<f32>(&ys)?;
        let logits = net.forward_with(&x, &mut tape)?;
        let loss = cross_entropy_tokens(logits, &y, None, None)?;
        sum += loss as f64 * ys.len() as f64;
        count += ys.len();
    }
    Ok(sum / count as f64)
}

/// Samples `n` characters after `prompt` by running the window of the last
/// `SEQ` characters through the whole network for each new character
/// (nanoGPT's `generate`: the context cropped to `block_size`; causal
/// attention makes the logits at the window's last filled position depend
/// only on the characters before it). See [`sample`] for the cached way.
pub fn sample_uncached<D: Kernels<f32>>(
    net: &CharGpt<f32, D>,
    tok: &CharTokenizer,
    prompt: &str,
    n: usize,
    temperature: f64,
    top_k: usize,
    rng: &mut Rng,
) -> kiln::Result<String> {
    char_lm::check_temperature(temperature)?;
    let dev = net.wte.weight.device();
    let mut ctx = tok.encode(if prompt.is_empty() { "\n" } else { prompt })?;
    let mut tape = net.tape()?;
    let mut x = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, 1)?;
    let mut host = vec![0.0f32; SEQ * VOCAB];
    let mut window = [0u32; SEQ];
    let mut pick = TopK::new(VOCAB);
    for _ in 0..n {
        let start = ctx.len().saturating_sub(SEQ);
        let len = ctx.len() - start;
        window[..len].copy_from_slice(&ctx[start..]);
        window[len..].fill(0);
        x.set::<f32>(&window)?;
        net.forward_with(&x, &mut tape)?.copy_to_slice(&mut host)?;
        let row = &host[(len - 1) * VOCAB..len * VOCAB];
        ctx.push(pick.pick(row, temperature, top_k, rng) as u32);
    }
    tok.decode(&ctx)
}

/// Writes what `scripts/pytorch/char_gpt.py` reads (see the module doc).
fn export<D: Kernels<f32>>(
    dir: &Path,
    args: &Args,
    net: &CharGpt<f32, D>,
    corpus: &Corpus,
) -> kiln::Result<()> {
    char_lm::export_data(dir, corpus, args.seed, args.steps, SEQ, args.batch_size)?;
    let mut c = Checkpoint::new();
    c.add_module("", net)?;
    c.save(dir.join("init.safetensors"))?;
    let config = format!(
        concat!(
            "{{\"block_size\": {}, \"vocab\": {}, \"n_layer\": {}, \"n_head\": {}, \"n_embd\": {}, ",
            "\"batch_size\": {}, \"lr\": {:?}, \"min_lr\": {:?}, \"warmup\": {}, \"lr_decay_iters\": {}, ",
            "\"beta2\": {:?}, \"weight_decay\": {:?}, \"clip\": {:?}, \"steps\": {}, \"eval_every\": {}, ",
            "\"eval_chars\": {}, \"eval_batch\": {}}}\n"
        ),
        SEQ,
        VOCAB,
        N_LAYER,
        N_HEAD,
        N_EMBD,
        args.batch_size,
        args.lr,
        args.min_lr,
        args.warmup,
        args.lr_decay_iters,
        args.beta2,
        args.weight_decay,
        args.clip,
        args.steps,
        args.eval_every,
        args.eval_chars,
        EVAL_BATCH
    );
    char_lm::write_file(&dir.join("config.json"), config)
}

#[allow(clippy::too_many_arguments)] // everything a resumable run consists of
fn save<D: Kernels<f32>>(
    path: &Path,
    args: &Args,
    tok: &CharTokenizer,
    net: &CharGpt<f32, D>,
    opt: &Opt<D>,
    step: u64,
    gen: &Rng,
    history: &History,
) -> kiln::Result<()> {
    let mut c = Checkpoint::new();
    c.add_module("", net)?;
    c.add_optimizer(net, opt)?;
    char_lm::save_meta(&mut c, &args.fingerprint(), tok, step, gen, history);
    c.save(path)
}

fn resume<D: Kernels<f32>>(
    path: &Path,
    args: &Args,
    tok: &CharTokenizer,
    net: &mut CharGpt<f32, D>,
    opt: &mut Opt<D>,
) -> kiln::Result<(u64, Rng, History)> {
    let c = Checkpoint::read(path)?;
    let (step, gen, history) = char_lm::check_and_read_meta(&c, path, &args.fingerprint(), tok)?;
    c.load_training(net, opt, path)?;
    Ok((step, gen, history))
}

fn plot(prefix: &Path, history: &History, twin: Option<&History>) -> kiln::Result<()> {
    char_lm::plot(
        prefix,
        "char GPT on Shakespeare (x: training step)",
        history,
        twin,
    )
}

/// Trains (and evaluates, and samples) on `dev`.
pub fn run<D: Kernels<f32>>(args: &Args, dev: &D) -> kiln::Result<Outcome> {
    let args = &args.effective();
    for (flag, path) in [
        ("--save", &args.save),
        ("--log", &args.log),
        ("--plot", &args.plot),
        ("--twin-log", &args.twin_log),
        ("--export", &args.export),
    ] {
        if let Some(path) = path {
            kiln::train::check_output_path(flag, path)?;
        }
    }
    args.check()?;
    let corpus = load_corpus(&args.data_dir)?;
    let val: &[u32] = match args.eval_chars {
        0 => &corpus.val,
        n => &corpus.val[..n.min(corpus.val.len())],
    };
    let mut net = init_gpt(dev, args.seed)?;
    print!("{}", CharGpt::summary());
    println!(
        "data: {} training / {} validation characters, {} symbols; batch {}×{SEQ}, AdamW lr {} → {} (warm-up {}, cosine to step {}), β₂ {}, weight decay {}, clip {}, {} steps, seed {}",
        corpus.train.len(),
        val.len(),
        corpus.tok.vocab_size(),
        args.batch_size,
        args.lr,
        args.min_lr,
        args.warmup,
        args.lr_decay_iters,
        args.beta2,
        args.weight_decay,
        args.clip,
        args.steps,
        args.seed
    );
    if let Some(dir) = &args.export {
        export(dir, args, &net, &corpus)?;
        println!(
            "exported the initial weights, data and batches to {}",
            dir.display()
        );
    }
    let schedule = WarmupCosine::new(args.lr, args.warmup, args.lr_decay_iters, args.min_lr)?;
    let mut opt = optimizer(&net, args)?;
    let mut gen = rng(args.seed ^ BATCH_STREAM);
    let mut step = 0u64;
    let mut history = History::default();
    if let Some(path) = &args.resume {
        (step, gen, history) = resume(path, args, &corpus.tok, &mut net, &mut opt)?;
        println!("resumed {} at step {step}", path.display());
    }
    let mut log = match &args.log {
        Some(p) if args.resume.is_some() => Some(RunLog::append(p)?),
        Some(p) => Some(RunLog::create(p)?),
        None => None,
    };
    let twin = match &args.twin_log {
        Some(p) => Some(History::read(p)?),
        None => None,
    };

    let mut tape = net.tape()?;
    let mut grads = net.grads()?;
    let mut x = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, args.batch_size)?;
    let mut y = Tokens::<S1<SEQ>, VOCAB, D>::zeros::<f32>(dev, args.batch_size)?;
    let mut dlogits = Tensor::<S2<SEQ, VOCAB>, f32, D>::zeros(dev, args.batch_size)?;
    let (mut offsets, mut xs, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = Outcome::default();
    let (mut since_sum, mut since_n, mut since_secs) = (0.0f64, 0u64, 0.0f64);
    while step < args.steps {
        let t0 = Instant::now();
        // nanoGPT sets iteration t's rate before its step (t from 0).
        schedule.apply(&mut opt, step);
        draw_offsets(
            &mut gen,
            corpus.train.len(),
            SEQ,
            args.batch_size,
            &mut offsets,
        );
        char_lm::windows(&corpus.train, SEQ, &offsets, &mut xs, &mut ys);
        x.set::<f32>(&xs)?;
        y.set::<f32>(&ys)?;
        let logits = net.forward_train(&x, &mut tape)?;
        let loss = cross_entropy_tokens(logits, &y, None, Some(&mut dlogits))
            .map_err(|e| e.at_step(step + 1, opt.lr()))?;
        if !loss.is_finite() {
            return Err(kiln::Error::invalid(
                "char_gpt",
                format!("the training loss is {loss} at step {}", step + 1),
            ));
        }
        net.backward(&mut tape, &dlogits, &mut grads)?;
        opt.step(&mut net, &grads)?;
        let secs = t0.elapsed().as_secs_f64();
        step += 1;
        out.train_secs += secs;
        out.losses.push(loss);
        (since_sum, since_n, since_secs) =
            (since_sum + loss as f64, since_n + 1, since_secs + secs);
        if args.log_every > 0 && step.is_multiple_of(args.log_every) {
            println!(
                "iter {step:>5}: loss {loss:.4}, lr {:.2e}, {:.1} ms/step",
                opt.lr(),
                1e3 * since_secs / since_n as f64
            );
        }
        if step.is_multiple_of(args.eval_every) || step == args.steps {
            let t_eval = Instant::now();
            let val_loss = evaluate(&net, val)?;
            let r = Report {
                step,
                train_loss: since_sum / since_n as f64,
                val_loss,
                step_secs: since_secs / since_n as f64,
            };
            println!(
                "step {:>5}/{}  train loss {:.4}  val loss {:.4}  val perplexity {:.3}  {:.1} ms/step  (eval {:.1} s)",
                r.step,
                args.steps,
                r.train_loss,
                r.val_loss,
                r.val_loss.exp(),
                r.step_secs * 1e3,
                t_eval.elapsed().as_secs_f64()
            );
            let rec = Record::new(step)
                .with("train_loss", r.train_loss)
                .with("val_loss", r.val_loss)
                .with("val_perplexity", r.val_loss.exp())
                .with("step_ms", r.step_secs * 1e3);
            if let Some(log) = &mut log {
                log.write(&rec)?;
            }
            history.push(rec);
            out.reports.push(r);
            (since_sum, since_n, since_secs) = (0.0, 0, 0.0);
            if let Some(path) = &args.save {
                save(path, args, &corpus.tok, &net, &opt, step, &gen, &history)?;
            }
            if let Some(prefix) = &args.plot {
                plot(prefix, &history, twin.as_ref())?;
            }
        }
    }
    if out.reports.is_empty() {
        // Nothing trained in this run: report the saved run's last numbers,
        // or evaluate when there are none.
        let val_loss = match history.records.last().and_then(|r| r.get("val_loss")) {
            Some(v) => v,
            None => evaluate(&net, val)?,
        };
        println!(
            "val loss {val_loss:.4}  val perplexity {:.3}",
            val_loss.exp()
        );
        out.reports.push(Report {
            step,
            train_loss: f64::NAN,
            val_loss,
            step_secs: f64::NAN,
        });
        if let Some(prefix) = &args.plot {
            plot(prefix, &history, twin.as_ref())?;
        }
    }
    println!(
        "trained {} steps in {:.1} s ({:.1} ms/step)",
        out.losses.len(),
        out.train_secs,
        1e3 * out.train_secs / out.losses.len().max(1) as f64
    );
    if args.sample > 0 {
        let mut srng = rng(args.seed.wrapping_add(1));
        let t0 = Instant::now();
        let how = if args.no_kv_cache {
            "whole window per character"
        } else {
            "key/value cache"
        };
        let f = if args.no_kv_cache {
            sample_uncached
        } else {
            sample
        };
        out.sample = f(
            &net,
            &corpus.tok,
            &args.prompt,
            args.sample,
            args.temperature,
            args.top_k,
            &mut srng,
        )?;
        println!(
            "--- sample (temperature {}, top-k {}, {how}: {:.2} ms/character) ---\n{}\n---",
            args.temperature,
            args.top_k,
            1e3 * t0.elapsed().as_secs_f64() / args.sample as f64,
            out.sample
        );
    }
    if let Some(r) = out.reports.last() {
        println!(
            "validation loss (Shakespeare validation works, {} characters): {:.4} nats/char",
            val.len(),
            r.val_loss
        );
    }
    Ok(out)
}

#[allow(dead_code)] // `tests/char_gpt_smoke.rs` includes this file without `main`.
fn main() -> ExitCode {
    let args = Args::parse();
    if args.threads > 0 {
        if let Err(e) = kiln::set_threads(args.threads) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(&args, &Cpu) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
