//! One-dimensional k-means (Lloyd's algorithm) for weight sharing
//! (Deep Compression, step 2): the weights of a layer are replaced by `k`
//! shared values so that each weight can be stored as a small index.
//!
//! In one dimension every cluster of a Lloyd iteration is a contiguous run
//! of the sorted values, delimited by the midpoints between neighbouring
//! centroids. So the values are sorted once; each iteration then finds the
//! `k - 1` run boundaries by binary search and every cluster mean from
//! prefix sums, in `O(k log n)` instead of the generic `O(n k)`.
//! [`SortedValues`] keeps the sorted values for clustering at several `k`,
//! and offers the entropy-constrained variant
//! ([`SortedValues::entropy_constrained`]), whose clusters are still runs.
//!
//! Arithmetic is in `f64` and strictly sequential, so results are
//! deterministic and depend neither on the thread count nor on the order
//! of the input values.

use rayon::slice::ParallelSliceMut;

use crate::rng::SplitMix64;

/// Where the centroids start (Han et al., Section 3.2 compare the three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// `k` points evenly spaced over `[min, max]` of the values, ends
    /// included (the paper's default: it keeps centroids on the rare large
    /// weights).
    Linear,
    /// Quantiles of the empirical distribution: centroid `i` is the sorted
    /// value at rank `⌊(i + ½)·n / k⌋`, so centroids crowd where values are
    /// dense. Heavily repeated values can yield coinciding centroids, of
    /// which all but one then stay empty.
    Density,
    /// k-means++: the first centroid is a uniformly chosen value, each
    /// further one a value drawn with probability proportional to its
    /// squared distance to the nearest centroid chosen so far (D² sampling),
    /// using [`SplitMix64`] seeded with `seed`.
    KMeansPlusPlus { seed: u64 },
}

/// The result of [`kmeans_1d`].
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Shared values, strictly ascending unless an initialisation produced
    /// coinciding centroids (see [`Init::Density`]).
    pub centroids: Vec<f32>,
    /// For every input value, the index of its nearest centroid (ties go to
    /// the lower index).
    pub assignments: Vec<u32>,
    /// Number of centroid updates performed.
    pub iterations: usize,
}

impl Clustering {
    /// The input values with each one replaced by its centroid.
    pub fn quantized(&self) -> Vec<f32> {
        self.assignments
            .iter()
            .map(|&a| self.centroids[a as usize])
            .collect()
    }
}

/// Clusters `values` into at most `k` shared values with Lloyd's algorithm
/// started from `init`, for at most `max_iter` centroid updates.
///
/// Iteration stops as soon as an update leaves every assignment unchanged
/// (the clustering is then a fixed point: each centroid is the mean of its
/// values, each value is assigned to its nearest centroid) or after
/// `max_iter` updates; in both cases the returned assignments are the
/// nearest-centroid assignments of the returned centroids. A centroid whose
/// cluster becomes empty keeps its previous position (it may regain values
/// later).
///
/// If `values` holds at most `k` distinct values, the centroids are exactly
/// those distinct values (lossless quantization, no iteration) — fewer than
/// `k` of them. An empty input gives an empty clustering; `k = 0` is treated
/// as `k = 1`. Values must be finite (the caller validates weights): NaN or
/// infinite values do not make the function panic or loop, but they make
/// the centroids meaningless. At most `u32::MAX` centroids are supported.
pub fn kmeans_1d(values: &[f32], k: usize, init: Init, max_iter: usize) -> Clustering {
    if values.is_empty() {
        return Clustering {
            centroids: Vec::new(),
            assignments: Vec::new(),
            iterations: 0,
        };
    }
    let order = sorted_order(values);
    let sorted: Vec<f32> = order.iter().map(|&i| values[i]).collect();
    let (centroids, ends, iterations) = cluster(&sorted, k, init, max_iter, 0.0);
    let mut assignments = vec![0u32; values.len()];
    let mut begin = 0;
    for (cluster, &end) in ends.iter().enumerate() {
        for &i in &order[begin..end] {
            assignments[i] = cluster as u32;
        }
        begin = end;
    }
    Clustering {
        centroids: centroids.iter().map(|&c| c as f32).collect(),
        assignments,
        iterations,
    }
}

