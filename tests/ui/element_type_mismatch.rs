// An `f32` tensor fed to a network built for `f64`. rustc's label names the
// network's type (`f64`) and elides the tensor's `f32` (Tensor's default
// element type); the note under it names both. A bound with its own message
// (E0277) would name both in the headline, but it costs the inference of a
// tensor's element type from the network (`tests/elem_inference.rs`): see
// docs/architecture.md, "Element types".
use kiln::{Cpu, Tensor, S1};

kiln::network! {
    pub struct Mlp {
        input: [4],
        fc1: Linear(8),
        relu,
        fc2: Linear(2),
    }
}

fn main() -> kiln::Result<()> {
    let net = Mlp::<f64>::init(&Cpu, &mut kiln::rng(0))?;
    let x = Tensor::<S1<4>, f32>::zeros(&Cpu, 1)?;
    let _ = net.forward(&x)?;
    Ok(())
}
