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
//! The Hessians of all layers come from one forward pass, which also saves
//! the activations at every cut of the graph ([`super::tails`]); each trial
//! then runs the network only from the last cut before its layer. The cost
//! is still up to `layers × levels` (partial) forward passes, so
//! sensitivity uses fewer images than compression
//! ([`defaults::SENSITIVITY_CALIB_COUNT`]).
//!
//! On wide layers (VGG-16's last convolutions and classifier), the exact
//! least-squares refit after pruning would dominate everything else: about
//! `rows · min(kept, pruned)³` flops per trial, hours for VGG-16's `fc6`
//! over the ladder. Pruning trials of a layer whose refit work exceeds
//! [`SensitivityOptions::exact_refit_limit`] keep SparseGPT's
//! sweep-compensated weights instead ([`Refit::Sweep`], same mask). That
//! overstates the damage the calibrated compressor causes: on SqueezeNet,
//! with every layer swept, by a median 1.5–2.2x per sparsity level, with a
//! rank correlation of 0.84–0.93 across layers (`examples/trial_refit.rs`).

use compress::calib::Refit;
use formats::{Layer, Model};
use rayon::prelude::*;

use super::calibration::{
    compress_layer_with_hessian, CalibrationOptions, CalibrationSpec, OriginalHessians,
};
use super::defaults;
use super::error::PipelineError;
use super::params::{Bits, Sparsity};
use super::quantize::{KMeans, QuantizeSpec};
use super::tails::Tails;
use super::workload::exact_refit_work;
use crate::engine::Tensor;
use crate::eval::{class_probabilities, output_rows, top_k};

/// The levels tried on each layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ladder {
    /// Sparsities, ascending, each above zero.
    pub sparsities: Vec<Sparsity>,
    /// Bit widths, descending; empty when only pruning is measured
    /// ([`Ladder::pruning`]).
    pub bits: Vec<Bits>,
}

impl Default for Ladder {
    /// [`defaults::SPARSITY_LADDER`] and [`defaults::BITS_LADDER`].
    fn default() -> Self {
        Ladder::new(default_sparsity_ladder(), default_bits_ladder())
            .expect("the default ladders are valid")
    }
}

/// [`defaults::SPARSITY_LADDER`] as sparsities.
pub fn default_sparsity_ladder() -> Vec<Sparsity> {
    defaults::SPARSITY_LADDER
        .iter()
        .map(|&s| Sparsity::new(s).expect("default sparsities are in [0, 1)"))
        .collect()
}

/// [`defaults::BITS_LADDER`] as bit widths.
pub fn default_bits_ladder() -> Vec<Bits> {
    defaults::BITS_LADDER
        .iter()
        .map(|&b| Bits::new(b).expect("default bit widths are in 1..=16"))
        .collect()
}

impl Ladder {
    /// A ladder of the given levels, sorted (sparsities ascending, bits
    /// descending) and deduplicated; errors on empty ladders and on a
    /// sparsity level of zero (every layer can stay unpruned anyway).
    pub fn new(sparsities: Vec<Sparsity>, bits: Vec<Bits>) -> Result<Self, PipelineError> {
        if bits.is_empty() {
            return Err(PipelineError::Ladder("the bit ladder is empty".into()));
        }
        Self::checked(sparsities, bits)
    }

    /// A ladder of sparsities only, for placing a sparsity budget: no
    /// weight-sharing trial is run.
    pub fn pruning(sparsities: Vec<Sparsity>) -> Result<Self, PipelineError> {
        Self::checked(sparsities, Vec::new())
    }

    /// Sort, deduplicate and check the levels (bits may be empty).
    fn checked(mut sparsities: Vec<Sparsity>, mut bits: Vec<Bits>) -> Result<Self, PipelineError> {
        let bad = |message: &str| Err(PipelineError::Ladder(message.to_string()));
        if sparsities.is_empty() {
            return bad("the sparsity ladder is empty");
        }
        if sparsities.contains(&Sparsity::ZERO) {
            return bad("sparsity level 0 is not a level: every layer may stay unpruned anyway");
        }
        sparsities.sort_by(|a, b| a.get().total_cmp(&b.get()));
        sparsities.dedup();
        bits.sort_unstable_by(|a, b| b.cmp(a));
        bits.dedup();
        Ok(Ladder { sparsities, bits })
    }
}

/// How the trial layers are compressed (the settings calibrated
/// compression will use).
#[derive(Debug, Clone)]
pub struct SensitivityOptions {
    /// The levels tried.
    pub ladder: Ladder,
    /// k-means settings of the bit trials.
    pub kmeans: KMeans,
    /// Round shared values and biases to float16, as compression will.
    pub half: bool,
    /// How trial layers are fitted, as compression will fit them.
    pub calibration: CalibrationOptions,
    /// Largest exact-refit work ([`exact_refit_work`]) of a
    /// layer whose pruning trials refit exactly; wider layers' trials keep
    /// the sweep's weights ([`Refit::Sweep`]). Default
    /// [`defaults::SENSITIVITY_EXACT_REFIT_WORK`].
    pub exact_refit_limit: f64,
}

