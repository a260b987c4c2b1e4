//! Accuracy of a model on labelled images: top-1 and top-5 over a folder,
//! with every image's top-5 kept so two models can be compared image by
//! image (e.g. a compressed network against its original).
//!
//! Images go through the engine in batches. While the engine runs a batch,
//! the next one is decoded and preprocessed (`rayon::join`), each image of a
//! batch in parallel; the numbers do not depend on the thread count.
//!
//! With [`EvalOptions::skip_bad`], images that cannot be loaded are left
//! out and listed in [`EvalReport::skipped`] instead of failing the run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use formats::{Model, Op};

use crate::engine::{self, EngineError, Tensor};
use crate::imaging::{self, ImagingError};
use crate::labels::LabeledImage;
use rayon::prelude::*;

/// Batch size used when none is given.
pub const DEFAULT_BATCH: usize = 16;

/// Number of best classes kept per image.
pub const TOP_K: usize = 5;

/// How to run an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Images per engine call (at least 1).
    pub batch_size: usize,
    /// Leave out images that cannot be decoded (reported in
    /// [`EvalReport::skipped`]) instead of stopping at the first one.
    pub skip_bad: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: DEFAULT_BATCH,
            skip_bad: false,
        }
    }
}

/// What the model predicted for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePrediction {
    /// The image file.
    pub path: PathBuf,
    /// Its ground-truth class.
    pub label: usize,
    /// The [`TOP_K`] best classes, best first (fewer if the model has fewer outputs).
    pub top5: Vec<usize>,
    /// Natural log of every class probability, floored at
    /// [`MIN_LOG_PROBABILITY`]: what [`EvalReport::mean_kl_from`] compares.
    pub log_probabilities: Vec<f32>,
}

/// Floor of [`ImagePrediction::log_probabilities`], so that a class a
/// softmax-ended model gives probability zero stays finite.
pub const MIN_LOG_PROBABILITY: f32 = -100.0;

impl ImagePrediction {
    /// Whether the best class is the label.
    pub fn top1_correct(&self) -> bool {
        self.top5.first() == Some(&self.label)
    }

    /// Whether the label is among the best [`TOP_K`].
    pub fn top5_correct(&self) -> bool {
        self.top5.contains(&self.label)
    }
}

/// An image left out by [`EvalOptions::skip_bad`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedImage {
    /// The image file.
    pub path: PathBuf,
    /// Why it could not be loaded (one line, naming the file).
    pub reason: String,
}

/// Result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Number of images evaluated.
    pub images: usize,
    /// Fraction (0..=1) of images whose best class is the label.
    pub top1: f64,
    /// Fraction (0..=1) of images whose label is among the best five.
    pub top5: f64,
    /// Wall-clock time of the whole evaluation, decoding included.
    pub seconds: f64,
    /// `images / seconds`.
    pub images_per_sec: f64,
    /// Per image, in input order.
    pub predictions: Vec<ImagePrediction>,
    /// Images left out because they could not be loaded, in input order
    /// (always empty unless [`EvalOptions::skip_bad`]).
    pub skipped: Vec<SkippedImage>,
}

impl EvalReport {
    /// Fraction of images on which this report and `other` predict the same
    /// best class; `None` unless both cover the same images in the same order.
    pub fn top1_agreement(&self, other: &EvalReport) -> Option<f64> {
        let same_images = self.predictions.len() == other.predictions.len()
            && self
                .predictions
                .iter()
                .zip(&other.predictions)
                .all(|(a, b)| a.path == b.path);
        if !same_images || self.predictions.is_empty() {
            return None;
        }
        let agree = self
            .predictions
            .iter()
            .zip(&other.predictions)
            .filter(|(a, b)| a.top5.first() == b.top5.first());
        Some(agree.count() as f64 / self.predictions.len() as f64)
    }

