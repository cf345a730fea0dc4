//! kiln's benchmark workloads, side by side with PyTorch.
//!
//! ```text
//! cargo run --release --example bench                                   # kiln only
//! cargo run --release --example bench -- --threads 2 --torch-python /path/to/python
//! python bench/pytorch_reference.py --threads 2 --json torch.json       # or: PyTorch first,
//! cargo run --release --example bench -- --threads 2 --torch torch.json #     then read its file
//! ```
//!
//! Fixed workloads in `f32` on fixed random data (made once, before the timed
//! loop; nothing is loaded or copied into the network inside it): a few
//! warm-up steps, then every step timed on its own until both a minimum number
//! of steps and a minimum time are reached; the table shows the median.
//!
//! * W1: MLP 784-256-128-10, ReLU, softmax cross-entropy, SGD, batch 128;
//! * W2: LeNet-5 on 1×28×28 (conv 6@5×5 pad 2, max-pool 2, conv 16@5×5,
//!   max-pool 2, 120, 84, 10), batch 64;
//! * W3: W1's MLP, inference at batch 1 (`forward_with` and a reused tape):
//!   latency per sample;
//! * W4: MLP 4096-4096-4096-10, batch 512, with the fraction of the best
//!   SGEMM rate measured in the same run (a 4096³ product through kiln's
//!   GEMM path, and PyTorch's `torch.mm` when it ran);
//! * W5: a small ResNet on 3×32×32, batch 32 (stem conv + BN + ReLU, three
//!   basic blocks of 16 channels, global average pooling, Linear 16→10);
//! * W6: `char_lstm`'s training step (the example's network: embedding 84→64,
//!   two 512-unit LSTMs, Linear 512→84; 32 sequences of 100 characters,
//!   per-position cross-entropy, Adam 2e-3; PyTorch: `nn.LSTM(num_layers=2)`);
//! * W7: `char_gpt`'s training step (the example's network and optimizer:
//!   nanoGPT's 4-layer, 4-head, 128-wide GPT, 12 sequences of 64
//!   characters, AdamW in two parameter groups, the gradient clipped to norm
//!   1; PyTorch: `scripts/pytorch/char_gpt.py`'s `GPT`, nanoGPT's
//!   `configure_optimizers` and `clip_grad_norm_`);
//! * W8: `char_gpt` generation at batch 1: 64 characters decoded one at a
//!   time from an empty context, each giving the next character's logits.
//!   kiln decodes through its key/value cache (`GptDecoder`, one position
//!   per character); PyTorch as nanoGPT's `generate` does (the whole context
//!   again for every character, the head on the last position only, under
//!   `torch.inference_mode()`). Its rate column is characters per second.
//!
//! Before the table the bench measures the machine's FMA peak at the vector
//! width of the GEMM kernel in use (`kiln::cpu::fma_peak_gflops`: 12
//! independent FMA chains per thread, no memory traffic) and states every
//! GFLOP/s figure as a share of it.
//!
//! GFLOP/s count 2 FLOPs per multiply–add of the products a training step
//! must compute: forward, weight gradient and input gradient of every
//! convolution and linear layer, except the input gradient of the first one
//! (nobody needs it); for W6 the LSTMs' input and recurrent products and the
//! head, for W7 the linear layers, the attention's two batched products per
//! head (causal masking not subtracted) and the tied head. Element-wise work
//! is not counted, nor W8's (its two sides do different work). The same
//! counts are in `bench/pytorch_reference.py`.
//!
//! Threads: `--threads N` calls `kiln::set_threads(N)` (rayon's global pool);
//! 0 keeps rayon's default (one per core, or `RAYON_NUM_THREADS`). The
//! PyTorch side is given the same N: `torch.set_num_threads(N)` with
//! `OMP_NUM_THREADS=N` and `MKL_NUM_THREADS=N` set before torch loads.
//! With `--torch-python`, the bench runs the PyTorch script once per workload,
//! right before timing kiln's, so both sides see the same machine load.

// W6 and W7 take the examples' networks whole (`char_lstm.rs`, `char_gpt.rs`),
// and each of them includes `common/char_lm.rs`.
#![allow(clippy::duplicate_mod)]