/// Values sorted once, to be clustered at several `k` without sorting
/// again: the allocation behind `--target-size` clusters every layer at
/// every bit width of its ladder. Only the centroids come out, so no
/// index order is kept: 4 bytes per value, against the 16 of the
/// (key, index) pairs [`kmeans_1d`] sorts to return assignments.
#[derive(Debug, Clone)]
pub struct SortedValues {
    /// Ascending in IEEE total order.
    sorted: Vec<f32>,
}

impl SortedValues {
    /// Sort `values` (on all threads; the order of equal values cannot
    /// differ, so neither can the result).
    pub fn new(values: &[f32]) -> Self {
        let mut keys: Vec<u32> = values.iter().map(|&v| total_order_key(v)).collect();
        keys.par_sort_unstable();
        SortedValues {
            sorted: keys.into_iter().map(from_total_order_key).collect(),
        }
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The centroids [`kmeans_1d`] returns for the same values and
    /// arguments, bit for bit.
    pub fn centroids(&self, k: usize, init: Init, max_iter: usize) -> Vec<f32> {
        self.entropy_constrained(k, init, max_iter, 0.0)
    }

    /// Entropy-constrained centroids (ECVQ; Chou, Lookabaugh & Gray 1989):
    /// from [`Self::centroids`], Lloyd iterations that assign each value to
    /// the centroid of least squared error plus `λ` times its code length
    /// `−log2(share)`, with `λ = weight ·` the mean squared error of the
    /// plain k-means solution: a bit of code length is worth `weight`
    /// times the mean squared error per value. Values then lean to the
    /// common centroids, clusters thin out in the tails and some empty out
    /// and are dropped, so the codes carry less entropy (fewer bits after
    /// Huffman coding) at some cost in squared error; at high rate the
    /// result tends to evenly spaced values, the best entropy-coded scalar
    /// quantizer.
    /// Ascending; no more than `k` values, possibly fewer. `weight = 0`
    /// gives [`Self::centroids`], and so do values with at most `k`
    /// distinct values: their exact, lossless codebook stays exact.
    pub fn entropy_constrained(
        &self,
        k: usize,
        init: Init,
        max_iter: usize,
        weight: f64,
    ) -> Vec<f32> {
        if self.sorted.is_empty() {
            return Vec::new();
        }
        let (centroids, _, _) = cluster(&self.sorted, k, init, max_iter, weight);
        centroids.iter().map(|&c| c as f32).collect()
    }
}

/// [`kmeans_1d`] on non-empty sorted values, followed with `weight > 0`
/// by [`SortedValues::entropy_constrained`]'s iterations: the centroids,
/// the end of each one's run of values and the number of plain centroid
/// updates. At most `k` distinct values are returned exactly, unpriced.
fn cluster(
    sorted: &[f32],
    k: usize,
    init: Init,
    max_iter: usize,
    weight: f64,
) -> (Vec<f64>, Vec<usize>, usize) {
    let k = k.max(1);
    if let Some((distinct, ends)) = distinct_runs(sorted, k) {
        return (distinct, ends, 0);
    }
    let prefix = prefix_sums(sorted);
    let start = starting_centroids(sorted, k, init);
    let (centroids, ends, iterations) = lloyd(sorted, &prefix, start, max_iter);
    if weight <= 0.0 {
        return (centroids, ends, iterations);
    }
    let lambda = weight * mean_squared_error(sorted, &centroids, &ends);
    let (centroids, ends) = ecvq(sorted, &prefix, centroids, ends, lambda, max_iter);
    (centroids, ends, iterations)
}

/// The centroids [`kmeans_1d`] starts Lloyd's iterations from, ascending,
/// in the `f64` precision it iterates in (exposed so that other k-means
/// implementations can be started from the same point). Meant for values
/// with more than `k` distinct values — otherwise [`kmeans_1d`] does not
/// iterate, and k-means++ may return fewer than `k` centroids. Empty input
/// gives no centroids; `k = 0` is treated as 1.
pub fn initial_centroids(values: &[f32], k: usize, init: Init) -> Vec<f64> {
    if values.is_empty() {
        return Vec::new();
    }
    starting_centroids(&SortedValues::new(values).sorted, k.max(1), init)
}

/// Indices of `values` in ascending order (IEEE total order; equal values
/// keep their index order).
fn sorted_order(values: &[f32]) -> Vec<usize> {
    let mut keyed: Vec<(u32, usize)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (total_order_key(*v), i))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Maps a float to an integer with the same order as [`f32::total_cmp`].
fn total_order_key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The float [`total_order_key`] maps to `key`.
fn from_total_order_key(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 {
        key & 0x7FFF_FFFF
    } else {
        !key
    })
}

