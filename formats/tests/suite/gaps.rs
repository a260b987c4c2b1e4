//! Sparse positions as gap symbols: the coding rule by hand-worked
//! examples, round trips, and rejection of malformed gap streams.

use formats::sqz::coding::{
    decode_positions, encode_positions, encode_stream, gaps_to_positions, positions_to_gaps,
    GAP_ALPHABETS,
};
use proptest::prelude::*;

/// Strictly increasing positions below `len`, from a keep-mask.
fn positions_strategy() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (1usize..5000, 0.0f64..1.0).prop_flat_map(|(len, density)| {
        prop::collection::vec(prop::bool::weighted(density), len).prop_map(move |mask| {
            let positions = mask
                .iter()
                .enumerate()
                .filter(|(_, keep)| **keep)
                .map(|(i, _)| i)
                .collect();
            (len, positions)
        })
    })
}

proptest! {
    #[test]
    fn gaps_round_trip((len, positions) in positions_strategy(), alphabet in 2u32..=300) {
        let gaps = positions_to_gaps(&positions, alphabet);
        prop_assert!(gaps.iter().all(|&g| g < alphabet));
        prop_assert_eq!(gaps.iter().filter(|&&g| g < alphabet - 1).count(), positions.len());
        prop_assert_eq!(gaps.last().is_some_and(|&g| g == alphabet - 1), false);
        prop_assert_eq!(gaps_to_positions(&gaps, alphabet, len).ok(), Some(positions));
    }

    #[test]
    fn encoded_positions_round_trip_at_the_best_alphabet((len, positions) in positions_strategy()) {
        let coded = encode_positions(&positions, len);
        prop_assert!(GAP_ALPHABETS.contains(&coded.alphabet));
        prop_assert_eq!(decode_positions(&coded, len).ok(), Some(positions.clone()));
        // No other candidate alphabet takes fewer bytes in the file.
        let size = coded.stored_bytes().total();
        for other in GAP_ALPHABETS {
            let other_coded = encode_stream(&positions_to_gaps(&positions, other), other);
            prop_assert!(size <= other_coded.stored_bytes().total());
        }
    }

    #[test]
    fn arbitrary_gap_streams_never_panic(
        gaps in prop::collection::vec(0u32..20, 0..200),
        alphabet in 0u32..20,
        len in 0usize..2000,
    ) {
        if let Ok(positions) = gaps_to_positions(&gaps, alphabet, len) {
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(positions.iter().all(|&p| p < len));
            prop_assert_eq!(positions_to_gaps(&positions, alphabet), gaps);
        }
    }
}

#[test]
fn gaps_follow_the_relative_index_rule() {
    // Alphabet 4: symbol 3 skips 3 positions; gap g = p_i - p_{i-1} - 1.
    let cases: [(&[usize], &[u32]); 8] = [
        (&[], &[]),
        (&[0], &[0]),
        (&[2], &[2]),       // gap A-2
        (&[3], &[3, 0]),    // gap A-1: one skip, then an entry right there
        (&[4], &[3, 1]),    // gap A
        (&[6], &[3, 3, 0]), // gap 2(A-1)
        (&[0, 1, 2], &[0, 0, 0]),
        (&[1, 5, 9], &[1, 3, 0, 3, 0]),
    ];
    for (positions, gaps) in cases {
        assert_eq!(
            positions_to_gaps(positions, 4),
            gaps,
            "positions {positions:?}"
        );
        assert_eq!(gaps_to_positions(gaps, 4, 10).unwrap(), positions);
    }
}

#[test]
fn extreme_positions_round_trip() {
    let len = 1_000_000;
    for alphabet in [2, 4, 16, 256] {
        for positions in [
            vec![],
            vec![0],
            vec![len - 1],
            vec![0, len - 1],
            vec![len / 2, len / 2 + 1],
        ] {
            let gaps = positions_to_gaps(&positions, alphabet);
            assert_eq!(gaps_to_positions(&gaps, alphabet, len).unwrap(), positions);
            let coded = encode_positions(&positions, len);
            assert_eq!(decode_positions(&coded, len).unwrap(), positions);
        }
    }
}

#[test]
fn long_gaps_pick_the_best_alphabet_too() {
    // Gaps from 0 to far beyond the 4096 the encoder counts by value.
    let mut positions = Vec::new();
    let mut next = 0;
    for i in 0..300usize {
        next += (i * i * 37) % 20_011;
        positions.push(next);
        next += 1;
    }
    let len = next + 5;
    let coded = encode_positions(&positions, len);
    assert_eq!(decode_positions(&coded, len).unwrap(), positions);
    let best = GAP_ALPHABETS
        .iter()
        .map(|&a| {
            encode_stream(&positions_to_gaps(&positions, a), a)
                .stored_bytes()
                .total()
        })
        .min()
        .unwrap();
    assert_eq!(coded.stored_bytes().total(), best);
}

/// Asserts that `gaps` over `alphabet` in a layer of `len` weights is
/// rejected with a message containing `needle`.
#[track_caller]
fn assert_rejected(gaps: &[u32], alphabet: u32, len: usize, needle: &str) {
    match gaps_to_positions(gaps, alphabet, len) {
        Err(e) => assert!(e.to_string().contains(needle), "{e} lacks {needle:?}"),
        Ok(positions) => panic!("expected {needle:?}, got positions {positions:?}"),
    }
}

#[test]
fn malformed_gap_streams_are_rejected() {
    assert_rejected(&[0], 1, 10, "gap alphabet 1 is below 2");
    assert_rejected(
        &[4],
        4,
        10,
        "symbol 4 at index 0 is outside the alphabet of 4",
    );
    assert_rejected(
        &[3, 3, 3, 1],
        4,
        10,
        "position 10 lies outside a layer of 10 weights",
    );
    assert_rejected(&[0], 4, 0, "position 0 lies outside a layer of 0 weights");
    assert_rejected(&[0, 3], 4, 10, "ends with skip symbols");
}