use clap::Parser;
use kiln::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

kiln::network! {
    /// W1 (and W3): a 784–256–128–10 perceptron.
    pub struct Mlp {
        input: [784],
        fc1: Linear(256),
        relu,
        fc2: Linear(128),
        relu,
        fc3: Linear(10),
    }
}

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::LeNet5 as LeNet;

kiln::network! {
    /// W4: a wide perceptron, 4096–4096–4096–10.
    pub struct Wide {
        input: [4096],
        fc1: Linear(4096),
        relu,
        fc2: Linear(4096),
        relu,
        fc3: Linear(10),
    }
}

kiln::network! {
    /// A basic residual block of 16 channels at 32×32.
    pub struct BasicBlock {
        input x: [16, 32, 32],
        let h = x |> c1: Conv2d(16, kernel = 3, padding = 1, bias = false) |> bn1: BatchNorm2d |> relu
                  |> c2: Conv2d(16, kernel = 3, padding = 1, bias = false) |> bn2: BatchNorm2d;
        output relu(h + x);
    }
}

kiln::network! {
    /// W5: a small ResNet for 3×32×32 images.
    pub struct ResNet {
        input: [3, 32, 32],
        stem: Conv2d(16, kernel = 3, padding = 1, bias = false),
        bn: BatchNorm2d,
        relu,
        block1: BasicBlock -> [16, 32, 32],
        block2: BasicBlock -> [16, 32, 32],
        block3: BasicBlock -> [16, 32, 32],
        gap: GlobalAvgPool,
        head: Linear(10),
    }
}

#[path = "char_lstm.rs"]
#[allow(dead_code)]
mod char_lstm;

#[path = "char_gpt.rs"]
#[allow(dead_code)]
mod char_gpt;

/// Run kiln's benchmark workloads (and PyTorch's, for comparison).
#[derive(Parser, Debug)]
#[command(about = "kiln's benchmark workloads W1–W8 and the SGEMM rate, with PyTorch side by side")]
struct Args {
    /// CPU threads for kiln and PyTorch (0: rayon's default, one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Read PyTorch's results from this JSON file (written by `bench/pytorch_reference.py --json`).
    #[arg(long)]
    torch: Option<PathBuf>,
    /// Run `bench/pytorch_reference.py` with this Python, one workload at a time, right before kiln's.
    #[arg(long)]
    torch_python: Option<PathBuf>,
    /// Comma-separated workloads (W1,…,W8,SGEMM); default all.
    #[arg(long, default_value = "")]
    only: String,
    /// A tenth of the timed time (smoke test; numbers are noisier).
    #[arg(long)]
    quick: bool,
    /// Matrix products through kiln's own GEMM (`kiln`, the default) or the `gemm` crate (`crate`, for comparison; needs `--features gemm-crate`).
    #[arg(long, default_value = "kiln")]
    gemm: String,
    /// Also write kiln's results (and the PyTorch ones it used) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

const ALL: [&str; 9] = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "SGEMM"];

/// (warm-up steps, minimum timed steps, minimum timed seconds, maximum steps);
/// the same numbers as `PLAN` in `bench/pytorch_reference.py`.
fn plan(w: &str) -> (usize, usize, f64, usize) {
    match w {
        "W1" => (20, 50, 1.0, 2000),
        "W2" => (10, 30, 1.0, 1000),
        "W3" => (200, 500, 0.5, 20000),
        "W4" => (2, 5, 3.0, 20),
        "W5" => (3, 10, 2.0, 200),
        "W6" => (2, 10, 3.0, 100),
        "W7" => (5, 30, 2.0, 500),
        "W8" => (3, 20, 1.0, 500),
        _ => (2, 5, 3.0, 20),
    }
}

fn batch_of(w: &str) -> usize {
    match w {
        "W1" => 128,
        "W2" => 64,
        "W3" => 1,
        "W4" => 512,
        "W5" => 32,
        "W6" => 32,
        "W7" => 12,
        "W8" => 64,
        _ => 0,
    }
}

/// Multiply–adds of a training step of an MLP (no input gradient for the first layer).
fn mlp_train_macs(sizes: &[usize]) -> usize {
    sizes
        .windows(2)
        .enumerate()
        .map(|(i, w)| w[0] * w[1] * if i == 0 { 2 } else { 3 })
        .sum()
}

