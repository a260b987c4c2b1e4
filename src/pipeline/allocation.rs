//! Per-layer allocation: choose each layer's sparsity and bit width so the
//! whole file fits a byte budget (and optionally a global sparsity) with
//! the least total damage.
//!
//! Every layer gets a table of options — sparsity `0` or a ladder level,
//! times a bit level — each with its bytes in the file, its nonzero count
//! and its damage. Bytes are measured by actually encoding the layer
//! (plain magnitude pruning and k-means at that setting, then the
//! container's own encoder; calibrated compression keeps the same number
//! of zeros and codebook size, so it lands close). Damage is the layer's
//! sensitivity: the KL divergence of pruning alone at that sparsity plus
//! that of weight sharing alone at that width, assumed additive over
//! stages and layers.
//!
//! [`allocate`] then starts from the least damaging option of each layer
//! and repeatedly takes the move with the least damage added per byte (or
//! per nonzero, while a sparsity budget is unmet) saved, until the budget
//! holds; a final pass gives back any move that still fits. Because the
//! estimate is not exact, [`fit_to_budget`] builds the real file and, when
//! it is over the budget, lowers the budget by the excess and plans again.

use compress::prune::prune_layer;
use formats::sqz::{encode_model, size_breakdown};
use formats::Model;
use rayon::prelude::*;

use super::error::PipelineError;
use super::params::{Bits, LayerOverrides, Sparsity};
use super::prune::PruneSpec;
use super::quantize::{share_weights, KMeans, NonzeroWeights, QuantizeSpec};
use super::sensitivity::Sensitivity;
use crate::error::InternalError;

/// One way to compress one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerOption {
    /// Target sparsity (`0` = not pruned).
    pub sparsity: Sparsity,
    /// Codebook index width; `None` when weights are not shared.
    pub bits: Option<Bits>,
    /// Estimated bytes of the layer in the `.sqz` file.
    pub bytes: usize,
    /// Nonzero weights left.
    pub nonzeros: usize,
    /// Estimated damage (KL divergence, nats).
    pub damage: f64,
}

/// The options of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerOptions {
    pub name: String,
    pub weights: usize,
    pub options: Vec<LayerOption>,
}

/// Options of every layer, in layer order, and the bytes of the file
/// outside the layers (header, strings, graph), which no choice changes.
#[derive(Debug, Clone, PartialEq)]
pub struct CostTable {
    pub layers: Vec<LayerOptions>,
    pub fixed_bytes: usize,
}

/// What the plan must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of the whole `.sqz` file.
    pub bytes: usize,
    /// Nonzero weights over all layers, when a global sparsity is asked.
    pub nonzeros: Option<usize>,
}

/// The chosen option index of each layer, in layer order.
pub type Plan = Vec<usize>;

/// Build the cost table of `model` from its `sensitivity`, encoding every
/// layer at every (sparsity, bits) option with the k-means settings
/// `kmeans` (and float16 shared values with `half`).
pub fn cost_table(
    model: &Model,
    sensitivity: &Sensitivity,
    kmeans: &KMeans,
    half: bool,
) -> Result<CostTable, PipelineError> {
    let matches = sensitivity.layers.len() == model.layers.len()
        && sensitivity
            .layers
            .iter()
            .zip(&model.layers)
            .all(|(s, l)| s.name == l.name);
    if !matches {
        return Err(InternalError(
            "the sensitivity measurements do not match the model's layers".into(),
        )
        .into());
    }
    let ladder = &sensitivity.ladder;
    let levels: Vec<(Sparsity, Vec<f64>)> =
        std::iter::once((Sparsity::ZERO, vec![0.0; model.layers.len()]))
            .chain(ladder.sparsities.iter().enumerate().map(|(i, &s)| {
                (
                    s,
                    sensitivity.layers.iter().map(|l| l.prune[i].kl).collect(),
                )
            }))
            .collect();
    let mut layers: Vec<LayerOptions> = model
        .layers
        .iter()
        .map(|l| LayerOptions {
            name: l.name.clone(),
            weights: l.weight_count(),
            options: Vec::new(),
        })
        .collect();
    let mut fixed_bytes = 0;
    for (sparsity, prune_damage) in &levels {
        let mut pruned = model.clone();
        pruned.layers.par_iter_mut().for_each(|l| {
            prune_layer(&mut l.weights, sparsity.get());
        });
        let nonzero: Vec<NonzeroWeights> = pruned
            .layers
            .par_iter()
            .map(|l| NonzeroWeights::new(&l.weights))
            .collect();
        for (b, &bits) in ladder.bits.iter().enumerate() {
            let mut quantized = pruned.clone();
            quantized
                .layers
                .par_iter_mut()
                .zip(&nonzero)
                .for_each(|(layer, values)| {
                    share_weights(layer, &values.shared_values(bits, kmeans, half), half);
                });
            let breakdown = size_breakdown(&encode_model(&quantized));
            let layer_bytes: Vec<usize> = breakdown.layers.iter().map(|l| l.total()).collect();
            fixed_bytes = breakdown.total() - layer_bytes.iter().sum::<usize>();
            for (i, entry) in layers.iter_mut().enumerate() {
                entry.options.push(LayerOption {
                    sparsity: *sparsity,
                    bits: Some(bits),
                    bytes: layer_bytes[i],
                    nonzeros: quantized.layers[i].nonzeros(),
                    damage: prune_damage[i] + sensitivity.layers[i].quantize[b].kl,
                });
            }
        }
    }
    Ok(CostTable {
        layers,
        fixed_bytes,
    })
}

