//! 1-D k-means against linfa-clustering's generic k-means, plus the
//! invariants of a Lloyd fixed point and the exact small-alphabet case.

use compress::kmeans::{initial_centroids, kmeans_1d, Clustering, Init, SortedValues};
use compress::rng::SplitMix64;
use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;

const INITS: [Init; 3] = [
    Init::Linear,
    Init::Density,
    Init::KMeansPlusPlus { seed: 9 },
];

fn gaussian(n: usize, sigma: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| (rng.gaussian() * sigma) as f32).collect()
}

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
        .collect()
}

/// Data sets for the comparisons: uniform values and weight-like
/// Gaussian ones.
fn data_sets() -> [(&'static str, Vec<f32>); 2] {
    [
        ("uniform", uniform(3000, 1)),
        ("gaussian", gaussian(5000, 0.02, 2)),
    ]
}

/// A k-means result in `f64` for comparisons.
struct Solution {
    centroids: Vec<f64>,
    assignments: Vec<usize>,
}

impl From<&Clustering> for Solution {
    fn from(c: &Clustering) -> Self {
        Solution {
            centroids: c.centroids.iter().map(|&x| f64::from(x)).collect(),
            assignments: c.assignments.iter().map(|&a| a as usize).collect(),
        }
    }
}

/// linfa's k-means started from `start` and iterated until its centroids
/// stop moving.
fn linfa_kmeans(values: &[f32], start: &[f64]) -> Solution {
    let records = Array2::from_shape_fn((values.len(), 1), |(i, _)| f64::from(values[i]));
    let init = Array2::from_shape_fn((start.len(), 1), |(i, _)| start[i]);
    let model = KMeans::params(start.len())
        .init_method(KMeansInit::Precomputed(init))
        .n_runs(1)
        .tolerance(f64::MIN_POSITIVE)
        .max_n_iterations(100_000)
        .fit(&DatasetBase::from(records.clone()))
        .expect("linfa k-means");
    Solution {
        centroids: model.centroids().column(0).to_vec(),
        assignments: model.predict(&records).to_vec(),
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// Same centroids (within 1e-5 relative) and the same assignments.
fn same(a: &Solution, b: &Solution) -> bool {
    a.centroids.len() == b.centroids.len()
        && a.centroids
            .iter()
            .zip(&b.centroids)
            .all(|(x, y)| close(*x, *y, 1e-5))
        && a.assignments == b.assignments
}

/// Whether `s` is a Lloyd fixed point, checked by brute force: every value
/// is assigned to a nearest centroid and every nonempty cluster's centroid
/// is its mean.
fn is_fixed_point(values: &[f32], s: &Solution) -> bool {
    let nearest = values.iter().zip(&s.assignments).all(|(&v, &a)| {
        let d = |c: f64| (f64::from(v) - c).abs();
        s.centroids.iter().all(|&c| d(s.centroids[a]) <= d(c))
    });
    let means = (0..s.centroids.len()).all(|j| {
        let members: Vec<f64> = values
            .iter()
            .zip(&s.assignments)
            .filter(|(_, a)| **a == j)
            .map(|(v, _)| f64::from(*v))
            .collect();
        members.is_empty()
            || close(
                members.iter().sum::<f64>() / members.len() as f64,
                s.centroids[j],
                1e-6,
            )
    });
    nearest && means
}

#[test]
fn matches_linfa_from_the_same_start() {
    let mut identical = 0;
    let mut runs = 0;
    for (name, values) in data_sets() {
        for init in INITS {
            for k in [4, 16, 64] {
                let ours = kmeans_1d(&values, k, init, 100_000);
                let theirs = linfa_kmeans(&values, &initial_centroids(&values, k, init));
                runs += 1;
                if same(&Solution::from(&ours), &theirs) {
                    identical += 1;
                    continue;
                }
                // linfa updates a centroid to (sum + old centroid) / (count
                // + 1) ("m_k-means"), not to the plain mean, so its path can
                // end in a neighbouring local optimum. Accept a divergence
                // only if both ends are genuine Lloyd fixed points.
                eprintln!("{name} k={k} {init:?}: linfa's path ends in a different fixed point");
                assert!(
                    is_fixed_point(&values, &Solution::from(&ours)),
                    "ours is not a fixed point"
                );
                assert!(
                    is_fixed_point(&values, &theirs),
                    "linfa's is not a fixed point"
                );
            }
        }
    }
    eprintln!("{identical} of {runs} runs identical to linfa");
}

#[test]
fn is_a_fixed_point_of_linfa() {
    for (name, values) in data_sets() {
        for init in INITS {
            for k in [4, 16, 64, 256] {
                let ours = Solution::from(&kmeans_1d(&values, k, init, 100_000));
                let theirs = linfa_kmeans(&values, &ours.centroids);
                assert!(
                    same(&ours, &theirs),
                    "{name} k={k} {init:?}: linfa moves away from our result"
                );
            }
        }
    }
}

#[test]
fn converged_result_is_a_fixed_point() {
    for (name, values) in data_sets() {
        for init in INITS {
            let clustering = kmeans_1d(&values, 32, init, 100_000);
            let solution = Solution::from(&clustering);
            assert!(is_fixed_point(&values, &solution), "{name} {init:?}");
            assert!(
                clustering.centroids.windows(2).all(|w| w[0] < w[1]),
                "{name} {init:?}: centroids ascending"
            );
        }
    }
}

#[test]
fn stopped_early_assignments_are_still_nearest() {
    let values = gaussian(4000, 1.0, 5);
    for max_iter in [0, 1, 3] {
        let clustering = kmeans_1d(&values, 16, Init::Linear, max_iter);
        assert!(clustering.iterations <= max_iter);
        let s = Solution::from(&clustering);
        for (&v, &a) in values.iter().zip(&s.assignments) {
            let d = |c: f64| (f64::from(v) - c).abs();
            assert!(s.centroids.iter().all(|&c| d(s.centroids[a]) <= d(c)));
        }
    }
    let start = initial_centroids(&values, 16, Init::Linear);
    let unmoved = kmeans_1d(&values, 16, Init::Linear, 0);
    let start_f32: Vec<f32> = start.iter().map(|&c| c as f32).collect();
    assert_eq!(unmoved.centroids, start_f32);
}

#[test]
fn few_distinct_values_are_quantized_exactly() {
    let palette = [-0.5f32, -0.125, 0.0, 0.25, 3.0];
    let mut rng = SplitMix64::new(3);
    let values: Vec<f32> = (0..1000).map(|_| palette[rng.below(5) as usize]).collect();
    for k in [5, 6, 256] {
        for init in INITS {
            let clustering = kmeans_1d(&values, k, init, 100);
            assert_eq!(clustering.centroids, palette);
            assert_eq!(clustering.quantized(), values);
            assert_eq!(clustering.iterations, 0);
        }
    }
}

#[test]
fn independent_of_input_order() {
    let values = gaussian(3000, 0.05, 8);
    let mut reversed = values.clone();
    reversed.reverse();
    for init in INITS {
        let a = kmeans_1d(&values, 64, init, 1000);
        let b = kmeans_1d(&reversed, 64, init, 1000);
        assert_eq!(a.centroids, b.centroids);
        let mut b_assignments = b.assignments.clone();
        b_assignments.reverse();
        assert_eq!(a.assignments, b_assignments);
    }
}

#[test]
fn sorted_values_give_kmeans_1d_centroids_at_every_k() {
    let palette = [-0.5f32, -0.0, 0.0, 0.25, f32::MIN_POSITIVE, -3.0];
    let mut rng = SplitMix64::new(4);
    let few: Vec<f32> = (0..500).map(|_| palette[rng.below(6) as usize]).collect();
    let mut sets = data_sets().to_vec();
    sets.push(("palette", few));
    for (name, values) in sets {
        let sorted = SortedValues::new(&values);
        assert_eq!(sorted.len(), values.len());
        for k in [1, 2, 5, 7, 63, 256] {
            for init in INITS {
                assert_eq!(
                    sorted.centroids(k, init, 300),
                    kmeans_1d(&values, k, init, 300).centroids,
                    "{name}, k = {k}, {init:?}"
                );
            }
        }
    }
    assert!(SortedValues::new(&[])
        .centroids(4, Init::Linear, 10)
        .is_empty());
}

#[test]
fn empty_cluster_keeps_its_centroid() {
    // Linear start 0, 0.5, 1: no value is nearest to 0.5, so that centroid
    // stays while the others move to their means.
    let values = [0.0f32, 0.01, 0.02, 1.0];
    let clustering = kmeans_1d(&values, 3, Init::Linear, 10);
    assert_eq!(clustering.centroids, [0.01, 0.5, 1.0]);
    assert_eq!(clustering.assignments, [0, 0, 0, 2]);
}

#[test]
fn degenerate_inputs() {
    let empty = kmeans_1d(&[], 8, Init::Linear, 10);
    assert!(empty.centroids.is_empty() && empty.assignments.is_empty());
    let values = [1.0f32, 2.0, 6.0];
    for k in [0, 1] {
        let single = kmeans_1d(&values, k, Init::Density, 10);
        assert_eq!(single.centroids, [3.0]);
        assert_eq!(single.assignments, [0, 0, 0]);
    }
}

#[test]
fn kmeans_plus_plus_depends_only_on_the_seed() {
    let values = uniform(2000, 4);
    let a = initial_centroids(&values, 32, Init::KMeansPlusPlus { seed: 1 });
    assert_eq!(
        a,
        initial_centroids(&values, 32, Init::KMeansPlusPlus { seed: 1 })
    );
    assert_ne!(
        a,
        initial_centroids(&values, 32, Init::KMeansPlusPlus { seed: 2 })
    );
    assert_eq!(a.len(), 32);
    assert!(
        a.windows(2).all(|w| w[0] < w[1]),
        "distinct values, ascending"
    );
}

#[test]
fn linear_and_density_starts() {
    let values: Vec<f32> = (0..100).map(|i| i as f32).collect();
    // Linear: 5 points evenly over [0, 99].
    assert_eq!(
        initial_centroids(&values, 5, Init::Linear),
        [0.0, 24.75, 49.5, 74.25, 99.0]
    );
    // Density: ranks ⌊(i + ½)·100 / 4⌋ = 12, 37, 62, 87.
    assert_eq!(
        initial_centroids(&values, 4, Init::Density),
        [12.0, 37.0, 62.0, 87.0]
    );
}

/// Entropy in bits and mean squared error of rounding `values` to their
/// nearest of the ascending `centroids` (what a `.sqz` file stores).
fn nearest_rounding(values: &[f32], centroids: &[f32]) -> (f64, f64) {
    let mut counts = vec![0usize; centroids.len()];
    let mut squared = 0.0;
    for &v in values {
        let k = (0..centroids.len())
            .min_by(|&a, &b| {
                (v - centroids[a])
                    .abs()
                    .total_cmp(&(v - centroids[b]).abs())
            })
            .unwrap();
        counts[k] += 1;
        squared += f64::from(v - centroids[k]).powi(2);
    }
    let n = values.len() as f64;
    let entropy = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| -(c as f64 / n) * (c as f64 / n).log2())
        .sum();
    (entropy, squared / n)
}

#[test]
fn entropy_constrained_trades_squared_error_for_fewer_bits() {
    // Heavy-tailed like trained weights: a Gaussian cubed.
    let values: Vec<f32> = gaussian(20_000, 1.0, 5).iter().map(|v| v * v * v).collect();
    let sorted = SortedValues::new(&values);
    let plain = sorted.centroids(16, Init::Linear, 300);
    assert_eq!(
        sorted.entropy_constrained(16, Init::Linear, 300, 0.0),
        plain
    );
    let mut previous = nearest_rounding(&values, &plain);
    for weight in [0.5, 1.0, 2.0, 4.0] {
        let centroids = sorted.entropy_constrained(16, Init::Linear, 300, weight);
        assert!(
            centroids.len() <= 16 && centroids.len() >= 2,
            "{weight}: {centroids:?}"
        );
        assert!(
            centroids.windows(2).all(|p| p[0] < p[1]),
            "{weight}: {centroids:?}"
        );
        let (entropy, mse) = nearest_rounding(&values, &centroids);
        assert!(
            entropy < previous.0,
            "{weight}: {entropy} bits after {}",
            previous.0
        );
        assert!(mse > previous.1, "{weight}: mse {mse} after {}", previous.1);
        previous = (entropy, mse);
    }
    assert!(SortedValues::new(&[])
        .entropy_constrained(4, Init::Linear, 10, 1.0)
        .is_empty());
    // At most k distinct values keep their exact codebook.
    let few: Vec<f32> = values.iter().map(|v| (v * 2.0).round()).collect();
    let distinct = SortedValues::new(&few);
    let exact = distinct.centroids(256, Init::Linear, 300);
    assert!(exact.len() < 256);
    assert_eq!(
        distinct.entropy_constrained(256, Init::Linear, 300, 4.0),
        exact
    );
}
