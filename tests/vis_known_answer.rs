//! Known answers for the visualisation tools and the attacks, on networks
//! built by hand so the answer can be worked out on paper.
//!
//! The probe: a 1×1 convolution with three filters on a 6×6 image whose
//! bright square covers rows 1–2, columns 3–5 (1.0; 0 elsewhere):
//! filter 0 copies the image (`w = 1`), filter 1 negates it (`w = −1`),
//! filter 2 copies it again. After the ReLU, channels 0 and 2 are the image
//! (they fire only on the square) and channel 1 is 0 everywhere. The class-0
//! score sums channel 0 with weight 1, channel 1 with 0.25 and channel 2
//! with −0.5, so `∂score/∂relu = (1, 0.25, −0.5)` per channel, everywhere.

use kiln::attack::{fgsm, softmax_ce_grad, Goal};
use kiln::vis::{grad_cam, upsample_bilinear};
use kiln::{rng, Cpu, GradMode, Tensor};

kiln::network! {
    pub struct Probe {
        input: [1, 6, 6],
        conv: Conv2d(3, kernel = 1),
        relu,
        flatten,
        fc: Linear(2),
    }
}

kiln::network! {
    /// A linear classifier of two classes: FGSM's answer is `ε·sign(w₁ − w₀)`.
    pub struct Linear2 {
        input: [8],
        fc: Linear(2),
    }
}

