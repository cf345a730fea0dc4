//! The element type of a tensor fed to a network is still inferred from the
//! network when nothing else fixes it (the inputs of `forward` are generic
//! over their element type only to name both types in the error).
use kiln::prelude::*;

kiln::network! {
    pub struct Mlp {
        input: [4],
        fc: Linear(3),
    }
}

#[test]
fn a_tensor_made_for_the_network_needs_no_annotation() -> kiln::Result<()> {
    let net = Mlp::<f64>::init(&Cpu, &mut rng(0))?;
    let x = Tensor::zeros(&Cpu, 2)?;
    let y = net.forward(&x)?;
    // zeros in, bias out: the output equals the bias, in f64.
    let b: Vec<f64> = net
        .fc
        .bias
        .as_ref()
        .map(|t| t.to_vec())
        .transpose()?
        .unwrap_or_default();
    assert_eq!(&y.to_vec()?[..3], &b[..]);
    Ok(())
}
