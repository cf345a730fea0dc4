//! The PixelCNN of `examples/mnist_pixelcnn.rs` (its own network, included
//! as a module, at 16 channels) is autoregressive in raster order: changing
//! input pixel `j` leaves the logits at every position `≤ j` bit for bit
//! the same, and changes some logit after `j` (so the test can fail). Checked
//! at random initialisation and after a few Adam steps on random binary
//! images, for pixels at the corners, on the edges and inside.

use crate::mnist_pixelcnn as example;

use example::PixelModel;
use kiln::prelude::*;

const PIXELS: [usize; 9] = [0, 1, 27, 28, 29, 300, 405, 782, 783];

fn images(n: usize, seed: u64) -> Vec<f32> {
    let mut g = rng(seed);
    (0..n * 784)
        .map(|_| if g.random::<f32>() < 0.3 { 1.0 } else { 0.0 })
        .collect()
}

/// For each `j` of [`PIXELS`] and each of two images, flips pixel `j` and
/// compares the 784 logits; returns the number of positions after `j` that
/// changed, summed.
fn check<M: PixelModel>(m: &mut M, what: &str) -> usize {
    let x = images(2, 11);
    let base = m.logits(&x, 2).unwrap();
    let mut later_changed = 0;
    for &j in &PIXELS {
        for s in 0..2 {
            let mut xp = x.clone();
            xp[s * 784 + j] = 1.0 - xp[s * 784 + j];
            let y = m.logits(&xp, 2).unwrap();
            for p in 0..784 {
                let (a, b) = (base[s * 784 + p], y[s * 784 + p]);
                if p <= j {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{what}: flipping pixel {j} of image {s} changed the logit at {p}: {a} → {b}"
                    );
                } else if a != b {
                    later_changed += 1;
                }
            }
            // The other image of the batch is untouched.
            let o = 1 - s;
            assert_eq!(&base[o * 784..(o + 1) * 784], &y[o * 784..(o + 1) * 784]);
        }
        // The pixel to the right sees pixel j (its left neighbour); at the
        // end of a row, the pixel below does (its upper neighbour).
        let t = if j % 28 < 27 { j + 1 } else { j + 28 };
        if t < 784 {
            let reached = (0..2).any(|s| {
                let mut xp = x.clone();
                xp[s * 784 + j] = 1.0 - xp[s * 784 + j];
                let y = m.logits(&xp, 2).unwrap();
                y[s * 784 + t] != base[s * 784 + t]
            });
            assert!(reached, "{what}: pixel {j} does not reach pixel {t}");
        }
    }
    later_changed
}

#[test]
fn pixelcnn_output_depends_only_on_earlier_pixels() {
    let mut m = example::c16::Model::new(&mut rng(1), 3e-3).unwrap();
    let fresh = check(&mut m, "at initialisation");
    assert!(fresh > 100, "only {fresh} later logits changed");
    // A few training steps move every weight, the masked-out ones included
    // in the stored tensor only if the mask leaked.
    for step in 0..3 {
        let loss = m.train_step(&images(8, 100 + step), 8).unwrap();
        assert!(loss.is_finite());
    }
    let trained = check(&mut m, "after 3 Adam steps");
    assert!(trained > 100, "only {trained} later logits changed");
}
