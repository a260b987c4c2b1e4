//! Where a sparsity budget goes: with calibration images, `--sparsity S`
//! removes S of all the network's weights, placed where the measured
//! damage is least, instead of S of every layer.
//!
//! Uniform pruning treats a 1,728-weight first layer, which every image
//! flows through, like the 512,000-weight classifier; on SqueezeNet v1.1
//! at 70 % it leaves a calibrated model at a fraction of the original's
//! accuracy. Here each layer's damage is measured at every level of a
//! sparsity ladder ([`super::sensitivity`], calibrated the way the final
//! model is, reused from [`super::sensitivity_cache`] when it can be), and
//! [`allocate`] picks the levels with the least total damage whose nonzero
//! weights fit `(1 - S) × weights` — the allocation a target size uses,
//! with a budget in weights instead of bytes. Ladder levels are coarse, so
//! one layer then gives back the slack in a partial step (damage
//! interpolated linearly between its levels) and the whole network lands
//! on S. Layers with their own `--layer-sparsity` keep it.

use compress::prune::prune_layer;
use formats::{Layer, Model};
use rayon::prelude::*;

use super::allocation::{allocate, Budget, CostTable, LayerOption, LayerOptions, Plan};
use super::error::PipelineError;
use super::params::Sparsity;
use super::prune::PruneSpec;
use super::report::{PlacedLayer, PlacementReport};
use super::sensitivity::{Ladder, LayerSensitivity, SensitivityOptions};
use super::sensitivity_cache::SensitivityRun;
use super::{Calibration, Progress};

/// Place a sparsity budget by measured damage.
#[derive(Debug, Clone)]
pub struct SparsityPlacement {
    /// The levels each layer's damage is measured at (pruning only).
    pub ladder: Ladder,
    /// Images and cache of the measurement.
    pub sensitivity: SensitivityRun,
}

/// Turn `spec`'s network-wide sparsity into per-layer sparsities placed by
/// damage measured on `calibration`'s images; the result names every
/// layer, and a report says where the sparsity went.
pub fn place(
    original: &Model,
    spec: &PruneSpec,
    placement: &SparsityPlacement,
    calibration: &Calibration,
    progress: &mut dyn Progress,
) -> Result<(PruneSpec, PlacementReport), PipelineError> {
    let options = SensitivityOptions::new(placement.ladder.clone(), calibration.options);
    let sensitivity = placement
        .sensitivity
        .measure(original, calibration, &options, progress)?;
    let table = pruning_table(original, &sensitivity.layers, &options.ladder, spec)?;
    let weights = original.weight_count();
    let nonzeros = nonzero_budget(original, spec.sparsity);
    let fewest: usize = table
        .layers
        .iter()
        .map(|l| l.options.iter().map(|o| o.nonzeros).min().unwrap_or(0))
        .sum();
    if fewest > nonzeros {
        let highest = options.ladder.sparsities.last().copied();
        return Err(PipelineError::Budget(format!(
            "sparsity {} cannot be placed: the ladder's highest level ({}) in every layer without an override still leaves {fewest} of {weights} weights",
            spec.sparsity,
            highest.map_or("-".to_string(), |s| s.to_string()),
        )));
    }
    let plan = allocate(
        &table,
        &Budget {
            bytes: usize::MAX,
            nonzeros: Some(nonzeros),
        },
    )?;
    let placed = settle(&table, &plan, nonzeros);
    let prune = PruneSpec {
        sparsity: spec.sparsity,
        global: false,
        per_layer: placed
            .iter()
            .map(|p| (p.name.clone(), p.sparsity))
            .collect(),
    };
    let report = PlacementReport {
        target_sparsity: spec.sparsity,
        images: sensitivity.images,
        layers: placed,
    };
    Ok((prune, report))
}

/// The nonzero weights `model` may keep at network-wide `sparsity`.
pub fn nonzero_budget(model: &Model, sparsity: Sparsity) -> usize {
    ((1.0 - sparsity.get()) * model.weight_count() as f64).floor() as usize
}

/// Every layer's options: unpruned or a ladder level, or only its override;
/// bytes are not planned, so they are zero.
fn pruning_table(
    model: &Model,
    measured: &[LayerSensitivity],
    ladder: &Ladder,
    spec: &PruneSpec,
) -> Result<CostTable, PipelineError> {
    let layers = model
        .layers
        .par_iter()
        .zip(measured)
        .map(|(layer, m)| {
            let damage_at = |s: f64| interpolated_damage(ladder, m, s);
            let levels: Vec<Sparsity> = match spec.per_layer.get(&layer.name) {
                Some(&fixed) => vec![fixed],
                None => std::iter::once(Sparsity::ZERO)
                    .chain(ladder.sparsities.iter().copied())
                    .collect(),
            };
            let options = levels
                .into_iter()
                .map(|sparsity| LayerOption {
                    sparsity,
                    bits: None,
                    bytes: 0,
                    nonzeros: nonzeros_after(layer, sparsity),
                    damage: damage_at(sparsity.get()),
                })
                .collect();
            LayerOptions {
                name: layer.name.clone(),
                weights: layer.weight_count(),
                options,
            }
        })
        .collect();
    Ok(CostTable {
        layers,
        fixed_bytes: 0,
    })
}

/// Nonzero weights of `layer` pruned to `sparsity` (existing zeros stay).
fn nonzeros_after(layer: &Layer, sparsity: Sparsity) -> usize {
    let mut weights = layer.weights.clone();
    prune_layer(&mut weights, sparsity.get()).nonzeros()
}

