//! Distillation fine-tuning: the compressed model (student) learns to match
//! the original's (teacher's) output distribution on augmented views of the
//! calibration images, without changing what the file stores as structure.
//!
//! The loss is KL(teacher ‖ student) of the softmax at a temperature, scaled
//! by T² (Hinton et al.): it needs no labels, and at T > 1 it passes on the
//! teacher's whole ranking of classes rather than only its top-1, which gets
//! the most out of a few hundred images. Each step draws a batch of the
//! calibration images, a random resized crop and flip of each
//! ([`View`]), blends each view with the next image's (mixup, [`mixed`]),
//! runs the teacher ([`Session`], fast inference) and the student
//! ([`forward_for_training`] and its backward pass) on the same views, and
//! takes an Adam step with a cosine schedule after a short warm-up.
//! [`trainable`] says what may change: pruned weights stay zero, codes stay
//! fixed, so positions and codes streams of the file do not change.
//!
//! A recipe that both prunes and shares weights fine-tunes twice, before
//! and after weight sharing ([`Stage`], [`Tuning`]), splitting the steps.
//!
//! Progress shows the loss and the top-1 agreement with the teacher on
//! held-back images of the calibration folder that are not trained on.
//! Everything is drawn from one seeded generator in a fixed order and every
//! kernel is deterministic, so the result does not depend on the number of
//! threads.

mod stages;
mod trainable;

use compress::distill::distillation_loss;
use compress::optim::{CosineSchedule, Method, Optimizer};
use compress::rng::SplitMix64;
use formats::{Model, Op};
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use super::calib_images::CalibrationImages;
use super::{defaults, PipelineError, Progress};
use crate::engine::{forward_for_training, Session, StepMemory, Tensor};
use crate::eval::top_k;
use crate::imaging::augment::{CropScale, View};
use crate::imaging::{check_preprocess, load_batch, load_rgb};
pub(crate) use stages::calibrate;
pub use stages::Tuning;
use trainable::Trainable;

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Optimizer steps.
    Steps(usize),
    /// Passes over the training images (rounded up to whole steps).
    Epochs(usize),
}

/// Which fine-tuning stage runs: a recipe that both prunes and shares
/// weights fine-tunes twice, as Deep Compression retrains (after pruning,
/// then after weight sharing); any other recipe once, at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The only stage, after every other.
    Only,
    /// After pruning, before weight sharing: every surviving weight trains
    /// at full precision.
    BeforeSharing,
    /// After weight sharing that followed [`Stage::BeforeSharing`]: only
    /// shared values (codes fixed) and biases train.
    AfterSharing,
}

/// The fine-tuning stage of a [`Recipe`](super::Recipe).
#[derive(Debug, Clone)]
pub struct Finetune {
    /// How long to train, over all stages; `None` for the defaults
    /// ([`defaults::FINETUNE_STEPS`] for one stage,
    /// [`defaults::FINETUNE_TWO_STAGE_STEPS`] for two).
    pub length: Option<Length>,
    /// Peak learning rate of Adam (cosine decay to zero after warm-up).
    pub lr: f32,
    /// Images per step.
    pub batch: usize,
    /// Softmax temperature of the distillation loss.
    pub temperature: f64,
    /// Seed of batch order and augmentation.
    pub seed: u64,
    /// Blend each view with another image's view of the batch (mixup)
    /// before teacher and student see it: more distinct inputs to match
    /// the teacher on than the training images alone give.
    pub mixup: bool,
    /// When the recipe both prunes and shares weights, also fine-tune
    /// between the two ([`Stage::BeforeSharing`]).
    pub two_stage: bool,
    /// Images of the calibration folder outside the calibration set on
    /// which agreement with the teacher is shown (0: none).
    pub held_back: usize,
    /// The teacher; `None` for the model being compressed.
    pub teacher: Option<Model>,
}

impl Default for Finetune {
    fn default() -> Self {
        Finetune {
            length: None,
            lr: defaults::FINETUNE_LR,
            batch: defaults::FINETUNE_BATCH,
            temperature: defaults::FINETUNE_TEMPERATURE,
            seed: defaults::FINETUNE_SEED,
            mixup: defaults::FINETUNE_MIXUP,
            two_stage: defaults::FINETUNE_TWO_STAGE,
            held_back: defaults::FINETUNE_HELD_BACK,
            teacher: None,
        }
    }
}

