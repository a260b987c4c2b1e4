//! Bad input to the training executor is an error, not a panic.

use formats::Op;

use crate::engine::grad::{forward_for_training, StepMemory};
use crate::engine::tests::{conv_op, model, node, Values};
use crate::engine::{EngineError, Tensor};

fn small_model() -> formats::Model {
    let mut v = Values::new(61);
    let nodes = vec![
        node("c", conv_op(0, (1, 1), (0, 0), true), &["data"], "c"),
        node("gap", Op::GlobalAvgPool, &["c"], "gap"),
    ];
    model(nodes, vec![v.layer("c", [2, 3, 1, 1])], 4, "gap")
}

#[test]
fn wrong_input_size_is_refused_before_running() {
    let m = small_model();
    let input = Values::new(62).tensor([1, 3, 5, 5]);
    assert!(matches!(
        forward_for_training(&m, &input, &mut StepMemory::default()),
        Err(EngineError::Input(_))
    ));
}

#[test]
fn output_gradient_of_the_wrong_shape_is_refused() {
    let m = small_model();
    let input = Values::new(63).tensor([2, 3, 4, 4]);
    for bad in [
        Tensor::zeros([1, 2, 1, 1]).unwrap(),
        Tensor {
            shape: [2, 2, 1, 1],
            data: vec![0.0; 3],
        },
    ] {
        let mut memory = StepMemory::default();
        let tape = forward_for_training(&m, &input, &mut memory).unwrap();
        let error = tape.backward(bad, &mut memory).unwrap_err();
        assert!(matches!(error, EngineError::Tensor(_)), "{error}");
    }
}
