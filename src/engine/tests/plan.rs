//! Slot binding and blob lifetimes.

use formats::Op;

use super::{conv_op, model, node};
use crate::engine::plan::Plan;

#[test]
fn blobs_die_after_their_last_reader_and_reused_names_get_new_slots() {
    let nodes = vec![
        node("conv", conv_op(0, (1, 1), (0, 0), false), &["data"], "a"), // slot 1
        node("relu", Op::Relu, &["a"], "a"),                             // slot 2, in place
        node("left", Op::Relu, &["a"], "l"),                             // slot 3
        node("unused", Op::Relu, &["a"], "u"),                           // slot 4, never read
        node("right", Op::Relu, &["a"], "r"),                            // slot 5
        node("cat", Op::Concat, &["l", "r", "l"], "cat"),                // slot 6
    ];
    let plan = Plan::new(&model(nodes, vec![], 1, "cat").graph).unwrap();
    assert_eq!(
        plan.inputs,
        vec![vec![0], vec![1], vec![2], vec![2], vec![2], vec![3, 5, 3]]
    );
    assert_eq!(
        plan.frees,
        vec![vec![0], vec![1], vec![], vec![4], vec![2], vec![3, 5]]
    );
    assert_eq!((plan.result, plan.slot_count), (6, 7));
}