impl Finetune {
    /// Optimizer steps of `stage` with `images` training images: the
    /// length over all stages, of which [`defaults::FINETUNE_SHARE_BEFORE_SHARING`]
    /// goes to the stage before weight sharing and the rest to the one
    /// after; at least one step each.
    pub fn steps(&self, stage: Stage, images: usize) -> usize {
        let total = match (self.length, stage) {
            (Some(Length::Steps(steps)), _) => steps,
            (Some(Length::Epochs(epochs)), _) => {
                epochs.saturating_mul(images).div_ceil(self.batch.max(1))
            }
            (None, Stage::Only) => defaults::FINETUNE_STEPS,
            (None, _) => defaults::FINETUNE_TWO_STAGE_STEPS,
        };
        let before = (total as f64 * defaults::FINETUNE_SHARE_BEFORE_SHARING).round() as usize;
        match stage {
            Stage::Only => total,
            Stage::BeforeSharing => before,
            Stage::AfterSharing => total.saturating_sub(before),
        }
        .max(1)
    }
}

/// What fine-tuning did, for the report and `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinetuneReport {
    /// Optimizer steps run.
    pub steps: usize,
    /// Images trained on (the calibration images).
    pub training_images: usize,
    /// Held-back images agreement is measured on.
    pub held_back_images: usize,
    /// Mean distillation loss of the first steps (up to [`LOSS_WINDOW`]).
    pub initial_loss: f64,
    /// Mean distillation loss of the last steps (up to [`LOSS_WINDOW`]).
    pub final_loss: f64,
    /// Top-1 agreement with the teacher on the held-back images before
    /// fine-tuning (`None` without held-back images).
    pub held_back_agreement_before: Option<f64>,
    /// The same after fine-tuning.
    pub held_back_agreement: Option<f64>,
    /// Wall-clock time of the training steps, in seconds (the only figure
    /// that differs between runs).
    pub seconds: f64,
}

/// Steps averaged for the initial and final loss of the report.
pub const LOSS_WINDOW: usize = 10;

/// Area range of the random crops (a larger minimum than torchvision's 0.08:
/// the student must match the teacher on views like those it will see).
const CROP_SCALE: CropScale = CropScale {
    min: 0.35,
    max: 1.0,
};

/// Fraction of the steps spent warming the learning rate up.
const WARMUP_FRACTION: f64 = 0.05;

/// Times agreement on the held-back images is measured during training.
const AGREEMENT_CHECKS: usize = 20;

/// Fine-tune `student` towards `teacher` on the calibration images `images`
/// as `spec` says, for the steps of `stage`; returns the tuned model and
/// what happened.
pub fn finetune(
    student: &Model,
    teacher: &Model,
    images: &CalibrationImages,
    spec: &Finetune,
    stage: Stage,
    progress: &mut dyn Progress,
) -> Result<(Model, FinetuneReport), PipelineError> {
    check_preprocess(&student.preprocess)?;
    check_preprocess(&teacher.preprocess)?;
    let training = decode_all(&images.files()?)?;
    let held_back = HeldBack::new(&images.held_out(spec.held_back)?, student, teacher)?;
    let steps = spec.steps(stage, training.len());
    let teacher = logits_model(teacher);
    let teacher_session = Session::new(&teacher)?;
    let mut tuned = logits_model(student);
    let optimizer = Optimizer {
        method: Method::adam(),
        weight_decay: 0.0,
    };
    let schedule = CosineSchedule {
        peak: spec.lr,
        floor: 0.0,
        warmup: (steps as f64 * WARMUP_FRACTION).ceil() as usize,
        total: steps,
    };
    let mut trainables: Vec<Trainable> = tuned
        .layers
        .iter()
        .map(|l| Trainable::new(l, &optimizer))
        .collect();
    let mut batches = Batches::new(training.len(), spec.batch, spec.seed);
    let mut memory = StepMemory::default();
    let mut losses = Vec::with_capacity(steps);
    let agreement_before = held_back.agreement(&tuned)?;
    let mut agreement = agreement_before;
    let check_every = steps.div_ceil(AGREEMENT_CHECKS);
    let phase = match stage {
        Stage::Only => "fine-tuning",
        Stage::BeforeSharing => "fine-tuning weights",
        Stage::AfterSharing => "fine-tuning shared values",
    };
    progress.phase(phase, steps, "steps");
    let start = std::time::Instant::now();
    for step in 0..steps {
        let (picks, views) = batches.next(&training);
        let blend = match spec.mixup {
            true => batches.blend_weights(picks.len()),
            false => Vec::new(),
        };
        let student_input = mixed(
            augmented(&training, &picks, &views, &tuned.preprocess),
            &blend,
        );
        let teacher_input = match teacher.preprocess == tuned.preprocess {
            true => None,
            false => Some(mixed(
                augmented(&training, &picks, &views, &teacher.preprocess),
                &blend,
            )),
        };
        let targets = teacher_session.run(teacher_input.as_ref().unwrap_or(&student_input))?;
        let tape = forward_for_training(&tuned, &student_input, &mut memory)?;
        let output = tape.output();
        if output.shape != targets.shape {
            return Err(PipelineError::TeacherMismatch(format!(
                "the teacher's output has shape {:?} but the student's {:?}",
                targets.shape, output.shape
            )));
        }
        let classes = output.shape[1..].iter().product();
        let distilled = distillation_loss(&output.data, &targets.data, classes, spec.temperature);
        if !distilled.loss.is_finite() {
            return Err(PipelineError::FinetuneDiverged(step + 1));
        }
        let d_output = Tensor::new(output.shape, distilled.student_gradient)?;
        let gradients = tape.parameter_gradients(d_output, &mut memory)?;
        let rate = schedule.rate(step);
        for ((layer, trainable), gradient) in
            tuned.layers.iter_mut().zip(&mut trainables).zip(gradients)
        {
            trainable.step(layer, gradient, &optimizer, rate);
        }
        losses.push(distilled.loss);
        if (step + 1) % check_every == 0 || step + 1 == steps {
            agreement = held_back.agreement(&tuned)?;
        }
        progress.layer(&progress_message(step, distilled.loss, agreement));
    }
    let seconds = start.elapsed().as_secs_f64();
    for (layer, trainable) in tuned.layers.iter_mut().zip(&mut trainables) {
        trainable.finish(layer);
    }
    let agreement = held_back.agreement(&tuned)?;
    let mut model = student.clone();
    model.layers = tuned.layers;
    let report = FinetuneReport {
        steps,
        training_images: training.len(),
        held_back_images: held_back.len(),
        initial_loss: mean(&losses[..losses.len().min(LOSS_WINDOW)]),
        final_loss: mean(&losses[losses.len().saturating_sub(LOSS_WINDOW)..]),
        held_back_agreement_before: agreement_before,
        held_back_agreement: agreement,
        seconds,
    };
    Ok((model, report))
}