fn square() -> Vec<f32> {
    (0..36)
        .map(|i| {
            let (r, c) = (i / 6, i % 6);
            if (1..3).contains(&r) && (3..6).contains(&c) {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

fn probe() -> Probe {
    let mut net = Probe::init(&Cpu, &mut rng(0)).unwrap();
    net.conv.weight.copy_from_slice(&[1.0, -1.0, 1.0]).unwrap();
    net.conv
        .bias
        .as_mut()
        .unwrap()
        .copy_from_slice(&[0.0; 3])
        .unwrap();
    let mut w = vec![0.0f32; 2 * 108];
    for (ch, v) in [1.0, 0.25, -0.5].into_iter().enumerate() {
        w[ch * 36..(ch + 1) * 36].fill(v);
    }
    net.fc.weight.copy_from_slice(&w).unwrap();
    net.fc
        .bias
        .as_mut()
        .unwrap()
        .copy_from_slice(&[0.0; 2])
        .unwrap();
    net
}

/// Input gradients of the class-0 score in the three modes, worked out:
/// plain `1 − 0.5 = 0.5` on the square (channels 0 and 2 open there) and 0
/// off it; guided `1` on the square (channel 2's negative gradient is
/// stopped) and 0 off it; deconvnet `1 − 0.25 = 0.75` everywhere (positive
/// gradients pass whatever the input: channel 0's `+1` through `w = 1`,
/// channel 1's `+0.25` through `w = −1`).
#[test]
fn guided_backprop_lights_the_square_only() {
    let mut net = probe();
    let mut tape = net.tape().unwrap();
    let img = square();
    net.forward_train(&Tensor::from_slice(&Cpu, &img).unwrap(), &mut tape)
        .unwrap();
    let score = [1.0, 0.0];
    let mut run = |mode| {
        net.backward_from(&mut tape, "fc", &score, "x", mode)
            .unwrap();
        tape.gradient("x").unwrap().data
    };
    let on = |v: f32, off: f32| -> Vec<f32> {
        img.iter().map(|&p| if p > 0.0 { v } else { off }).collect()
    };
    assert_eq!(run(GradMode::Plain), on(0.5, 0.0));
    assert_eq!(run(GradMode::Guided), on(1.0, 0.0));
    assert_eq!(run(GradMode::Deconvnet), vec![0.75; 36]);
}

/// Grad-CAM at the ReLU: α = (1, 0.25, −0.5), the map ReLU(1·img + 0.25·0
/// − 0.5·img) = 0.5 on the square and exactly 0 elsewhere; at the same
/// resolution the upsampling is the identity; guided Grad-CAM (the guided
/// map times the CAM) is 0.5 on the square and 0 elsewhere.
#[test]
fn grad_cam_lights_the_square_only() {
    let mut net = probe();
    let mut tape = net.tape().unwrap();
    let img = square();
    net.forward_train(&Tensor::from_slice(&Cpu, &img).unwrap(), &mut tape)
        .unwrap();
    net.backward_from(&mut tape, "fc", &[1.0, 0.0], "relu1", GradMode::Plain)
        .unwrap();
    let (a, g) = (
        tape.activation("relu1").unwrap(),
        tape.gradient("relu1").unwrap(),
    );
    assert_eq!(&g.data[..36], &[1.0; 36][..]);
    assert_eq!(&g.data[36..72], &[0.25; 36][..]);
    let cam = grad_cam(&a, &g, 0).unwrap();
    let want: Vec<f32> = img.iter().map(|p| 0.5 * p).collect();
    assert_eq!((cam.h, cam.w), (6, 6));
    assert_eq!(cam.data, want);
    let up = upsample_bilinear(&cam, 6, 6).unwrap();
    assert_eq!(up.data, want);
    net.backward_from(&mut tape, "fc", &[1.0, 0.0], "x", GradMode::Guided)
        .unwrap();
    let guided = tape.gradient("x").unwrap().data;
    let gg: Vec<f32> = guided.iter().zip(&up.data).map(|(a, b)| a * b).collect();
    assert_eq!(gg, want);
    // Upsampled to 12×12, the map stays inside the square's area: zero in
    // every pixel whose bilinear footprint misses it.
    let big = upsample_bilinear(&cam, 12, 12).unwrap();
    for r in 0..12 {
        for c in 0..12 {
            let v = big.data[r * 12 + c];
            assert!(v >= 0.0);
            if r >= 7 || c <= 4 {
                assert_eq!(v, 0.0, "({r}, {c})");
            }
        }
    }
}

/// FGSM on a linear classifier of two classes, label 0: the cross-entropy's
/// input gradient is `p₁·(w₁ − w₀)`, so the untargeted perturbation is
/// exactly `ε·sign(w₁ − w₀)` (the image stays inside [0, 1]); toward class 1
/// it is the same, and toward class 0 (the label) its opposite.
#[test]
fn fgsm_on_a_linear_model_is_eps_sign_w() {
    let mut net = Linear2::init(&Cpu, &mut rng(3)).unwrap();
    let w = net.fc.weight.to_vec().unwrap();
    let dw: Vec<f32> = (0..8).map(|i| w[8 + i] - w[i]).collect();
    assert!(dw.iter().all(|v| *v != 0.0));
    let mut tape = net.tape().unwrap();
    let mut loss_grad = |x: &[f32], y: &[u32]| -> kiln::Result<Vec<f32>> {
        let xt = Tensor::from_vec(&Cpu, y.len(), x.to_vec())?;
        net.forward_train(&xt, &mut tape)?;
        let (_, g) = softmax_ce_grad(&tape.activation("fc")?.data, 2, y)?;
        net.backward_from(&mut tape, "fc", &g, "x", GradMode::Plain)?;
        Ok(tape.gradient("x")?.data)
    };
    let x = vec![0.5f32; 8];
    let eps = 0.1;
    let sign = |v: f32| if v > 0.0 { 1.0 } else { -1.0 };
    for (goal, s) in [
        (Goal::Untargeted(&[0]), 1.0),
        (Goal::Toward(&[1]), 1.0),
        (Goal::Toward(&[0]), -1.0),
    ] {
        let adv = fgsm(&x, eps, goal, &mut loss_grad).unwrap();
        for i in 0..8 {
            let d = adv[i] - x[i];
            assert!(
                (d - s * eps * sign(dw[i])).abs() < 1e-6,
                "{goal:?} pixel {i}: {d}"
            );
        }
    }
}
