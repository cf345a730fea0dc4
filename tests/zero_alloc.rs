//! After the first step, a training step performs no heap allocation: the
//! tape, the gradients, the optimizer state, the loss gradient, the GEMM
//! packing buffers (one per thread, reserved once) and the CPU thread pool
//! (which hands work to its helpers without a queue) are all created once and
//! reused. A counting global allocator proves it, counting every thread of
//! the process — the pool's helpers included — for the benchmark workloads
//! W1 (an MLP), W2 (LeNet-5) and W3, with SGD+momentum and with Adam (W3 also
//! with AdamW in two parameter groups under gradient clipping), an LSTM,
//! causal multi-head attention (W7), and a
//! token model written by hand (Embedding, `gemm_batched`, per-position
//! cross-entropy), the runner's `Trainer::fit` with its loader, and
//! `backward_from` (gradients at named nodes, no parameter gradients) on W2.
//!
//! Only steps are counted, whatever order the workloads come in; three
//! other sources of allocation are kept out of the counts:
//!
//! * The test harness: libtest's main thread, after starting a test's
//!   thread, records it (a table of running tests, a timeout queue) and then
//!   blocks on a channel (a context and a waker entry): 4 allocations, which
//!   on a busy machine it made inside the first count. This file has no
//!   harness (`harness = false` in Cargo.toml): `main` runs the workloads
//!   and panics on an allocation, which fails `cargo test`.
//! * Kiln's thread pool: a helper allocates while it starts (std copies its
//!   name; it reserves its packing buffer). The pool's first call returns
//!   only once every helper has started, so that happens in a warm-up step.
//! * Rayon's global pool, which asking rayon for its thread count (the size
//!   of kiln's pool) creates without waiting for its workers: a worker
//!   allocates its job queue and registers with crossbeam-epoch (plus, once
//!   per process, the epoch collector: 2 more). [`start_every_thread`] has
//!   every worker run a job before the first count.
//!
//! Before these, the first workload counted saw 2 to 12 of these start-up
//! allocations in about one run in two on two busy cores (the token model,
//! counted first: 7 runs of 12 failed), and none of them came from a step.