/// FLOPs of one step (see the module doc for what is counted).
fn flops(w: &str) -> f64 {
    let f = match w {
        "W1" => 2 * 128 * mlp_train_macs(&[784, 256, 128, 10]),
        "W2" => {
            2 * 64
                * (2 * 6 * 28 * 28 * 25
                    + 3 * 16 * 10 * 10 * 6 * 25
                    + 3 * (400 * 120 + 120 * 84 + 84 * 10))
        }
        "W3" => 2 * (784 * 256 + 256 * 128 + 128 * 10),
        "W4" => 2 * 512 * mlp_train_macs(&[4096, 4096, 4096, 10]),
        "W5" => 2 * 32 * (2 * 16 * 32 * 32 * 3 * 9 + 3 * 6 * 16 * 32 * 32 * 16 * 9 + 3 * 16 * 10),
        // 3,200 rows through W_ih (64, then 512 wide) and W_hh of both
        // LSTMs (4·512 gates each) and the head; every product ×3.
        "W6" => 2 * 3 * 3200 * (2048 * (64 + 512 + 512 + 512) + 512 * 84),
        // 768 rows: per block qkv (128→384), out (128→128), MLP (128→512→128),
        // attention 2 × (64×64×32) per head and sample; the tied head; ×3.
        "W7" => 2 * 3 * (4 * (768 * 128 * 1536 + 2 * 48 * 64 * 64 * 32) + 768 * 128 * 84),
        "W8" => 0,
        _ => 2 * 4096 * 4096 * 4096,
    };
    f as f64
}

