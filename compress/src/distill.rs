//! The knowledge-distillation loss (Hinton, Vinyals & Dean, 2015) that
//! fine-tunes a compressed student network towards the original teacher on
//! unlabeled images: no labels, only the teacher's softened predictions.
//!
//! For one image with student logits `s` and teacher logits `t` over the
//! classes, at temperature `T`: `q = softmax(s / T)`, `p = softmax(t / T)`,
//! and the loss is `T² · KL(p ‖ q) = T² · Σ p · (ln p − ln q)`. The `T²`
//! keeps the gradient's size independent of the temperature; its gradient
//! with respect to the student logits is `T · (q − p)`. Over a batch, the
//! loss and gradient are averaged over images. Arithmetic is in f64 and
//! sequential, so results are deterministic.

/// The loss of a batch and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Distillation {
    /// `T² · KL(teacher ‖ student)`, averaged over the batch.
    pub loss: f64,
    /// Derivative of `loss` with respect to each student logit, laid out
    /// like the logits.
    pub student_gradient: Vec<f32>,
}

/// The distillation loss of `student` against `teacher` logits, both
/// row-major `batch x classes`, at `temperature`.
///
/// # Panics
///
/// If the two logit slices differ in length, `classes` is zero or does not
/// divide their length, or `temperature` is not positive and finite: the
/// caller checks these (they are shapes of its own tensors and a validated
/// option), so a violation is a bug.
pub fn distillation_loss(
    student: &[f32],
    teacher: &[f32],
    classes: usize,
    temperature: f64,
) -> Distillation {
    assert_eq!(student.len(), teacher.len(), "student vs teacher logits");
    assert!(
        classes > 0 && student.len().is_multiple_of(classes),
        "{} logits are not rows of {classes} classes",
        student.len()
    );
    assert!(
        temperature > 0.0 && temperature.is_finite(),
        "temperature {temperature}"
    );
    let batch = student.len() / classes;
    let mut loss = 0.0;
    let mut student_gradient = Vec::with_capacity(student.len());
    for (s, t) in student.chunks(classes).zip(teacher.chunks(classes)) {
        let log_q = log_softmax(s, temperature);
        let log_p = log_softmax(t, temperature);
        let mut kl = 0.0;
        for (&lq, &lp) in log_q.iter().zip(&log_p) {
            let p = lp.exp();
            // p ln p -> 0 as p -> 0: a class the teacher rules out adds nothing.
            if p > 0.0 {
                kl += p * (lp - lq);
            }
            student_gradient.push((temperature * (lq.exp() - p) / batch as f64) as f32);
        }
        loss += kl;
    }
    Distillation {
        loss: temperature * temperature * loss / batch as f64,
        student_gradient,
    }
}

/// `ln softmax(logits / temperature)`, computed stably by subtracting the
/// largest logit first.
fn log_softmax(logits: &[f32], temperature: f64) -> Vec<f64> {
    let scaled: Vec<f64> = logits.iter().map(|&z| f64::from(z) / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_total = scaled.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
    scaled.iter().map(|z| z - max - log_total).collect()
}