fn progress_message(step: usize, loss: f64, agreement: Option<f64>) -> String {
    match agreement {
        Some(a) => format!(
            "step {}: loss {loss:.4}, held-back agreement {:.1} %",
            step + 1,
            100.0 * a
        ),
        None => format!("step {}: loss {loss:.4}", step + 1),
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// `model` without a final softmax, so that it outputs logits: the loss
/// applies its own softmax at the temperature.
fn logits_model(model: &Model) -> Model {
    let mut model = model.clone();
    let graph = &mut model.graph;
    if let Some(last) = graph.nodes.last() {
        if matches!(last.op, Op::Softmax)
            && last.inputs.len() == 1
            && last.outputs == [graph.output.clone()]
        {
            graph.output = last.inputs[0].clone();
            graph.nodes.pop();
        }
    }
    model
}

/// Decode every image (in parallel; the first failure in file order is
/// reported).
fn decode_all(files: &[std::path::PathBuf]) -> Result<Vec<RgbImage>, PipelineError> {
    let images: Vec<_> = files.par_iter().map(|f| load_rgb(f)).collect();
    Ok(images.into_iter().collect::<Result<_, _>>()?)
}

/// The views `views` of images `picks`, preprocessed for `preset`, as one
/// batch (parallel over images, each computed independently).
fn augmented(
    images: &[RgbImage],
    picks: &[usize],
    views: &[View],
    preset: &formats::Preprocess,
) -> Tensor {
    let crop = preset.crop as usize;
    let data: Vec<Vec<f32>> = picks
        .par_iter()
        .zip(views)
        .map(|(&i, view)| view.apply(&images[i], preset))
        .collect();
    Tensor {
        shape: [picks.len(), 3, crop, crop],
        data: data.concat(),
    }
}

/// Mixup between the images of a batch (Zhang et al., 2018; used for
/// distillation by Beyer et al., 2022, "Knowledge distillation: a good
/// teacher is patient and consistent"): image `i` becomes `w[i]` times
/// itself plus `1 - w[i]` times image `i + 1` (the last one mixes with the
/// first). Teacher and student see the same blend. Normalisation is affine
/// per channel, so blending normalised images equals normalising blended
/// ones. An empty `weights` leaves the batch as it is.
fn mixed(batch: Tensor, weights: &[f32]) -> Tensor {
    if weights.is_empty() {
        return batch;
    }
    let len = batch.image_len();
    let count = batch.shape[0];
    let mut out = batch.clone();
    out.data
        .par_chunks_mut(len)
        .zip(weights)
        .enumerate()
        .for_each(|(i, (image, &w))| {
            let own = &batch.data[i * len..(i + 1) * len];
            let partner = (i + 1) % count;
            let other = &batch.data[partner * len..(partner + 1) * len];
            for ((v, &a), &b) in image.iter_mut().zip(own).zip(other) {
                *v = w * a + (1.0 - w) * b;
            }
        });
    out
}

/// The order training images are visited in: every image once per epoch,
/// each epoch shuffled, plus each visit's view, all from one generator.
struct Batches {
    rng: SplitMix64,
    order: Vec<usize>,
    next: usize,
    batch: usize,
}

impl Batches {
    fn new(images: usize, batch: usize, seed: u64) -> Self {
        Batches {
            rng: SplitMix64::new(seed),
            order: (0..images).collect(),
            next: images,
            batch,
        }
    }

    /// The next batch's image indices and views.
    fn next(&mut self, images: &[RgbImage]) -> (Vec<usize>, Vec<View>) {
        let mut picks = Vec::with_capacity(self.batch);
        let mut views = Vec::with_capacity(self.batch);
        while picks.len() < self.batch {
            if self.next == self.order.len() {
                self.shuffle();
            }
            let image = self.order[self.next];
            self.next += 1;
            let (width, height) = images[image].dimensions();
            picks.push(image);
            views.push(View::draw(width, height, CROP_SCALE, &mut self.rng));
        }
        (picks, views)
    }

    /// Mixup weights of a batch of `count` images, uniform in [0, 1].
    fn blend_weights(&mut self, count: usize) -> Vec<f32> {
        (0..count).map(|_| self.rng.next_f64() as f32).collect()
    }

    /// Fisher–Yates shuffle of the order, starting a new epoch.
    fn shuffle(&mut self) {
        for i in (1..self.order.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            self.order.swap(i, j);
        }
        self.next = 0;
    }
}

/// Held-back images, preprocessed for the student, and the teacher's top-1
/// class of each.
struct HeldBack {
    input: Option<Tensor>,
    teacher_top1: Vec<usize>,
}

impl HeldBack {
    fn new(
        files: &[std::path::PathBuf],
        student: &Model,
        teacher: &Model,
    ) -> Result<Self, PipelineError> {
        if files.is_empty() {
            return Ok(HeldBack {
                input: None,
                teacher_top1: Vec::new(),
            });
        }
        let teacher_input = load_batch(files, &teacher.preprocess)?;
        let teacher_top1 = top1(&Session::new(teacher)?.run(&teacher_input)?);
        let input = match teacher.preprocess == student.preprocess {
            true => teacher_input,
            false => load_batch(files, &student.preprocess)?,
        };
        Ok(HeldBack {
            input: Some(input),
            teacher_top1,
        })
    }

    fn len(&self) -> usize {
        self.teacher_top1.len()
    }

    /// Fraction of held-back images on which `student`'s top-1 class is the
    /// teacher's (`None` without held-back images).
    fn agreement(&self, student: &Model) -> Result<Option<f64>, PipelineError> {
        let Some(input) = &self.input else {
            return Ok(None);
        };
        let predicted = top1(&Session::new(student)?.run(input)?);
        if predicted.len() != self.teacher_top1.len() {
            return Err(PipelineError::TeacherMismatch(
                "teacher and student disagree on the batch size".to_string(),
            ));
        }
        let agree = predicted
            .iter()
            .zip(&self.teacher_top1)
            .filter(|(a, b)| a == b)
            .count();
        Ok(Some(agree as f64 / self.len() as f64))
    }
}

/// The top-1 class of every image of the batch `output`.
fn top1(output: &Tensor) -> Vec<usize> {
    let classes = output.shape[1..].iter().product::<usize>().max(1);
    output
        .data
        .chunks(classes)
        .map(|row| top_k(row, 1)[0])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixup_blends_each_image_with_the_next_and_the_last_with_the_first() {
        let batch = Tensor {
            shape: [3, 1, 1, 2],
            data: vec![1.0, 2.0, 10.0, 20.0, 100.0, 200.0],
        };
        assert_eq!(mixed(batch.clone(), &[]), batch);
        let blended = mixed(batch, &[1.0, 0.5, 0.25]);
        assert_eq!(blended.data, vec![1.0, 2.0, 55.0, 110.0, 25.75, 51.5]);
    }
}