/// Choose one option per layer so that the estimated file fits `budget`
/// with the least total damage (greedy on marginal damage per byte saved,
/// then giving back what still fits). Errors when even the smallest
/// reachable plan is over the budget.
pub fn allocate(table: &CostTable, budget: &Budget) -> Result<Plan, PipelineError> {
    let layer_budget = budget.bytes.checked_sub(table.fixed_bytes).ok_or_else(|| {
        PipelineError::Budget(format!(
            "the budget of {} bytes is below the {} bytes every file needs besides its layers",
            budget.bytes, table.fixed_bytes
        ))
    })?;
    let layers = &table.layers;
    let mut plan: Plan = Vec::with_capacity(layers.len());
    for l in layers {
        let least_damage = (0..l.options.len())
            .min_by(|&a, &b| {
                let (a, b) = (&l.options[a], &l.options[b]);
                a.damage.total_cmp(&b.damage).then(a.bytes.cmp(&b.bytes))
            })
            .ok_or_else(|| InternalError(format!("layer {} has no compression options", l.name)))?;
        plan.push(least_damage);
    }
    let fits = |plan: &Plan| {
        let (bytes, nonzeros) = totals(layers, plan);
        bytes <= layer_budget && budget.nonzeros.is_none_or(|n| nonzeros <= n)
    };
    while !fits(&plan) {
        let (_, nonzeros) = totals(layers, &plan);
        let by_nonzeros = budget.nonzeros.is_some_and(|n| nonzeros > n);
        let resource = |o: &LayerOption| if by_nonzeros { o.nonzeros } else { o.bytes };
        let mut best: Option<(f64, usize, usize)> = None;
        for (li, l) in layers.iter().enumerate() {
            let current = &l.options[plan[li]];
            for (oi, o) in l.options.iter().enumerate() {
                let tighter = o.bytes <= current.bytes
                    && o.nonzeros <= current.nonzeros
                    && resource(o) < resource(current);
                if !tighter {
                    continue;
                }
                let ratio = (o.damage - current.damage) / (resource(current) - resource(o)) as f64;
                if best.is_none_or(|(r, _, _)| ratio < r) {
                    best = Some((ratio, li, oi));
                }
            }
        }
        let Some((_, li, oi)) = best else {
            let (bytes, nonzeros) = totals(layers, &plan);
            return Err(PipelineError::Budget(format!(
                "the budget cannot be met: the smallest plan takes {} bytes and {nonzeros} nonzero weights (budget: {} bytes{})",
                bytes + table.fixed_bytes,
                budget.bytes,
                budget.nonzeros.map(|n| format!(", {n} nonzeros")).unwrap_or_default()
            )));
        };
        plan[li] = oi;
    }
    give_back(layers, &mut plan, &fits);
    Ok(plan)
}

/// Undo damage while the plan still fits: repeatedly take the single
/// option change that lowers the damage most and keeps the budget.
fn give_back(layers: &[LayerOptions], plan: &mut Plan, fits: &dyn Fn(&Plan) -> bool) {
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for (li, l) in layers.iter().enumerate() {
            let current = l.options[plan[li]].damage;
            for (oi, o) in l.options.iter().enumerate() {
                let gain = current - o.damage;
                if gain <= 0.0 || best.is_some_and(|(g, _, _)| gain <= g) {
                    continue;
                }
                let mut trial = plan.clone();
                trial[li] = oi;
                if fits(&trial) {
                    best = Some((gain, li, oi));
                }
            }
        }
        match best {
            Some((_, li, oi)) => plan[li] = oi,
            None => return,
        }
    }
}