/// Times `step`: warm-up, then single steps until the plan is met. Seconds per step.
fn timed(
    w: &str,
    quick: bool,
    mut step: impl FnMut() -> kiln::Result<()>,
) -> kiln::Result<Vec<f64>> {
    let (warm, mut min_steps, mut min_s, max_steps) = plan(w);
    if quick {
        min_s /= 10.0;
        min_steps = (min_steps / 5).max(2);
    }
    for _ in 0..warm {
        step()?;
    }
    let mut times = Vec::with_capacity(max_steps);
    let start = Instant::now();
    while times.len() < max_steps
        && (times.len() < min_steps || start.elapsed().as_secs_f64() < min_s)
    {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(times)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn uniform(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn classes(rng: &mut Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..10u32)).collect()
}

/// A training step of `$net` on a fixed batch: forward_train, cross-entropy
/// into a reused gradient, backward, SGD.
macro_rules! train {
    ($w:expr, $quick:expr, $net:ident, $shape:ty, $batch:expr) => {{
        let dev = Cpu;
        let mut r = rng(1);
        let mut net = $net::<f32, Cpu>::init(&dev, &mut r)?;
        let (mut tape, mut grads) = (net.tape()?, net.grads()?);
        let mut opt = Sgd::new(1e-3);
        let x = Tensor::<$shape>::from_vec(
            &dev,
            $batch,
            uniform(&mut r, $batch * <$shape as Shape>::NUMEL),
        )?;
        let y = Labels::<10>::new::<f32>(&dev, &classes(&mut r, $batch))?;
        let mut dlogits = Tensor::<S1<10>>::zeros(&dev, $batch)?;
        timed($w, $quick, || {
            let logits = net.forward_train(&x, &mut tape)?;
            cross_entropy(logits, &y, Some(&mut dlogits))?;
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(&mut net, &grads)
        })?
    }};
}

/// A training step of a character model on fixed random windows:
/// forward_train, per-position cross-entropy, backward, the optimizer.
macro_rules! seq_step {
    ($w:expr, $quick:expr, $net:ident, $opt:ident, $r:ident, $seq:expr, $vocab:expr, $batch:expr) => {{
        let (mut tape, mut grads) = ($net.tape()?, $net.grads()?);
        let mut ids =
            |n: usize| -> Vec<u32> { (0..n).map(|_| $r.random_range(0..$vocab as u32)).collect() };
        let mut x = Tokens::<S1<{ $seq }>, { $vocab }, Cpu>::zeros::<f32>(&Cpu, $batch)?;
        x.set::<f32>(&ids($batch * $seq))?;
        let mut y = Tokens::<S1<{ $seq }>, { $vocab }, Cpu>::zeros::<f32>(&Cpu, $batch)?;
        y.set::<f32>(&ids($batch * $seq))?;
        let mut dlogits = Tensor::<S2<{ $seq }, { $vocab }>>::zeros(&Cpu, $batch)?;
        timed($w, $quick, || {
            let logits = $net.forward_train(&x, &mut tape)?;
            cross_entropy_tokens(logits, &y, None, Some(&mut dlogits))?;
            $net.backward(&mut tape, &dlogits, &mut grads)?;
            $opt.step(&mut $net, &grads)
        })?
    }};
}

fn run_kiln(w: &str, quick: bool) -> kiln::Result<Vec<f64>> {
    Ok(match w {
        "W1" => train!(w, quick, Mlp, S1<784>, 128),
        "W2" => train!(w, quick, LeNet, S3<1, 28, 28>, 64),
        "W4" => train!(w, quick, Wide, S1<4096>, 512),
        "W5" => train!(w, quick, ResNet, S3<3, 32, 32>, 32),
        "W6" => {
            use char_lstm::{CharLstm, SEQ, VOCAB};
            let mut r = rng(1);
            let mut net = CharLstm::<f32, Cpu>::init(&Cpu, &mut r)?;
            let mut opt = Adam::new(2e-3);
            seq_step!(w, quick, net, opt, r, SEQ, VOCAB, 32)
        }
        "W7" => {
            use char_gpt::{CharGpt, SEQ, VOCAB};
            use clap::Parser;
            let mut r = rng(1);
            let mut net = CharGpt::<f32, Cpu>::init(&Cpu, &mut r)?;
            let mut opt = char_gpt::optimizer(&net, &char_gpt::Args::parse_from(["char_gpt"]))?;
            seq_step!(w, quick, net, opt, r, SEQ, VOCAB, 12)
        }
        "W8" => {
            use char_gpt::{CharGpt, GptDecoder, SEQ, VOCAB};
            let mut r = rng(1);
            let net = CharGpt::<f32, Cpu>::init(&Cpu, &mut r)?;
            let mut dec = GptDecoder::new(&net, 1)?;
            let ids: Vec<u32> = (0..SEQ).map(|_| r.random_range(0..VOCAB as u32)).collect();
            let mut sink = 0.0f32;
            let t = timed(w, quick, || {
                dec.clear();
                for id in &ids {
                    sink += dec.step(&net, std::slice::from_ref(id))?.buf()[0];
                }
                Ok(())
            })?;
            std::hint::black_box(sink);
            t
        }
        "W3" => {
            let dev = Cpu;
            let mut r = rng(1);
            let net = Mlp::<f32, Cpu>::init(&dev, &mut r)?;
            let mut tape = net.tape()?;
            let x = Tensor::<S1<784>>::from_vec(&dev, 1, uniform(&mut r, 784))?;
            let mut sink = 0.0f32;
            let t = timed(w, quick, || {
                let y = net.forward_with(&x, &mut tape)?;
                sink += y.buf()[0];
                Ok(())
            })?;
            std::hint::black_box(sink);
            t
        }
        _ => {
            // 4096³ SGEMM through kiln's GEMM path (the `Backend::gemm` every layer calls).
            let n = 4096;
            let mut r = rng(1);
            let a = uniform(&mut r, n * n);
            let b = uniform(&mut r, n * n);
            let mut c = vec![0.0f32; n * n];
            let g = kiln::Gemm::dense(n, n, n, false, false);
            timed(w, quick, || Backend::<f32>::gemm(&Cpu, &g, &a, &b, &mut c))?
        }
    })
}

/// One PyTorch result (median seconds per step) by workload.
#[derive(Clone, Debug, Default)]
struct TorchRow {
    median_s: f64,
}

fn read_torch(
    path: &PathBuf,
    device: &str,
) -> Result<(HashMap<String, TorchRow>, serde_json::Value), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for r in v["results"].as_array().ok_or("no `results` array")? {
        if r["device"].as_str() == Some(device) {
            let w = r["workload"]
                .as_str()
                .ok_or("a result without `workload`")?;
            let m = r["median_s"]
                .as_f64()
                .ok_or("a result without `median_s`")?;
            out.insert(w.to_string(), TorchRow { median_s: m });
        }
    }
    Ok((out, v["meta"].clone()))
}