/// If `sorted` holds at most `k` distinct values, those values and the end
/// of each one's run; otherwise `None` (found out without scanning further
/// than needed).
fn distinct_runs(sorted: &[f32], k: usize) -> Option<(Vec<f64>, Vec<usize>)> {
    let mut distinct = vec![f64::from(sorted[0])];
    let mut ends = Vec::new();
    for (i, &v) in sorted.iter().enumerate().skip(1) {
        if v != sorted[i - 1] {
            if distinct.len() == k {
                return None;
            }
            ends.push(i);
            distinct.push(f64::from(v));
        }
    }
    ends.push(sorted.len());
    Some((distinct, ends))
}

/// Starting centroids of sorted values, ascending (see [`Init`]).
fn starting_centroids(sorted: &[f32], k: usize, init: Init) -> Vec<f64> {
    let n = sorted.len();
    match init {
        Init::Linear => {
            let (min, max) = (f64::from(sorted[0]), f64::from(sorted[n - 1]));
            let steps = (k - 1).max(1) as f64;
            (0..k)
                .map(|i| min + (max - min) * (i as f64 / steps))
                .collect()
        }
        Init::Density => (0..k)
            .map(|i| {
                let rank = ((i as f64 + 0.5) * n as f64 / k as f64) as usize;
                f64::from(sorted[rank.min(n - 1)])
            })
            .collect(),
        Init::KMeansPlusPlus { seed } => kmeans_plus_plus(sorted, k, seed),
    }
}

/// k-means++ seeding (Arthur & Vassilvitskii 2007) by D² sampling; returns
/// the chosen values in ascending order.
fn kmeans_plus_plus(sorted: &[f32], k: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    let first = f64::from(sorted[rng.below(sorted.len() as u64) as usize]);
    let mut centroids = vec![first];
    let mut dist2: Vec<f64> = sorted
        .iter()
        .map(|&v| (f64::from(v) - first).powi(2))
        .collect();
    while centroids.len() < k {
        let total: f64 = dist2.iter().sum();
        let target = rng.next_f64() * total;
        // The first value whose cumulative weight exceeds the target; if
        // rounding lets the sum fall short, the last value of positive
        // weight.
        let mut cumulative = 0.0;
        let mut chosen = None;
        for (i, &d) in dist2.iter().enumerate() {
            if d > 0.0 {
                chosen = Some(i);
                cumulative += d;
                if cumulative > target {
                    break;
                }
            }
        }
        // No value of positive weight means every value is a centroid
        // already, impossible with more than k distinct values.
        let Some(i) = chosen else { break };
        let c = f64::from(sorted[i]);
        centroids.push(c);
        for (d, &v) in dist2.iter_mut().zip(sorted) {
            *d = d.min((f64::from(v) - c).powi(2));
        }
    }
    centroids.sort_by(f64::total_cmp);
    centroids
}

/// Lloyd iterations on sorted values (`prefix` their [`prefix_sums`]).
/// Returns the final centroids, the end (exclusive index into `sorted`) of
/// each centroid's run of values, and the number of centroid updates.
fn lloyd(
    sorted: &[f32],
    prefix: &[f64],
    mut centroids: Vec<f64>,
    max_iter: usize,
) -> (Vec<f64>, Vec<usize>, usize) {
    let mut ends = cluster_ends(sorted, &centroids);
    let mut iterations = 0;
    while iterations < max_iter {
        update_centroids(prefix, &ends, &mut centroids);
        iterations += 1;
        let next = cluster_ends(sorted, &centroids);
        if next == ends {
            break;
        }
        ends = next;
    }
    (centroids, ends, iterations)
}