/// The measured damage of pruning `m`'s layer to `s`, linear between the
/// ladder's levels (and from zero damage at sparsity 0); beyond the last
/// level, that level's damage.
fn interpolated_damage(ladder: &Ladder, m: &LayerSensitivity, s: f64) -> f64 {
    let points = std::iter::once((0.0, 0.0)).chain(
        ladder
            .sparsities
            .iter()
            .zip(&m.prune)
            .map(|(l, d)| (l.get(), d.kl)),
    );
    let mut below = (0.0, 0.0);
    for (level, damage) in points {
        if s <= level {
            let (l0, d0) = below;
            let t = if level > l0 {
                (s - l0) / (level - l0)
            } else {
                1.0
            };
            return d0 + t * (damage - d0);
        }
        below = (level, damage);
    }
    below.1
}

/// The layers' sparsities under `plan`, after one layer gives back the
/// plan's slack under `nonzeros` in a partial step towards its next lower
/// option: the layer whose step back saves the most damage per weight.
fn settle(table: &CostTable, plan: &Plan, nonzeros: usize) -> Vec<PlacedLayer> {
    let chosen = |li: usize| &table.layers[li].options[plan[li]];
    let used: usize = (0..plan.len()).map(|li| chosen(li).nonzeros).sum();
    let slack = nonzeros.saturating_sub(used);
    let step_back = (0..plan.len())
        .filter_map(|li| {
            let current = chosen(li);
            let lower = table.layers[li].options.get(plan[li].checked_sub(1)?)?;
            let weights = lower.nonzeros.checked_sub(current.nonzeros)?;
            let rate = (current.damage - lower.damage) / weights as f64;
            (weights > 0 && rate > 0.0).then_some((li, lower, rate))
        })
        .max_by(|a, b| a.2.total_cmp(&b.2));
    let mut placed: Vec<PlacedLayer> = (0..plan.len())
        .map(|li| PlacedLayer {
            name: table.layers[li].name.clone(),
            sparsity: chosen(li).sparsity,
            damage: chosen(li).damage,
        })
        .collect();
    if let Some((li, lower, _)) = step_back.filter(|_| slack > 0) {
        let current = chosen(li);
        let weights = table.layers[li].weights;
        let span = lower.nonzeros - current.nonzeros;
        let given_back = slack.min(span);
        let zeros = weights - current.nonzeros - given_back;
        let t = given_back as f64 / span as f64;
        if let Ok(sparsity) = Sparsity::new(zeros as f64 / weights as f64) {
            placed[li].sparsity = sparsity;
            placed[li].damage = current.damage - t * (current.damage - lower.damage);
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sensitivity::Damage;

    fn s(v: f64) -> Sparsity {
        Sparsity::new(v).unwrap()
    }

    fn measured(kl: &[f64]) -> LayerSensitivity {
        LayerSensitivity {
            name: "l".into(),
            weights: 100,
            prune: kl.iter().map(|&kl| Damage { kl, agreement: 1.0 }).collect(),
            quantize: Vec::new(),
        }
    }

    #[test]
    fn damage_is_interpolated_between_levels() {
        let ladder = Ladder::pruning(vec![s(0.5), s(0.75)]).unwrap();
        let m = measured(&[1.0, 3.0]);
        let at = |v| interpolated_damage(&ladder, &m, v);
        assert_eq!(at(0.0), 0.0);
        assert!((at(0.25) - 0.5).abs() < 1e-12);
        assert_eq!(at(0.5), 1.0);
        assert!((at(0.625) - 2.0).abs() < 1e-12);
        assert_eq!(at(0.9), 3.0);
    }

    /// A layer of `weights` weights whose options are (sparsity, damage).
    fn layer(name: &str, weights: usize, options: &[(f64, f64)]) -> LayerOptions {
        LayerOptions {
            name: name.into(),
            weights,
            options: options
                .iter()
                .map(|&(sparsity, damage)| LayerOption {
                    sparsity: s(sparsity),
                    bits: None,
                    bytes: 0,
                    nonzeros: weights - (sparsity * weights as f64).round() as usize,
                    damage,
                })
                .collect(),
        }
    }

    #[test]
    fn the_budget_goes_where_damage_is_least_and_is_met_exactly() {
        let table = CostTable {
            layers: vec![
                layer("robust", 1000, &[(0.0, 0.0), (0.5, 0.01), (0.9, 0.05)]),
                layer("sensitive", 1000, &[(0.0, 0.0), (0.5, 1.0), (0.9, 5.0)]),
            ],
            fixed_bytes: 0,
        };
        // 60 % of 2000 weights: the robust layer goes to 90 %, the
        // sensitive one takes the remaining 300 zeros, not a whole level.
        let nonzeros = 800;
        let budget = Budget {
            bytes: usize::MAX,
            nonzeros: Some(nonzeros),
        };
        let plan = allocate(&table, &budget).unwrap();
        let placed = settle(&table, &plan, nonzeros);
        let sparsities: Vec<f64> = placed.iter().map(|p| p.sparsity.get()).collect();
        assert_eq!(sparsities, vec![0.9, 0.3]);
        assert!((placed[1].damage - 0.6).abs() < 1e-12, "{placed:?}");
        let zeros: f64 = sparsities.iter().map(|s| s * 1000.0).sum();
        assert_eq!(zeros.round() as usize, 2000 - nonzeros);
    }
}
