//! Sensitivity analysis: how much does compressing one layer alone hurt
//! the network?
//!
//! For every layer, each level of a ladder of sparsities and of a ladder of
//! bit widths is tried on that layer only, with every other layer
//! original, and the network's output on calibration images is compared
//! with the original's: mean KL divergence of the class distributions and
//! top-1 agreement. The trial layer is compressed the way `--calib`
//! compresses (OBS pruning with refit, GPTQ onto the k-means codebook,
//! bias correction) on its input Hessian from the original network, so the
//! measured damage is the damage the calibrated compressor will cause, not
//! the much larger damage of plain magnitude pruning and k-means.
//!
//! The Hessians of all layers come from one forward pass; each trial then
//! costs one forward pass with the layer replaced through the engine's
//! hook. The cost is `layers × levels` forward passes, so sensitivity uses
//! fewer images than compression ([`SENSITIVITY_CALIB_COUNT`]).

use anyhow::Context;
use compress::calib::{GptqOptions, ReconstructOptions};
use formats::{Layer, Model, Node, Op};

use crate::calibration::{compress_layer_with_hessian, original_hessians, CalibrationSpec};
use crate::compression::QuantizeSpec;
use crate::engine::{forward_hooked, Tensor};
use crate::eval::{output_rows, top_k};

/// Calibration images used for sensitivity analysis when no count is given:
/// enough for a stable mean KL divergence, few enough that the
/// `layers × levels` forward passes take a few minutes.
pub const SENSITIVITY_CALIB_COUNT: usize = 32;

/// The levels tried on each layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    /// Sparsities, ascending, each in `(0, 1)`.
    pub sparsities: Vec<f64>,
    /// Bit widths, descending, each in `1..=16`.
    pub bits: Vec<u8>,
}

impl Default for Ladder {
    /// Sparsity 0.3 to 0.9 in steps of 0.1, and 8 down to 2 bits.
    fn default() -> Self {
        Ladder {
            sparsities: vec![0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
            bits: vec![8, 7, 6, 5, 4, 3, 2],
        }
    }
}

impl Ladder {
    /// A ladder of the given levels, sorted (sparsities ascending, bits
    /// descending) and deduplicated; errors on empty ladders or levels out
    /// of range.
    pub fn new(mut sparsities: Vec<f64>, mut bits: Vec<u8>) -> anyhow::Result<Self> {
        anyhow::ensure!(!sparsities.is_empty(), "the sparsity ladder is empty");
        anyhow::ensure!(!bits.is_empty(), "the bit ladder is empty");
        for s in &sparsities {
            anyhow::ensure!(*s > 0.0 && *s < 1.0, "sparsity level {s} is outside (0, 1)");
        }
        for b in &bits {
            anyhow::ensure!((1..=16).contains(b), "bit level {b} is outside 1..=16");
        }
        sparsities.sort_by(f64::total_cmp);
        sparsities.dedup();
        bits.sort_unstable_by(|a, b| b.cmp(a));
        bits.dedup();
        Ok(Ladder { sparsities, bits })
    }
}

/// How the trial layers are compressed (the settings `compress --calib`
/// will use).
#[derive(Debug, Clone)]
pub struct SensitivityOptions {
    pub ladder: Ladder,
    /// Weight sharing of the bit trials; its `bits` and `per_layer` are
    /// replaced by each ladder level.
    pub quantize: QuantizeSpec,
    /// Shift biases by the mean output error, as compression does.
    pub bias_correction: bool,
    pub reconstruct: ReconstructOptions,
    pub gptq: GptqOptions,
}

/// The damage of one trial, measured against the original network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Damage {
    /// Mean KL divergence `KL(original ‖ trial)` of the class
    /// distributions, in nats.
    pub kl: f64,
    /// Fraction of images whose top-1 class is unchanged.
    pub agreement: f64,
}

/// The damage of every ladder level on one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSensitivity {
    pub name: String,
    pub weights: usize,
    /// One entry per [`Ladder::sparsities`] level, pruning only.
    pub prune: Vec<Damage>,
    /// One entry per [`Ladder::bits`] level, weight sharing only.
    pub quantize: Vec<Damage>,
}

/// Sensitivity of every layer, in layer order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    pub ladder: Ladder,
    /// Calibration images the damage was measured on.
    pub images: usize,
    pub layers: Vec<LayerSensitivity>,
}

