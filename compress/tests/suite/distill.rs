//! The distillation loss: its value on known cases and its gradient against
//! central finite differences.

use compress::distill::distillation_loss;
use compress::rng::SplitMix64;

fn logits(len: usize, scale: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| (rng.gaussian() * scale) as f32).collect()
}

#[test]
fn identical_logits_cost_nothing() {
    let t = logits(3 * 10, 3.0, 1);
    let d = distillation_loss(&t, &t, 10, 4.0);
    assert!(d.loss.abs() < 1e-12, "{}", d.loss);
    assert!(d.student_gradient.iter().all(|g| g.abs() < 1e-7));
}

#[test]
fn loss_is_t_squared_kl_averaged_over_the_batch() {
    // Two classes, T = 2: teacher logits (0, 2 ln 3) -> p = (1/4, 3/4);
    // student logits (0, 0) -> q = (1/2, 1/2).
    let teacher = [0.0, 2.0 * 3f32.ln()];
    let kl = 0.25 * (0.25f64 / 0.5).ln() + 0.75 * (0.75f64 / 0.5).ln();
    let one = distillation_loss(&[0.0, 0.0], &teacher, 2, 2.0);
    assert!(
        (one.loss - 4.0 * kl).abs() < 1e-6,
        "{} vs {}",
        one.loss,
        4.0 * kl
    );
    // Gradient T (q - p) = 2 * (1/4, -1/4).
    assert!((one.student_gradient[0] - 0.5).abs() < 1e-6);
    assert!((one.student_gradient[1] + 0.5).abs() < 1e-6);
    // A second, identical image doubles the sum and halves every gradient.
    let two = distillation_loss(&[0.0, 0.0, 0.0, 0.0], &[teacher, teacher].concat(), 2, 2.0);
    assert!((two.loss - one.loss).abs() < 1e-12);
    assert!((two.student_gradient[0] - 0.25).abs() < 1e-6);
}

#[test]
fn gradient_matches_central_finite_differences() {
    let classes = 7;
    let teacher = logits(4 * classes, 3.0, 2);
    let student = logits(4 * classes, 3.0, 3);
    for temperature in [1.0, 2.5, 8.0] {
        let analytic = distillation_loss(&student, &teacher, classes, temperature).student_gradient;
        for (i, &g) in analytic.iter().enumerate() {
            // A power of two, so the shifted f32 logits are exact; the loss
            // is smooth, so the O(h²) error is far below the tolerance.
            let h = 1.0 / 128.0;
            let at = |delta: f32| {
                let mut s = student.clone();
                s[i] += delta;
                distillation_loss(&s, &teacher, classes, temperature).loss
            };
            let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
            assert!(
                (f64::from(g) - numeric).abs() <= 1e-5 + 1e-4 * numeric.abs(),
                "T {temperature}, logit {i}: analytic {g}, numeric {numeric}"
            );
        }
    }
}

#[test]
fn huge_logits_stay_finite() {
    let student = [1e30, -1e30, 0.0];
    let teacher = [-1e30, 1e30, 0.0];
    let d = distillation_loss(&student, &teacher, 3, 1.0);
    assert!(d.loss.is_finite() && d.loss > 1e29, "{}", d.loss);
    assert!(d.student_gradient.iter().all(|g| g.is_finite()));
}