impl SensitivityOptions {
    /// Trials at the levels of `ladder`, fitted with `calibration`, with
    /// the k-means of a size budget ([`KMeans::for_target_size`]: the
    /// allocation is what reads the bit trials), float32 values and
    /// [`defaults::SENSITIVITY_EXACT_REFIT_WORK`]. A trial compresses one
    /// layer with the rest of the network original, so there is no
    /// original output to match apart from its own:
    /// [`CalibrationOptions::match_original`] is cleared, so that it does
    /// not split the sensitivity cache between runs that measure the same.
    pub fn new(ladder: Ladder, calibration: CalibrationOptions) -> Self {
        SensitivityOptions {
            ladder,
            kmeans: KMeans::for_target_size(),
            half: false,
            calibration: CalibrationOptions {
                match_original: false,
                ..calibration
            },
            exact_refit_limit: defaults::SENSITIVITY_EXACT_REFIT_WORK,
        }
    }
}

/// The damage of one trial, measured against the original network.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    /// Mean KL divergence `KL(original ‖ trial)` of the class
    /// distributions, in nats.
    pub kl: f64,
    /// Fraction of images whose top-1 class is unchanged.
    pub agreement: f64,
}

/// The damage of every ladder level on one layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerSensitivity {
    pub name: String,
    pub weights: usize,
    /// One entry per [`Ladder::sparsities`] level, pruning only.
    pub prune: Vec<Damage>,
    /// One entry per [`Ladder::bits`] level, weight sharing only.
    pub quantize: Vec<Damage>,
}

/// Sensitivity of every layer, in layer order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
) -> Result<Sensitivity, PipelineError> {
    let mut hessians = OriginalHessians::new(model, options.calibration.hessian_block);
    let (tails, output) = Tails::capture(model, calib, &mut |node, inputs| {
        hessians.observe(node, inputs)
    })?;
    let hessians = hessians.finish()?;
    let reference = Reference::new(model, &output);
    let trial_spec = |quantize: Option<QuantizeSpec>| CalibrationSpec {
        prune: None,
        quantize,
        half: options.half,
        options: options.calibration,
    };
    let prune_spec = trial_spec(None);
    let mut layers = Vec::with_capacity(model.layers.len());
    for (index, (layer, h)) in model.layers.iter().zip(&hessians).enumerate() {
        progress(&layer.name);
        // The layer's trials run in parallel; each is independent of the
        // others, so the results do not depend on the thread count.
        let trials: Vec<(Option<f64>, CalibrationSpec)> = options
            .ladder
            .sparsities
            .iter()
            .map(|&s| (Some(s.get()), prune_spec.clone()))
            .chain(options.ladder.bits.iter().map(|&bits| {
                let quantize = QuantizeSpec::uniform(bits, options.kmeans);
                (None, trial_spec(Some(quantize)))
            }))
            .collect();
        let work = exact_refit_work(layer, h.groups().len(), options.calibration.hessian_block)?;
        let refit = if work <= options.exact_refit_limit {
            Refit::Exact
        } else {
            Refit::Sweep
        };
        let mut damage = trials
            .par_iter()
            .map(|(sparsity, spec)| {
                let compressed =
                    compress_layer_with_hessian(layer, h, None, *sparsity, spec, refit)?;
                reference.damage(model, &tails, index, compressed)
            })
            .collect::<Result<Vec<_>, PipelineError>>()?;
        let quantize = damage.split_off(options.ladder.sparsities.len());
        let prune = damage;
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
        tails: &Tails,
        index: usize,
        layer: Layer,
    ) -> Result<Damage, PipelineError> {
        let output = tails.run_with(index, layer)?;
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
    use crate::eval::softmax;

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
    fn ladder_is_sorted_deduplicated_and_checked() {
        let s = |v: f64| Sparsity::new(v).unwrap();
        let b = |v: u8| Bits::new(v).unwrap();
        let l = Ladder::new(vec![s(0.7), s(0.3), s(0.7)], vec![b(4), b(8), b(4)]).unwrap();
        assert_eq!(l.sparsities, vec![s(0.3), s(0.7)]);
        assert_eq!(l.bits, vec![b(8), b(4)]);
        assert!(Ladder::new(vec![s(0.0)], vec![b(4)]).is_err());
        assert!(Ladder::new(vec![s(0.5)], vec![]).is_err());
        assert!(Ladder::new(vec![], vec![b(4)]).is_err());
        let pruning = Ladder::pruning(vec![s(0.5), s(0.3)]).unwrap();
        assert_eq!(
            (pruning.sparsities, pruning.bits),
            (vec![s(0.3), s(0.5)], vec![])
        );
        assert!(Ladder::pruning(vec![]).is_err());
        assert_eq!(Ladder::default().bits.len(), 7);
    }
}