/// Estimated layer bytes and nonzeros of a plan.
fn totals(layers: &[LayerOptions], plan: &Plan) -> (usize, usize) {
    layers.iter().zip(plan).fold((0, 0), |(b, n), (l, &i)| {
        (b + l.options[i].bytes, n + l.options[i].nonzeros)
    })
}

/// The estimated file bytes of a plan.
pub fn estimated_bytes(table: &CostTable, plan: &Plan) -> usize {
    totals(&table.layers, plan).0 + table.fixed_bytes
}

/// The pruning and weight-sharing specs that carry out `plan`: every
/// layer gets its own sparsity and bits, shared with the k-means settings
/// `kmeans`.
pub fn plan_specs(table: &CostTable, plan: &Plan, kmeans: &KMeans) -> (PruneSpec, QuantizeSpec) {
    let chosen = || {
        table
            .layers
            .iter()
            .zip(plan)
            .map(|(l, &i)| (l.name.clone(), l.options[i]))
    };
    let prune = PruneSpec {
        sparsity: Sparsity::ZERO,
        global: false,
        per_layer: chosen().map(|(n, o)| (n, o.sparsity)).collect(),
    };
    let per_layer: LayerOverrides<Bits> =
        chosen().filter_map(|(n, o)| Some((n, o.bits?))).collect();
    let widest = per_layer.values().copied().max();
    let quantize = QuantizeSpec {
        bits: widest.unwrap_or(Bits::new(Bits::MAX).expect("the widest width is valid")),
        per_layer,
        kmeans: *kmeans,
    };
    (prune, quantize)
}

/// What [`fit_to_budget`] produced.
#[derive(Debug)]
pub struct Fitted<T> {
    pub plan: Plan,
    /// The result of the accepted build.
    pub result: T,
    /// Its real size in bytes, within the budget.
    pub bytes: usize,
    /// Builds it took.
    pub attempts: usize,
}