    /// Mean over the images of `KL(reference ‖ self)`, in nats: how much
    /// the class distributions differ, not only their best class, so it
    /// ranks two compressions with far less noise than agreement on a few
    /// hundred images. `None` unless both cover the same images in the
    /// same order with the same number of classes.
    pub fn mean_kl_from(&self, reference: &EvalReport) -> Option<f64> {
        let same = self.top1_agreement(reference).is_some()
            && self
                .predictions
                .iter()
                .zip(&reference.predictions)
                .all(|(a, b)| a.log_probabilities.len() == b.log_probabilities.len());
        if !same {
            return None;
        }
        let total: f64 = self
            .predictions
            .iter()
            .zip(&reference.predictions)
            .map(|(mine, theirs)| {
                theirs
                    .log_probabilities
                    .iter()
                    .zip(&mine.log_probabilities)
                    .map(|(&r, &m)| f64::from(r).exp() * (f64::from(r) - f64::from(m)))
                    .sum::<f64>()
            })
            .sum();
        Some(total / self.predictions.len() as f64)
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// An image could not be loaded.
    #[error(transparent)]
    Image(#[from] ImagingError),
    /// The model cannot run on the preprocessed images.
    #[error("the model cannot run: {0}")]
    Engine(#[from] EngineError),
    /// Nothing to evaluate.
    #[error("no images to evaluate")]
    NoImages,
    /// A batch size of zero.
    #[error("batch size must be at least 1")]
    ZeroBatch,
    /// A label the model cannot predict.
    #[error("{}: class {label} but the model has {classes} outputs", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        label: usize,
        classes: usize,
    },
}

/// Evaluate `model` on `images`, preprocessed with `model.preprocess`.
pub fn evaluate(
    model: &Model,
    images: &[LabeledImage],
    opts: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    evaluate_with_progress(model, images, opts, &mut |_| {})
}

/// [`evaluate`], calling `progress(n)` after each batch with the number of
/// images done so far (for a progress bar).
pub fn evaluate_with_progress(
    model: &Model,
    images: &[LabeledImage],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<EvalReport, EvalError> {
    let start = Instant::now();
    if opts.batch_size == 0 {
        return Err(EvalError::ZeroBatch);
    }
    let batches: Vec<&[LabeledImage]> = images.chunks(opts.batch_size).collect();
    let Some(first) = batches.first() else {
        return Err(EvalError::NoImages);
    };
    check_labels(model, images, first.len())?;

    let mut predictions = Vec::with_capacity(images.len());
    let mut skipped = Vec::new();
    let session = engine::Session::new(model)?;
    let mut input = load_images(first, model, opts.skip_bad)?;
    for i in 0..batches.len() {
        let next = batches.get(i + 1);
        let (output, loaded) = rayon::join(
            || forward_loaded(&session, &input),
            || {
                next.map(|b| load_images(b, model, opts.skip_bad))
                    .transpose()
            },
        );
        skipped.append(&mut input.skipped);
        let output = output?;
        let probabilities = class_probabilities(model, &output);
        for ((image, scores), p) in input
            .images
            .iter()
            .zip(output_rows(&output))
            .zip(probabilities)
        {
            predictions.push(ImagePrediction {
                path: image.path.clone(),
                label: image.class_index,
                top5: top_k(scores, TOP_K),
                log_probabilities: p
                    .iter()
                    .map(|p| (p.ln() as f32).max(MIN_LOG_PROBABILITY))
                    .collect(),
            });
        }
        progress(predictions.len());
        match loaded? {
            Some(next_input) => input = next_input,
            None => break,
        }
    }
    if predictions.is_empty() {
        return Err(EvalError::NoImages);
    }

    let count = |correct: fn(&ImagePrediction) -> bool| {
        predictions.iter().filter(|p| correct(p)).count() as f64
    };
    let n = predictions.len() as f64;
    let seconds = start.elapsed().as_secs_f64();
    Ok(EvalReport {
        images: predictions.len(),
        top1: count(ImagePrediction::top1_correct) / n,
        top5: count(ImagePrediction::top5_correct) / n,
        seconds,
        images_per_sec: n / seconds,
        predictions,
        skipped,
    })
}

/// A loaded batch: the images that loaded, their input tensor, and those
/// left out.
struct LoadedBatch<'a> {
    images: Vec<&'a LabeledImage>,
    input: Tensor,
    skipped: Vec<SkippedImage>,
}

/// Load and preprocess `batch`. Without `skip_bad` the first unreadable
/// image is an error; with it, each image is loaded on its own and the
/// unreadable ones are set aside.
fn load_images<'a>(
    batch: &'a [LabeledImage],
    model: &Model,
    skip_bad: bool,
) -> Result<LoadedBatch<'a>, EvalError> {
    if !skip_bad {
        let paths: Vec<&Path> = batch.iter().map(|i| i.path.as_path()).collect();
        let input = imaging::load_batch(&paths, &model.preprocess)?;
        return Ok(LoadedBatch {
            images: batch.iter().collect(),
            input,
            skipped: Vec::new(),
        });
    }
    let one_by_one: Vec<Result<Tensor, ImagingError>> = batch
        .par_iter()
        .map(|i| imaging::load_batch(&[&i.path], &model.preprocess))
        .collect();
    let crop = model.preprocess.crop as usize;
    let mut loaded = LoadedBatch {
        images: Vec::with_capacity(batch.len()),
        input: Tensor {
            shape: [0, 3, crop, crop],
            data: Vec::new(),
        },
        skipped: Vec::new(),
    };
    for (image, result) in batch.iter().zip(one_by_one) {
        match result {
            Ok(tensor) => {
                loaded.images.push(image);
                loaded.input.shape[0] += 1;
                loaded.input.data.extend_from_slice(&tensor.data);
            }
            Err(e) => {
                // Some decoder messages end in a newline; keep one line.
                let reason = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                loaded.skipped.push(SkippedImage {
                    path: image.path.clone(),
                    reason,
                });
            }
        }
    }
    Ok(loaded)
}

