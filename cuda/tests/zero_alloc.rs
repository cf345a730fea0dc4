//! After the first step, a training step on the CUDA device performs no heap
//! allocation on the Rust side: buffers keep their capacity, the loss scratch
//! is allocated once, launch plans and kernel arguments live on the stack, and
//! launches bypass cudarc's builder (which collects arguments in a Vec). A
//! counting global allocator proves it. The device is the host emulation by
//! default (its kernels run in C++, outside Rust's allocator), GPU 0 with
//! `KILN_TEST_GPU=1`.

mod common;

use kiln::prelude::*;
use kiln_cuda::Cuda;
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
    pub struct Small {
        input: [20],
        fc1: Linear(32),
        relu,
        fc2: Linear(5),
    }
}

#[test]
fn cuda_training_step_allocates_nothing_after_the_first() {
    let dev = if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    };
    let mut net = Small::<f32, Cuda>::init(&dev, &mut rng(0)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-3);
    let mut dlogits = Tensor::empty(&dev).unwrap();
    let host: Vec<f32> = (0..16 * 20).map(|i| (i % 13) as f32 / 13.0).collect();
    let labels: Vec<u32> = (0..16).map(|i| i % 5).collect();
    let mut x = Tensor::<S1<20>, f32, Cuda>::from_slice(&dev, &host).unwrap();
    let mut y = Labels::<5, Cuda>::new::<f32>(&dev, &labels).unwrap();
    let mut step = |x: &Tensor<S1<20>, f32, Cuda>, y: &Labels<5, Cuda>| {
        let logits = net.forward_train(x, &mut tape).unwrap();
        let loss = cross_entropy(logits, y, Some(&mut dlogits)).unwrap();
        net.backward(&mut tape, &dlogits, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
        loss
    };
    step(&x, &y);
    step(&x, &y);
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..3 {
        x.copy_from_slice(&host).unwrap();
        y.set::<f32>(&labels).unwrap();
        step(&x, &y);
    }
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(
        n,
        0,
        "{n} heap allocations in 3 training steps on {}",
        dev.describe()
    );
}