/// Entropy-constrained Lloyd iterations from a clustering (`centroids`
/// and their runs' `ends`) with the code-length price `lambda` (see
/// [`SortedValues::entropy_constrained`]): clusters that empty out are
/// dropped. Stops when the runs no longer change or after `max_iter`
/// updates; returns the surviving centroids and their runs' ends.
fn ecvq(
    sorted: &[f32],
    prefix: &[f64],
    mut centroids: Vec<f64>,
    mut ends: Vec<usize>,
    lambda: f64,
    max_iter: usize,
) -> (Vec<f64>, Vec<usize>) {
    let n = sorted.len() as f64;
    for _ in 0..max_iter {
        (centroids, ends) = drop_empty(centroids, &ends);
        let mut begin = 0;
        let bits: Vec<f64> = ends
            .iter()
            .map(|&end| {
                let share = (end - begin) as f64 / n;
                begin = end;
                -share.log2()
            })
            .collect();
        // The value where the two neighbours' priced errors are equal:
        // the midpoint, moved towards the centroid of the longer code.
        let next = run_ends(sorted, centroids.len(), |j| {
            let (low, high) = (centroids[j], centroids[j + 1]);
            0.5 * (low + high) + lambda * (bits[j + 1] - bits[j]) / (2.0 * (high - low))
        });
        if next == ends {
            break;
        }
        ends = next;
        update_centroids(prefix, &ends, &mut centroids);
    }
    drop_empty(centroids, &ends)
}

/// The centroids with a nonempty run, and their runs' ends.
fn drop_empty(centroids: Vec<f64>, ends: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let mut begin = 0;
    let mut kept = (Vec::new(), Vec::new());
    for (c, &end) in centroids.into_iter().zip(ends) {
        if end > begin {
            kept.0.push(c);
            kept.1.push(end);
        }
        begin = end;
    }
    kept
}

/// Mean squared distance of the sorted values to their run's centroid.
fn mean_squared_error(sorted: &[f32], centroids: &[f64], ends: &[usize]) -> f64 {
    let mut begin = 0;
    let mut total = 0.0;
    for (&c, &end) in centroids.iter().zip(ends) {
        total += sorted[begin..end]
            .iter()
            .map(|&v| (f64::from(v) - c).powi(2))
            .sum::<f64>();
        begin = end;
    }
    total / sorted.len() as f64
}

/// `prefix[i]` = sum of the first `i` values, in `f64`.
fn prefix_sums(sorted: &[f32]) -> Vec<f64> {
    let mut prefix = Vec::with_capacity(sorted.len() + 1);
    let mut sum = 0.0;
    prefix.push(sum);
    for &v in sorted {
        sum += f64::from(v);
        prefix.push(sum);
    }
    prefix
}

/// Nearest-centroid assignment of sorted values to ascending centroids:
/// the run of centroid `j` ends after the last value at or below the
/// midpoint between centroids `j` and `j + 1` (a value exactly on a
/// midpoint goes to the lower centroid). Each search starts at the previous
/// end, so runs stay contiguous even if rounding disorders the centroids.
fn cluster_ends(sorted: &[f32], centroids: &[f64]) -> Vec<usize> {
    run_ends(sorted, centroids.len(), |j| {
        0.5 * (centroids[j] + centroids[j + 1])
    })
}

/// The ends of `runs` consecutive runs of the sorted values: run `j` ends
/// after the last value at or below `threshold(j)` (the last run at the
/// end). Each search starts at the previous end, so runs stay contiguous
/// (possibly empty) even if the thresholds are out of order.
fn run_ends(sorted: &[f32], runs: usize, threshold: impl Fn(usize) -> f64) -> Vec<usize> {
    let mut ends = Vec::with_capacity(runs);
    let mut begin = 0;
    for j in 0..runs.saturating_sub(1) {
        let t = threshold(j);
        begin += sorted[begin..].partition_point(|&v| f64::from(v) <= t);
        ends.push(begin);
    }
    ends.push(sorted.len());
    ends
}

/// Moves every centroid to the mean of its run; an empty run leaves its
/// centroid in place.
fn update_centroids(prefix: &[f64], ends: &[usize], centroids: &mut [f64]) {
    let mut begin = 0;
    for (c, &end) in centroids.iter_mut().zip(ends) {
        if end > begin {
            *c = (prefix[end] - prefix[begin]) / (end - begin) as f64;
        }
        begin = end;
    }
}