use kiln::optim::{Groups, Select};
use kiln::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, a
// correct allocator, so the returned blocks meet `GlobalAlloc`'s contract as
// `System`'s do; the only other work is an atomic increment, which neither
// allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    /// # Safety
    /// `GlobalAlloc::alloc`'s: `l` has a non-zero size.
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller meets `GlobalAlloc::alloc`'s obligations (a
        // non-zero size), which are `System.alloc`'s.
        unsafe { System.alloc(l) }
    }
    /// # Safety
    /// `GlobalAlloc::alloc_zeroed`'s: `l` has a non-zero size.
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`: the caller's obligations pass through.
        unsafe { System.alloc_zeroed(l) }
    }
    /// # Safety
    /// `GlobalAlloc::dealloc`'s: `p` was allocated by this allocator with layout `l`.
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was returned by this allocator with layout `l` (the
        // caller's obligation), i.e. by `System`, since every block comes from it.
        unsafe { System.dealloc(p, l) }
    }
    /// # Safety
    /// `GlobalAlloc::realloc`'s: `p` was allocated by this allocator with layout
    /// `l`; `n` is non-zero and, rounded up to `l.align()`, fits in `isize`.
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `p` came from `System` with layout `l` (as for `dealloc`),
        // and the caller guarantees `n` is a valid non-zero size for `l`'s alignment.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

kiln::network! {
    /// Workload W1 of the benchmarks.
    pub struct W1 {
        input: [784],
        fc1: Linear(256),
        relu,
        fc2: Linear(128),
        relu,
        fc3: Linear(10),
    }
}

kiln::network! {
    /// Workload W2 of the benchmarks: LeNet-5.
    pub struct W2 {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5),
        relu,
        pool2: MaxPool2d(2),
        flatten,
        fc1: Linear(120),
        relu,
        fc2: Linear(84),
        relu,
        fc3: Linear(10),
    }
}

kiln::network! {
    /// LayerNorm, GELU and PReLU (their caches and kernels).
    pub struct W3 {
        input: [784],
        fc1: Linear(128),
        ln1: LayerNorm,
        gelu,
        fc2: Linear(64),
        ln2: LayerNorm(64, bias = false),
        act: PReLU(64),
        fc3: Linear(10),
    }
}

kiln::network! {
    /// An LSTM over 8 steps (its gates, cell states, BPTT buffers and carries).
    pub struct W6 {
        input: [8, 98],
        rnn: LSTM(32),
        flatten,
        fc: Linear(10),
    }
}

kiln::network! {
    /// Causal multi-head self-attention over 8 positions (projections, the
    /// per-head batched products, the masked softmax and their backward).
    pub struct W7 {
        input: [8, 32],
        attn: MultiHeadAttention(32, heads = 4, causal = true),
        flatten,
        fc: Linear(10),
    }
}

kiln::network! {
    /// A 2-layer bidirectional LSTM with dropout between the layers (the
    /// stack's per-cell buffers, reversed inputs and dropout seeds).
    pub struct W8 {
        input: [8, 24],
        rnn: LSTM(16, num_layers = 2, bidirectional = true, dropout = 0.2),
        flatten,
        fc: Linear(10),
    }
}

/// Steps counted after the warm-up.
const STEPS: usize = 30;

/// Trains `$net` on a fixed batch; returns the allocations of `STEPS` steps
/// after two warm-up steps (which allocate the tape, gradients, state).
macro_rules! count {
    // The optimizer built from the network (parameter groups).
    ($net:ident, $shape:ty, $batch:expr, |$n:ident| $opt:expr) => {{
        let dev = Cpu;
        let mut net = $net::<f32, Cpu>::init(&dev, &mut rng(0)).unwrap();
        let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
        let mut opt = {
            let $n = &net;
            $opt
        };
        let mut dlogits = Tensor::empty(&dev).unwrap();
        let n = <$shape as Shape>::NUMEL;
        let host: Vec<f32> = (0..$batch * n)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        let labels: Vec<u32> = (0..$batch as u32).map(|i| i % 10).collect();
        let mut x = Tensor::<$shape>::from_slice(&dev, &host).unwrap();
        let mut y = Labels::<10>::new::<f32>(&dev, &labels).unwrap();
        let mut step = |x: &Tensor<$shape>, y: &Labels<10>| {
            let logits = net.forward_train(x, &mut tape).unwrap();
            let loss = cross_entropy(logits, y, Some(&mut dlogits)).unwrap();
            net.backward(&mut tape, &dlogits, &mut grads).unwrap();
            opt.step(&mut net, &grads).unwrap();
            loss
        };
        step(&x, &y);
        step(&x, &y);
        let before = ALLOCS.load(Ordering::SeqCst);
        let mut last = 0.0;
        for _ in 0..STEPS {
            // What a loop over a data set does: new data into the same buffers.
            x.copy_from_slice(&host).unwrap();
            y.set::<f32>(&labels).unwrap();
            last = step(&x, &y);
        }
        let n = ALLOCS.load(Ordering::SeqCst) - before;
        assert!(last.is_finite());
        n
    }};
    ($net:ident, $shape:ty, $batch:expr, $opt:expr) => {
        count!($net, $shape, $batch, |_net| $opt)
    };
}

/// `Trainer::fit` (W1, Adam, `Classify`, a shuffled loader in the training
/// thread, a cosine schedule): the allocations between the end of step 4
/// and of step 4 + `STEPS`, read by a step hook into a vector reserved up
/// front. The loader's batches, the objective's labels and the runner's
/// bookkeeping all reuse their buffers.
fn count_fit() -> usize {
    use kiln::data::{DataLoader, Dataset};
    use kiln::train::{Classify, Control, StepInfo, Trainer};
    let n = 128 * (STEPS + 8);
    let x: Vec<f32> = (0..n * 784)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let y: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let train = DataLoader::new(Dataset { x, y, dim: 784 }, 128)
        .shuffle(1)
        .prefetch(0);
    let mut net = W1::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    let mut marks: Vec<usize> = Vec::with_capacity(STEPS + 16);
    let report = Trainer::new()
        .epochs(1)
        .quiet(true)
        .schedule(kiln::schedule::CosineAnnealingLr::new(1e-3, 100, 0.0).unwrap())
        .on_step(|_: &StepInfo| {
            marks.push(ALLOCS.load(Ordering::SeqCst));
            Ok(Control::Continue)
        })
        .fit(&mut net, &mut Adam::new(1e-3), &train, Classify::new())
        .unwrap();
    assert!(report.last("train_loss").unwrap().is_finite());
    marks[4 + STEPS - 1] - marks[3]
}

/// A token model's step without the macro: `Embedding(65, 65)` as a logits
/// table over `[32]` ids, a strided-batched product per sample (the logits
/// times a broadcast `[65, 65]` matrix, as attention's per-head products),
/// per-position cross-entropy with `ignore_index`, Adam; new ids into the
/// same `Tokens` every step. Returns the allocations of `STEPS` steps after
/// two warm-up steps.
fn count_tokens() -> usize {
    use kiln::layers::{Embedding, EmbeddingConfig};
    use kiln::GemmBatched;
    const T: usize = 32;
    const V: usize = 65;
    let (dev, batch) = (Cpu, 16);
    let mut table =
        Embedding::<f32, Cpu, V, V>::build(&dev, &mut rng(0), EmbeddingConfig::default()).unwrap();
    let mut grads = table.grads().unwrap();
    let mut opt = Adam::new(1e-2);
    let ids: Vec<u32> = (0..batch * T).map(|i| ((i * 31) % V) as u32).collect();
    let next: Vec<u32> = (0..batch * T).map(|i| ((i * 31 + 7) % V) as u32).collect();
    let mut x = Tokens::<S1<T>, V>::new::<f32>(&dev, &ids).unwrap();
    let mut t = Tokens::<S1<T>, V>::new::<f32>(&dev, &next).unwrap();
    let mixer = Tensor::<S2<V, V>>::from_slice(
        &dev,
        &(0..V * V)
            .map(|i| if i % (V + 1) == 0 { 1.0 } else { 0.0 })
            .collect::<Vec<f32>>(),
    )
    .unwrap();
    let mut logits = Tensor::<S2<T, V>>::empty(&dev).unwrap();
    let mut mixed = Tensor::<S2<T, V>>::zeros(&dev, batch).unwrap();
    let mut dlogits = Tensor::<S2<T, V>>::empty(&dev).unwrap();
    let mut ctx = kiln::TrainCtx::new(0);
    let mut step = |x: &Tokens<S1<T>, V>, t: &Tokens<S1<T>, V>| {
        table
            .forward_train(x, &mut logits, &mut (), &mut ctx)
            .unwrap();
        let g = GemmBatched {
            gemm: kiln::Gemm::dense(T, V, V, false, false),
            batch,
            stride_a: T * V,
            stride_b: 0,
            stride_c: T * V,
        };
        mixed.set_batch(batch).unwrap();
        dev.gemm_batched(&g, logits.buf(), mixer.buf(), mixed.buf_mut())
            .unwrap();
        let loss = cross_entropy_tokens(&mixed, t, Some(0), Some(&mut dlogits)).unwrap();
        table
            .backward(x, &logits, &mut (), &dlogits, &mut grads, Acc::Set)
            .unwrap();
        opt.step(&mut table, &grads).unwrap();
        loss
    };
    step(&x, &t);
    step(&x, &t);
    let before = ALLOCS.load(Ordering::SeqCst);
    let mut last = 0.0;
    for _ in 0..STEPS {
        x.set::<f32>(&ids).unwrap();
        t.set::<f32>(&next).unwrap();
        last = step(&x, &t);
    }
    let n = ALLOCS.load(Ordering::SeqCst) - before;
    assert!(last.is_finite());
    n
}

/// Starts rayon's global pool and returns once every worker has run a job:
/// by then each has made its start-up allocations (its job queue, its
/// crossbeam-epoch registration, which happens on its first look for work),
/// and an idle worker allocates nothing more. (Kiln's own pool waits for its
/// helpers when it is created, in the first warm-up step.)
fn start_every_thread() {
    rayon::broadcast(|_| ());
}

/// Training steps allocate nothing after the first two (see the module doc;
/// a panic fails the test).
/// `backward_from` on LeNet-5 (W2), batch 64, after a forward pass: the
/// class score down to the image in the plain and the guided mode, and down
/// to `conv2` (no parameter gradients exist). Returns the allocations of
/// `STEPS` such rounds after two warm-up rounds.
fn count_backward_from() -> usize {
    let dev = Cpu;
    let mut net = W2::<f32, Cpu>::init(&dev, &mut rng(0)).unwrap();
    let mut tape = net.tape().unwrap();
    let host: Vec<f32> = (0..64 * 784)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let x = Tensor::<S3<1, 28, 28>>::from_slice(&dev, &host).unwrap();
    let seed: Vec<f32> = (0..640)
        .map(|i| if i % 10 == 3 { 1.0 } else { 0.0 })
        .collect();
    let mut round = || {
        net.forward_train(&x, &mut tape).unwrap();
        for (to, mode) in [
            ("x", kiln::GradMode::Plain),
            ("x", kiln::GradMode::Guided),
            ("conv2", kiln::GradMode::Plain),
        ] {
            net.backward_from(&mut tape, "fc3", &seed, to, mode)
                .unwrap();
        }
    };
    round();
    round();
    let before = ALLOCS.load(Ordering::SeqCst);
    for _ in 0..STEPS {
        round();
    }
    ALLOCS.load(Ordering::SeqCst) - before
}

fn main() {
    start_every_thread();
    let mut report = Vec::new();
    // First: the workload that, counted first, saw the threads start (see the
    // module doc).
    report.push((
        "Embedding(65, 65) + gemm_batched + cross_entropy_tokens, 16 × 32 tokens, Adam",
        count_tokens(),
    ));
    report.push((
        "W1 MLP, batch 128, Adam",
        count!(W1, S1<784>, 128, Adam::new(1e-3)),
    ));
    report.push((
        "Trainer::fit: W1, batch 128, Adam, cosine, Classify, shuffled loader",
        count_fit(),
    ));
    report.push((
        "W1 MLP, batch 128, SGD+momentum",
        count!(W1, S1<784>, 128, Sgd::new(0.01).momentum(0.9)),
    ));
    report.push((
        "W1 MLP, batch 1, SGD",
        count!(W1, S1<784>, 1, Sgd::new(0.01)),
    ));
    report.push((
        "W2 LeNet-5, batch 64, SGD+Nesterov",
        count!(W2, S3<1, 28, 28>, 64, Sgd::new(0.01).nesterov(0.9)),
    ));
    report.push((
        "W2 LeNet-5, batch 64, Adam",
        count!(W2, S3<1, 28, 28>, 64, Adam::new(1e-3)),
    ));
    report.push((
        "W2 LeNet-5, batch 256, SGD",
        count!(W2, S3<1, 28, 28>, 256, Sgd::new(0.01)),
    ));
    report.push((
        "W3 LayerNorm/GELU/PReLU MLP, batch 64, Adam",
        count!(W3, S1<784>, 64, Adam::new(1e-3)),
    ));
    report.push((
        "W3, AdamW in two parameter groups (decay on rank ≥ 2), clipped at norm 1",
        count!(W3, S1<784>, 64, |net| {
            let adamw = |wd| Adam::adamw(1e-3).betas(0.9, 0.99).weight_decay(wd);
            Groups::builder(net)
                .group(Select::rank_at_least(2), adamw(0.1))
                .group(Select::rest(), adamw(0.0))
                .build()
                .unwrap()
                .clip_grad_norm(1.0)
        }),
    ));
    report.push((
        "LSTM(32) over [8, 98], batch 16, Adam",
        count!(W6, S2<8, 98>, 16, Adam::new(1e-3)),
    ));
    report.push((
        "MultiHeadAttention(32, heads = 4, causal) over [8, 32], batch 16, Adam",
        count!(W7, S2<8, 32>, 16, Adam::new(1e-3)),
    ));
    report.push((
        "2-layer bidirectional LSTM(16), dropout 0.2, over [8, 24], batch 16, Adam",
        count!(W8, S2<8, 24>, 16, Adam::new(1e-3)),
    ));
    report.push((
        "W2 LeNet-5, batch 64: backward_from fc3 → x (plain, guided) and → conv2",
        count_backward_from(),
    ));
    let bad: Vec<String> = report
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(w, n)| format!("{w}: {n}"))
        .collect();
    assert!(
        bad.is_empty(),
        "heap allocations in {STEPS} training steps after the first two: {}",
        bad.join("; ")
    );
    for (w, n) in &report {
        println!("zero_alloc: {w}: {n} allocations in {STEPS} steps");
    }
    println!("zero_alloc: ok, {} workloads", report.len());
}
