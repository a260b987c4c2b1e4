//! Magnitude pruning (Deep Compression, step 1): the weights with the
//! smallest absolute values are set to zero.
//!
//! Two ways to pick them: per layer, with a sparsity target for each layer
//! ([`prune_layer`]), or with one magnitude threshold shared by all layers
//! ([`global_threshold`] + [`prune_below`]), which lets sensitive layers keep
//! more weights than robust ones.
//!
//! Conventions shared by all functions here:
//! - a weight "is zero" when it compares equal to `0.0` (so `-0.0` counts);
//!   zeros always stay zero and count towards the sparsity;
//! - NaN weights rank above every finite or infinite magnitude, so they are
//!   never pruned while a non-NaN weight remains (and [`prune_below`] never
//!   prunes them);
//! - `sparsity` is a fraction in `[0, 1]`; the caller validates it. Values
//!   above 1 act as 1, and values below 0 or NaN prune nothing.

/// How many weights a pruning call looked at and how many are zero after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneStats {
    /// Number of weights.
    pub total: usize,
    /// Number of weights equal to zero afterwards (pruned or already zero).
    pub zeros: usize,
}

impl PruneStats {
    /// Fraction of weights that are zero; 0 for an empty layer.
    pub fn sparsity(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.zeros as f64 / self.total as f64
        }
    }

    /// Number of weights that are not zero.
    pub fn nonzeros(&self) -> usize {
        self.total - self.zeros
    }
}

/// Zeroes the smallest-magnitude weights of one layer so that at least
/// `sparsity` of it is zero, and returns the resulting counts.
///
/// The number of zeros afterwards is `max(existing zeros, ⌈sparsity·n⌉)`,
/// where a product within floating-point rounding of an integer counts as
/// that integer (so 0.7 of 10 weights is 7, not 8). Existing zeros count
/// towards the target: pruning an already sparse layer only removes more,
/// and a target below the current sparsity removes nothing. Among weights of
/// equal magnitude the one with the lower index is pruned first, so the
/// result is fully deterministic. Runs in linear time without copying the weights.
pub fn prune_layer(weights: &mut [f32], sparsity: f64) -> PruneStats {
    let total = weights.len();
    let target = target_zeros(total, sparsity);
    let existing = count_zeros(weights);
    if target > existing {
        let remove = target - existing;
        let nonzero_keys = || {
            weights
                .iter()
                .filter(|w| **w != 0.0)
                .map(|w| magnitude_key(*w))
        };
        // The `remove` smallest (magnitude, index) pairs: every key below
        // the remove-th smallest, then the lowest indices of that key.
        let (key, below) = nth_smallest_key(nonzero_keys, remove - 1);
        let mut ties = remove - below;
        for w in weights.iter_mut().filter(|w| **w != 0.0) {
            let k = magnitude_key(*w);
            if k < key || (k == key && ties > 0) {
                ties -= usize::from(k == key);
                *w = 0.0;
            }
        }
    }
    PruneStats {
        total,
        zeros: target.max(existing),
    }
}

/// One magnitude threshold over all `layers` such that pruning every layer
/// with [`prune_below`] at this threshold makes at least `sparsity` of all
/// their weights (taken together) zero.
///
/// The threshold is the `⌈sparsity·N⌉`-th smallest magnitude over all `N`
/// weights (same rounding rule as [`prune_layer`]), zeros included, so the
/// overall target is met exactly unless several weights share the threshold
/// magnitude, in which case all of them are pruned. A zero target gives
/// `0.0`, which prunes nothing. If the target reaches into NaN weights the
/// threshold is `+∞` (every non-NaN weight goes).
pub fn global_threshold(layers: &[&[f32]], sparsity: f64) -> f32 {
    let total = layers.iter().map(|l| l.len()).sum();
    let target = target_zeros(total, sparsity);
    if target == 0 {
        return 0.0;
    }
    let keys = || {
        layers
            .iter()
            .flat_map(|l| l.iter().map(|w| magnitude_key(*w)))
    };
    let (key, _) = nth_smallest_key(keys, target - 1);
    let threshold = f32::from_bits(key);
    if threshold.is_nan() {
        f32::INFINITY
    } else {
        threshold
    }
}

/// Zeroes every weight whose magnitude is at or below `threshold` (as
/// returned by [`global_threshold`]) and returns the resulting counts.
/// A negative or NaN threshold prunes nothing.
pub fn prune_below(weights: &mut [f32], threshold: f32) -> PruneStats {
    for w in weights.iter_mut() {
        if w.abs() <= threshold {
            *w = 0.0;
        }
    }
    PruneStats {
        total: weights.len(),
        zeros: count_zeros(weights),
    }
}

/// The number of zeros a `sparsity` target asks for among `total` weights:
/// `⌈sparsity·total⌉`, except that a product within rounding error of an
/// integer is taken as that integer.
fn target_zeros(total: usize, sparsity: f64) -> usize {
    if sparsity.is_nan() || sparsity <= 0.0 {
        return 0;
    }
    if sparsity >= 1.0 {
        return total;
    }
    let exact = sparsity * total as f64;
    let nearest = exact.round();
    let count = if (exact - nearest).abs() <= 1e-9 * nearest.max(1.0) {
        nearest
    } else {
        exact.ceil()
    };
    (count as usize).min(total)
}

/// Number of weights equal to zero.
fn count_zeros(weights: &[f32]) -> usize {
    weights.iter().filter(|w| **w == 0.0).count()
}

/// The `n`-th smallest (from 0) of the keys `keys()` yields, and how many
/// keys are smaller than it; `u32::MAX` if there are at most `n` keys.
/// A two-pass radix selection (high 16 bits, then low 16 bits within the
/// chosen bucket): linear time and 256 KiB of counters whatever the number
/// of keys, where sorting or selecting would copy all of them (VGG-16's
/// first classifier layer: 103 M weights).
fn nth_smallest_key<I: Iterator<Item = u32>>(keys: impl Fn() -> I, n: usize) -> (u32, usize) {
    let bucket = |counts: &[usize], mut rank: usize| {
        for (b, &c) in counts.iter().enumerate() {
            if rank < c {
                return Some((b as u32, rank));
            }
            rank -= c;
        }
        None
    };
    let mut counts = vec![0usize; 1 << 16];
    keys().for_each(|k| counts[(k >> 16) as usize] += 1);
    let Some((high, rank)) = bucket(&counts, n) else {
        return (u32::MAX, keys().count());
    };
    let below_high: usize = counts[..high as usize].iter().sum();
    counts.iter_mut().for_each(|c| *c = 0);
    keys()
        .filter(|k| k >> 16 == high)
        .for_each(|k| counts[(k & 0xffff) as usize] += 1);
    let (low, _) = bucket(&counts, rank).expect("the bucket holds the rank");
    let below_low: usize = counts[..low as usize].iter().sum();
    ((high << 16) | low, below_high + below_low)
}

/// An integer that orders weights by magnitude: the bits of `|w|`. For
/// non-negative floats the bit pattern is monotonic in the value, and the
/// positive NaNs that `abs` produces sort above `+∞`.
fn magnitude_key(w: f32) -> u32 {
    w.abs().to_bits()
}