/// Measure the sensitivity of every layer of `model` on the preprocessed
/// calibration batch `calib`. `progress` is called with each layer's name
/// before its trials.
pub fn measure_sensitivity(
    model: &Model,
    calib: &Tensor,
    options: &SensitivityOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Sensitivity> {
    options.quantize.check()?;
    for b in &options.ladder.bits {
        anyhow::ensure!((1..=16).contains(b), "bit level {b} is outside 1..=16");
    }
    let (hessians, output) = original_hessians(model, calib)?;
    let reference = Reference::new(model, &output);
    let trial_spec = |quantize: Option<QuantizeSpec>| CalibrationSpec {
        prune: None,
        quantize,
        bias_correction: options.bias_correction,
        reconstruct: options.reconstruct,
        gptq: options.gptq,
    };
    let prune_spec = trial_spec(None);
    let mut layers = Vec::with_capacity(model.layers.len());
    for (index, (layer, h)) in model.layers.iter().zip(&hessians).enumerate() {
        progress(&layer.name);
        let trial = |sparsity: Option<f64>, spec: &CalibrationSpec| -> anyhow::Result<Damage> {
            let (compressed, _) = compress_layer_with_hessian(layer, h, sparsity, spec)?;
            reference.damage(model, calib, index, compressed)
        };
        let prune = options
            .ladder
            .sparsities
            .iter()
            .map(|&s| {
                trial(Some(s), &prune_spec)
                    .with_context(|| format!("layer {} at sparsity {s}", layer.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let quantize = options
            .ladder
            .bits
            .iter()
            .map(|&bits| {
                let spec = trial_spec(Some(QuantizeSpec {
                    bits,
                    per_layer: Default::default(),
                    ..options.quantize.clone()
                }));
                trial(None, &spec).with_context(|| format!("layer {} at {bits} bits", layer.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        layers.push(LayerSensitivity {
            name: layer.name.clone(),
            weights: layer.weight_count(),
            prune,
            quantize,
        });
    }
    Ok(Sensitivity {
        ladder: options.ladder.clone(),
        images: calib.batch(),
        layers,
    })
}

/// The original network's class distributions and top-1 classes.
struct Reference {
    probabilities: Vec<Vec<f64>>,
    top1: Vec<usize>,
}

impl Reference {
    fn new(model: &Model, output: &Tensor) -> Self {
        let probabilities = class_probabilities(model, output);
        let top1 = output_rows(output).map(|row| top_k(row, 1)[0]).collect();
        Reference {
            probabilities,
            top1,
        }
    }

    /// Run `model` with layer `index` replaced by `layer` and compare.
    fn damage(
        &self,
        model: &Model,
        calib: &Tensor,
        index: usize,
        layer: Layer,
    ) -> anyhow::Result<Damage> {
        let mut hook = |_: usize, node: &Node, _: &[&Tensor]| -> Option<Layer> {
            matches!(&node.op, Op::Conv(c) if c.layer == index).then(|| layer.clone())
        };
        let output = forward_hooked(model, calib, &mut hook).context("the trial pass failed")?;
        let trial = class_probabilities(model, &output);
        let images = self.probabilities.len().max(1) as f64;
        let kl: f64 = self
            .probabilities
            .iter()
            .zip(&trial)
            .map(|(p, q)| kl_divergence(p, q))
            .sum::<f64>()
            / images;
        let agreeing = output_rows(&output)
            .zip(&self.top1)
            .filter(|(row, &t)| top_k(row, 1)[0] == t)
            .count();
        Ok(Damage {
            kl,
            agreement: agreeing as f64 / images,
        })
    }
}

/// Per-image class probabilities of a network output: the output itself
/// when the graph ends in a softmax, else the softmax of the logits.
fn class_probabilities(model: &Model, output: &Tensor) -> Vec<Vec<f64>> {
    let ends_in_softmax = model
        .graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Softmax) && n.outputs.contains(&model.graph.output));
    output_rows(output)
        .map(|row| {
            if ends_in_softmax {
                row.iter().map(|&p| f64::from(p)).collect()
            } else {
                softmax(row)
            }
        })
        .collect()
}

/// Numerically stable softmax in float64.
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// `KL(p ‖ q)` in nats; terms with `p = 0` contribute nothing and `q` is
/// floored at the smallest positive float so a vanished class costs a
/// large but finite amount.
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(p, _)| **p > 0.0)
        .map(|(p, q)| p * (p.ln() - q.max(f64::MIN_POSITIVE).ln()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_is_zero_for_equal_and_positive_otherwise() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!(kl_divergence(&p, &p).abs() < 1e-15);
        let q = softmax(&[3.0, 2.0, 1.0]);
        // Independent computation: sum p ln(p/q) with q the reversed p.
        let expected: f64 = (0..3).map(|i| p[i] * (p[i] / p[2 - i]).ln()).sum();
        assert!((kl_divergence(&p, &q) - expected).abs() < 1e-12);
        assert!(expected > 0.0);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1000.0, 999.0, -5.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[0] > p[1] && p[1] > p[2]);
        assert!((p[0] / p[1] - std::f64::consts::E).abs() < 1e-9);
    }

    #[test]
    fn ladder_is_sorted_deduplicated_and_checked() {
        let l = Ladder::new(vec![0.7, 0.3, 0.7], vec![4, 8, 4]).unwrap();
        assert_eq!(l.sparsities, vec![0.3, 0.7]);
        assert_eq!(l.bits, vec![8, 4]);
        assert!(Ladder::new(vec![1.0], vec![4]).is_err());
        assert!(Ladder::new(vec![0.5], vec![0]).is_err());
        assert!(Ladder::new(vec![], vec![4]).is_err());
    }
}