/// Run the engine on a loaded batch; a batch whose every image was skipped
/// gives an empty output without running the model.
fn forward_loaded(session: &engine::Session, loaded: &LoadedBatch) -> Result<Tensor, EngineError> {
    if loaded.images.is_empty() {
        return Ok(Tensor {
            shape: [0, 0, 0, 0],
            data: Vec::new(),
        });
    }
    session.run(&loaded.input)
}

/// Check, before any image is decoded, that the model runs on a batch of
/// `batch` preprocessed images and has an output for every label.
fn check_labels(model: &Model, images: &[LabeledImage], batch: usize) -> Result<(), EvalError> {
    let crop = model.preprocess.crop as usize;
    let shapes = engine::infer_shapes(model, [batch, 3, crop, crop])?;
    let classes: usize = shapes.output[1..].iter().product();
    match images.iter().find(|i| i.class_index >= classes) {
        Some(bad) => Err(EvalError::LabelOutOfRange {
            path: bad.path.clone(),
            label: bad.class_index,
            classes,
        }),
        None => Ok(()),
    }
}

/// The per-image score vectors of an engine output: `N` rows of `C*H*W`.
pub fn output_rows(output: &Tensor) -> impl Iterator<Item = &[f32]> {
    let [_, c, h, w] = output.shape;
    output.data.chunks_exact((c * h * w).max(1))
}

/// Per-image class probabilities of a network output: the output itself
/// when the graph ends in a softmax, else the softmax of the logits.
pub fn class_probabilities(model: &Model, output: &Tensor) -> Vec<Vec<f64>> {
    let already_probabilities = ends_in_softmax(model);
    output_rows(output)
        .map(|row| {
            if already_probabilities {
                row.iter().map(|&p| f64::from(p)).collect()
            } else {
                softmax(row)
            }
        })
        .collect()
}

/// Whether the model's output blob is produced by a softmax, so its values
/// are probabilities already.
fn ends_in_softmax(model: &Model) -> bool {
    model
        .graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Softmax) && n.outputs.contains(&model.graph.output))
}

/// Numerically stable softmax in float64.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest scores, best first; ties go to the lower
/// index so the order is fully deterministic.
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1000.0, 999.0, -5.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[0] > p[1] && p[1] > p[2]);
        assert!((p[0] / p[1] - std::f64::consts::E).abs() < 1e-9);
    }

    #[test]
    fn top_k_orders_by_score_then_index() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9, -1.0], 3), vec![1, 3, 2]);
        assert_eq!(top_k(&[2.0, 1.0], 5), vec![0, 1]);
    }

    fn prediction(path: &str, label: usize, top5: &[usize]) -> ImagePrediction {
        ImagePrediction {
            path: PathBuf::from(path),
            label,
            top5: top5.to_vec(),
            log_probabilities: Vec::new(),
        }
    }

    /// A report over `predictions`, figures left at zero.
    fn report(predictions: Vec<ImagePrediction>) -> EvalReport {
        EvalReport {
            images: predictions.len(),
            top1: 0.0,
            top5: 0.0,
            seconds: 1.0,
            images_per_sec: 1.0,
            predictions,
            skipped: Vec::new(),
        }
    }

    #[test]
    fn correctness_and_agreement() {
        let a = prediction("a", 3, &[3, 1, 2, 0, 4]);
        let b = prediction("b", 4, &[1, 2, 3, 0, 4]);
        assert!(a.top1_correct() && a.top5_correct());
        assert!(!b.top1_correct() && b.top5_correct());
        let first = report(vec![a.clone(), b.clone()]);
        let second = report(vec![a.clone(), prediction("b", 4, &[2, 1, 3, 0, 4])]);
        assert_eq!(first.top1_agreement(&second), Some(0.5));
        assert_eq!(first.top1_agreement(&report(vec![a])), None);
    }

    /// The mean KL divergence is the textbook sum, zero for the same
    /// distributions, and refused for different images or class counts.
    #[test]
    fn mean_kl_from_the_reference() {
        let with = |path: &str, p: &[f64]| ImagePrediction {
            log_probabilities: p.iter().map(|p| p.ln() as f32).collect(),
            ..prediction(path, 0, &[0])
        };
        let reference = report(vec![with("a", &[0.5, 0.5]), with("b", &[0.9, 0.1])]);
        let model = report(vec![with("a", &[0.25, 0.75]), with("b", &[0.9, 0.1])]);
        let expected = (0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln()) / 2.0;
        let kl = model.mean_kl_from(&reference).unwrap();
        assert!((kl - expected).abs() < 1e-6, "{kl} vs {expected}");
        assert!(reference.mean_kl_from(&reference).unwrap().abs() < 1e-12);
        let three = report(vec![with("a", &[0.2, 0.3, 0.5]), with("b", &[0.9, 0.1])]);
        assert_eq!(three.mean_kl_from(&reference), None);
        let other = report(vec![with("a", &[0.5, 0.5]), with("c", &[0.9, 0.1])]);
        assert_eq!(other.mean_kl_from(&reference), None);
    }
}