fn run_torch(
    python: &PathBuf,
    w: &str,
    threads: usize,
    quick: bool,
) -> Result<(HashMap<String, TorchRow>, serde_json::Value), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/pytorch_reference.py");
    let out =
        std::env::temp_dir().join(format!("kiln-bench-torch-{}-{w}.json", std::process::id()));
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args([
            "--device",
            "cpu",
            "--only",
            w,
            "--threads",
            &threads.to_string(),
            "--json",
        ])
        .arg(&out);
    if quick {
        cmd.arg("--quick");
    }
    let o = cmd
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !o.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let r = read_torch(&out, "cpu");
    let _ = std::fs::remove_file(&out);
    r
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

fn describe(w: &str) -> &'static str {
    match w {
        "W1" => "W1 MLP 784-256-128-10 train, b128",
        "W2" => "W2 LeNet-5 train, b64",
        "W3" => "W3 MLP inference, b1 (latency)",
        "W4" => "W4 MLP 4096x3 train, b512",
        "W5" => "W5 ResNet-3x16 train, b32",
        "W6" => "W6 char_lstm train, b32x100",
        "W7" => "W7 char_gpt train, b12x64",
        "W8" => "W8 char_gpt generate 64, b1",
        _ => "SGEMM 4096³",
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    if let Some(p) = &args.json {
        kiln::train::check_output_path("--json", p).map_err(|e| e.to_string())?;
    }
    if args.threads > 0 {
        kiln::set_threads(args.threads).map_err(|e| e.to_string())?;
    }
    match args.gemm.as_str() {
        "kiln" => {}
        #[cfg(feature = "gemm-crate")]
        "crate" => kiln::cpu::set_gemm_impl(kiln::cpu::GemmImpl::GemmCrate),
        #[cfg(not(feature = "gemm-crate"))]
        "crate" => {
            return Err("--gemm crate: the `gemm` crate is optional; rebuild with \
                 `--features gemm-crate` (cargo run --release --example bench \
                 --features gemm-crate -- --gemm crate)"
                .into())
        }
        o => return Err(format!("--gemm {o}: expected `kiln` or `crate`")),
    }
    let threads = rayon_threads();
    let names: Vec<String> = if args.only.trim().is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.only
            .split(',')
            .map(|s| s.trim().to_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    for n in &names {
        if !ALL.contains(&n.as_str()) {
            return Err(format!(
                "unknown workload {n}; choose from {}",
                ALL.join(", ")
            ));
        }
    }
    let (mut torch, mut torch_meta) = match &args.torch {
        Some(p) => read_torch(p, "cpu")?,
        None => (HashMap::new(), serde_json::Value::Null),
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "kiln bench: {threads} threads; GEMM: {}; element-wise loops: {:?}; load average {}",
        if args.gemm == "crate" {
            "the gemm crate".to_string()
        } else {
            format!("kiln's ({})", kiln::cpu::gemm_kernel_name::<f32>())
        },
        kiln::cpu::elementwise_isa(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let isa = kiln::cpu::gemm_kernel_isa::<f32>();
    let peak_before = kiln::cpu::fma_peak_gflops(isa, threads);
    let mut kiln_med: HashMap<String, f64> = HashMap::new();
    let mut steps: HashMap<String, usize> = HashMap::new();
    for w in &names {
        if let Some(py) = &args.torch_python {
            eprintln!("  {w}: PyTorch …");
            let (rows, meta) = run_torch(py, w, threads, args.quick)?;
            torch.extend(rows);
            torch_meta = meta;
        }
        eprintln!("  {w}: kiln …");
        let t = run_kiln(w, args.quick).map_err(|e| format!("{w}: {e}"))?;
        kiln_med.insert(w.clone(), median(&t));
        steps.insert(w.clone(), t.len());
    }

    // Measured before and after the workloads; the better of the two (a
    // neighbour's burst on a shared machine only ever lowers it).
    let peak = match (peak_before, kiln::cpu::fma_peak_gflops(isa, threads)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    match peak {
        Some(p) => println!(
            "\nFMA peak ({isa:?} vectors, {threads} threads, measured): {p:.1} GFLOP/s; \"peak\" below is GFLOP/s as a share of it"
        ),
        None => println!("\nFMA peak: not measured ({isa:?} kernel: no vector FMA to time)"),
    }
    let of_peak = |g: f64| match peak {
        Some(p) if g > 0.0 => format!("{:.0}%", 100.0 * g / p),
        _ => "-".into(),
    };
    println!(
        "{:<36} {:>12} {:>12} {:>9} {:>6} {:>12} {:>10} {:>6}",
        "workload",
        "kiln/step",
        "samples/s",
        "GFLOP/s",
        "peak",
        "torch/step",
        "kiln/torch",
        "steps"
    );
    for w in &names {
        let k = kiln_med[w];
        let b = batch_of(w);
        let sps = if b > 0 {
            format!("{:.0}", b as f64 / k)
        } else {
            "-".into()
        };
        let (tt, ratio) = match torch.get(w) {
            Some(t) => (fmt_time(t.median_s), format!("{:.2}×", k / t.median_s)),
            None => ("-".into(), "-".into()),
        };
        let g = flops(w) / k / 1e9;
        let gs = if g > 0.0 {
            format!("{g:.1}")
        } else {
            "-".into()
        };
        println!(
            "{:<36} {:>12} {:>12} {:>9} {:>6} {:>12} {:>10} {:>6}",
            describe(w),
            fmt_time(k),
            sps,
            gs,
            of_peak(g),
            tt,
            ratio,
            steps[w]
        );
    }
    if let Some(t) = torch.get("SGEMM") {
        let g = flops("SGEMM") / t.median_s / 1e9;
        println!(
            "{:<36} {:>12} {:>12} {:>9.1} {:>6}",
            "  torch.mm 4096³",
            fmt_time(t.median_s),
            "-",
            g,
            of_peak(g)
        );
    }
    if let Some(k4) = kiln_med.get("W4") {
        let mut best = (0.0, "");
        if let Some(s) = kiln_med.get("SGEMM") {
            best = (flops("SGEMM") / s / 1e9, "kiln's GEMM");
        }
        if let Some(t) = torch.get("SGEMM") {
            let r = flops("SGEMM") / t.median_s / 1e9;
            if r > best.0 {
                best = (r, "torch.mm");
            }
        }
        if best.0 > 0.0 {
            let rate = flops("W4") / k4 / 1e9;
            println!(
                "W4 runs at {rate:.1} GFLOP/s = {:.0}% of the best SGEMM rate in this run ({:.1} GFLOP/s, {})",
                100.0 * rate / best.0,
                best.0,
                best.1
            );
        }
    }
    println!(
        "median of single steps after warm-up; {threads} threads on both sides (kiln::set_threads / rayon; torch.set_num_threads + OMP_NUM_THREADS + MKL_NUM_THREADS); GFLOP/s count the products' multiply-adds ×2"
    );
    if let Some(p) = &args.json {
        let rows: Vec<serde_json::Value> = names
            .iter()
            .map(|w| {
                serde_json::json!({
                    "workload": w,
                    "kiln_median_s": kiln_med[w],
                    "kiln_gflops": flops(w) / kiln_med[w] / 1e9,
                    "kiln_share_of_fma_peak": peak.map(|p| flops(w) / kiln_med[w] / 1e9 / p),
                    "torch_median_s": torch.get(w).map(|t| t.median_s),
                    "steps": steps[w],
                })
            })
            .collect();
        let v = serde_json::json!({ "threads": threads, "load": load.trim(), "gemm_kernel": kiln::cpu::gemm_kernel_name::<f32>(), "elementwise_isa": format!("{:?}", kiln::cpu::elementwise_isa()), "fma_peak_gflops": peak, "results": rows, "torch_meta": torch_meta });
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn rayon_threads() -> usize {
    // kiln's kernels run on rayon's global pool: what `kiln::set_threads` set,
    // or RAYON_NUM_THREADS, or one thread per core.
    kiln::cpu::threads()
}