/// Plan, build with `build` (which returns the result and its real size in
/// bytes) and check the size; when it is over `budget`, plan again for the
/// rejected plan's estimate minus the excess (plus a small margin), at most
/// `max_attempts` times. The accepted result is never over the budget.
pub fn fit_to_budget<T>(
    table: &CostTable,
    budget: &Budget,
    max_attempts: usize,
    mut build: impl FnMut(&Plan) -> Result<(T, usize), PipelineError>,
) -> Result<Fitted<T>, PipelineError> {
    let mut planning = *budget;
    let mut smallest = usize::MAX;
    for attempt in 1..=max_attempts {
        let plan = allocate(table, &planning)?;
        let (result, bytes) = build(&plan)?;
        if bytes <= budget.bytes {
            return Ok(Fitted {
                plan,
                result,
                bytes,
                attempts: attempt,
            });
        }
        smallest = smallest.min(bytes);
        // Below this plan's own estimate, so the next plan is a new one.
        let excess = bytes - budget.bytes + budget.bytes / 1000;
        let base = planning.bytes.min(estimated_bytes(table, &plan));
        planning.bytes = base.checked_sub(excess).ok_or_else(|| {
            PipelineError::Budget(format!(
                "the budget of {} bytes cannot be met: the file came out at {bytes} bytes",
                budget.bytes
            ))
        })?;
    }
    Err(PipelineError::Budget(format!(
        "the budget of {} bytes was not met after {max_attempts} attempts (smallest file: {smallest} bytes)",
        budget.bytes
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer whose options are `(bytes, nonzeros, damage)`.
    fn layer(name: &str, options: &[(usize, usize, f64)]) -> LayerOptions {
        LayerOptions {
            name: name.into(),
            weights: 100,
            options: options
                .iter()
                .map(|&(bytes, nonzeros, damage)| LayerOption {
                    sparsity: Sparsity::ZERO,
                    bits: Bits::new(8).ok(),
                    bytes,
                    nonzeros,
                    damage,
                })
                .collect(),
        }
    }

    fn table() -> CostTable {
        CostTable {
            layers: vec![
                // Robust layer: shrinking it is cheap.
                layer(
                    "robust",
                    &[(1000, 100, 0.0), (600, 60, 0.01), (300, 30, 0.05)],
                ),
                // Sensitive layer: shrinking it hurts.
                layer(
                    "sensitive",
                    &[(1000, 100, 0.0), (600, 60, 0.5), (300, 30, 2.0)],
                ),
            ],
            fixed_bytes: 50,
        }
    }

    fn bytes_of(t: &CostTable, plan: &Plan) -> usize {
        estimated_bytes(t, plan)
    }

    #[test]
    fn every_budget_is_respected_and_loose_budgets_cost_nothing() {
        let t = table();
        for budget in (650..=2100).step_by(25) {
            let plan = allocate(
                &t,
                &Budget {
                    bytes: budget,
                    nonzeros: None,
                },
            )
            .unwrap();
            assert!(
                bytes_of(&t, &plan) <= budget,
                "budget {budget}: plan {plan:?}"
            );
        }
        let plan = allocate(
            &t,
            &Budget {
                bytes: 2050,
                nonzeros: None,
            },
        )
        .unwrap();
        assert_eq!(plan, vec![0, 0]);
    }

    #[test]
    fn the_robust_layer_is_shrunk_first() {
        let t = table();
        // 1650 bytes: one layer must drop to 600; the robust one costs 0.01.
        assert_eq!(
            allocate(
                &t,
                &Budget {
                    bytes: 1650,
                    nonzeros: None
                }
            )
            .unwrap(),
            vec![1, 0]
        );
        // 1350: the robust layer to 300 (0.05) beats the sensitive one to 600 (0.5).
        assert_eq!(
            allocate(
                &t,
                &Budget {
                    bytes: 1350,
                    nonzeros: None
                }
            )
            .unwrap(),
            vec![2, 0]
        );
    }

    #[test]
    fn a_nonzero_budget_is_respected_too() {
        let t = table();
        let plan = allocate(
            &t,
            &Budget {
                bytes: 10_000,
                nonzeros: Some(100),
            },
        )
        .unwrap();
        let nonzeros: usize = t
            .layers
            .iter()
            .zip(&plan)
            .map(|(l, &i)| l.options[i].nonzeros)
            .sum();
        assert!(nonzeros <= 100);
        assert_eq!(
            plan,
            vec![2, 1],
            "robust layer to 30, sensitive to 60 is the least damage for 100"
        );
    }

    #[test]
    fn impossible_budgets_are_errors() {
        let t = table();
        let err = allocate(
            &t,
            &Budget {
                bytes: 649,
                nonzeros: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("650 bytes"), "{err}");
        assert!(allocate(
            &t,
            &Budget {
                bytes: 40,
                nonzeros: None
            }
        )
        .is_err());
        assert!(allocate(
            &t,
            &Budget {
                bytes: 10_000,
                nonzeros: Some(59)
            }
        )
        .is_err());
    }

    #[test]
    fn sensitivity_of_another_model_is_an_internal_error() {
        use crate::error::Fault;
        use crate::pipeline::sensitivity::{Ladder, LayerSensitivity};
        use formats::{Graph, Layer, Preprocess};

        let model = Model {
            graph: Graph {
                nodes: Vec::new(),
                input: "data".into(),
                output: "data".into(),
            },
            layers: vec![Layer {
                name: "a".into(),
                shape: [1, 1, 1, 2],
                weights: vec![0.5, -0.5],
                bias: vec![0.0],
            }],
            preprocess: Preprocess::torchvision(),
        };
        let sensitivity = Sensitivity {
            ladder: Ladder::default(),
            images: 1,
            layers: vec![LayerSensitivity {
                name: "b".into(),
                weights: 2,
                prune: Vec::new(),
                quantize: Vec::new(),
            }],
        };
        let err = cost_table(&model, &sensitivity, &KMeans::default(), false)
            .expect_err("mismatched layers");
        assert!(err.is_internal(), "{err}");
        assert!(crate::error::is_internal(&err));
    }

    #[test]
    fn fit_to_budget_tightens_until_the_real_size_fits() {
        let t = table();
        let budget = Budget {
            bytes: 1700,
            nonzeros: None,
        };
        // The real encoder is 10 % larger than the estimate.
        let fitted = fit_to_budget(&t, &budget, 5, |plan| {
            let real = bytes_of(&t, plan) * 11 / 10;
            Ok((plan.clone(), real))
        })
        .unwrap();
        assert!(fitted.bytes <= budget.bytes);
        assert!(fitted.attempts > 1);
        // Every rebuild is of a new, smaller plan.
        let mut built: Vec<Plan> = Vec::new();
        let fitted = fit_to_budget(
            &t,
            &Budget {
                bytes: 1000,
                nonzeros: None,
            },
            5,
            |plan| {
                assert!(!built.contains(plan), "plan {plan:?} was built twice");
                built.push(plan.clone());
                Ok(((), bytes_of(&t, plan) + 100))
            },
        )
        .unwrap();
        assert!(fitted.bytes <= 1000);
        // A build that never fits ends in an error, not an oversized file.
        let err = fit_to_budget(&t, &budget, 3, |_| Ok(((), 5000)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1700 bytes"), "{err}");
    }
}
