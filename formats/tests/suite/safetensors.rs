//! The safetensors hand-off (`formats/SAFETENSORS.md`): round trips of both
//! real models and a hand-made one, weights rebuilt from changed shared
//! values as a training job hands them back, and clear refusals of every
//! kind of bad file.

use std::collections::{BTreeMap, HashMap};

use crate::shared_data::{squeezenet_v1_0, squeezenet_v1_1, synthetic_model};
use formats::safetensors::{read_safetensors, write_safetensors, METADATA_KEY};
use formats::{FormatError, Model};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// A tensor being edited: dtype, shape, little-endian bytes.
type Raw = (Dtype, Vec<usize>, Vec<u8>);

/// The tensors of a safetensors file and its metadata.
fn tensors(bytes: &[u8]) -> (BTreeMap<String, Raw>, Option<HashMap<String, String>>) {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let map = file
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec())))
        .collect();
    let (_, metadata) = SafeTensors::read_metadata(bytes).unwrap();
    (map, metadata.metadata().clone())
}

/// Serialize edited tensors, as another program would.
fn serialize(map: &BTreeMap<String, Raw>, metadata: Option<HashMap<String, String>>) -> Vec<u8> {
    let views = map
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views, metadata).unwrap()
}

/// `write_safetensors(model)` with `edit` applied to its tensors.
fn edited(model: &Model, edit: impl FnOnce(&mut BTreeMap<String, Raw>)) -> Vec<u8> {
    let (mut map, metadata) = tensors(&write_safetensors(model).unwrap());
    edit(&mut map);
    serialize(&map, metadata)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Equal weights (`-0.0 == 0.0`: a pruned weight comes back as `+0.0`).
fn assert_same_values(a: &Model, b: &Model) {
    assert_eq!(a.graph, b.graph);
    assert_eq!(a.preprocess, b.preprocess);
    for (x, y) in a.layers.iter().zip(&b.layers) {
        assert_eq!((&x.name, x.shape), (&y.name, y.shape));
        assert_eq!(x.weights, y.weights, "layer {}", x.name);
        assert_eq!(x.bias, y.bias, "layer {}", x.name);
    }
}

#[test]
fn both_real_models_round_trip() {
    let han = squeezenet_v1_0();
    let bytes = write_safetensors(&han).unwrap();
    assert_eq!(bytes, write_safetensors(&han).unwrap(), "deterministic");
    let (map, metadata) = tensors(&bytes);
    // Han's layers are weight-shared (at most 256 values): all have codes.
    for layer in &han.layers {
        assert!(map.contains_key(&format!("{}.codes", layer.name)));
    }
    let stored = &metadata.unwrap()[METADATA_KEY];
    assert!(stored.contains("\"format_version\":1"), "{stored}");
    assert_same_values(&read_safetensors(&bytes, han.clone()).unwrap(), &han);

    // v1.1 is not weight-shared: dense weights and masks, and back bit for bit.
    let v11 = squeezenet_v1_1();
    let bytes = write_safetensors(&v11).unwrap();
    let (map, _) = tensors(&bytes);
    assert!(!map.contains_key(&format!("{}.codes", v11.layers[25].name)));
    let back = read_safetensors(&bytes, v11.clone()).unwrap();
    assert_eq!(back, v11);
}

#[test]
fn changed_shared_values_rebuild_the_weights_with_codes_and_mask_fixed() {
    // What a PyTorch job hands back: shared values trained, no weight
    // tensor, no metadata.
    let han = squeezenet_v1_0();
    let (mut map, _) = tensors(&write_safetensors(&han).unwrap());
    for layer in &han.layers {
        map.remove(&format!("{}.weight", layer.name));
        let shared = map
            .get_mut(&format!("{}.shared_values", layer.name))
            .unwrap();
        let scaled: Vec<f32> = f32s(&shared.2).iter().map(|v| v * 1.5).collect();
        shared.2 = f32_bytes(&scaled);
    }
    let back = read_safetensors(&serialize(&map, None), han.clone()).unwrap();
    for (orig, new) in han.layers.iter().zip(&back.layers) {
        let expected: Vec<f32> = orig.weights.iter().map(|w| w * 1.5).collect();
        assert_eq!(new.weights, expected, "layer {}", orig.name);
    }
}

#[test]
fn the_hand_made_model_round_trips() {
    // Negative zero, a subnormal and the largest float among the weights.
    let model = synthetic_model(1);
    let bytes = write_safetensors(&model).unwrap();
    assert_same_values(&read_safetensors(&bytes, model.clone()).unwrap(), &model);
}

/// The error reading `bytes` onto `graph` gives, as text.
fn refusal(bytes: &[u8], graph: &Model) -> String {
    match read_safetensors(bytes, graph.clone()) {
        Ok(_) => panic!("accepted a bad file"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_files_and_absurd_header_lengths_are_refused() {
    let model = synthetic_model(1);
    let bytes = write_safetensors(&model).unwrap();
    for cut in 0..bytes.len() {
        let e = read_safetensors(&bytes[..cut], model.clone()).unwrap_err();
        assert!(
            matches!(e, FormatError::Truncated(_) | FormatError::Invalid(_)),
            "{e}"
        );
    }
    for header in [u64::MAX, 1 << 40, bytes.len() as u64] {
        let mut bad = bytes.clone();
        bad[..8].copy_from_slice(&header.to_le_bytes());
        let e = refusal(&bad, &model);
        assert!(e.contains(&format!("header of {header} bytes")), "{e}");
    }
    let mut bad = bytes.clone();
    bad[8] = b'[';
    assert!(refusal(&bad, &model).contains("not a readable safetensors file"));
}

#[test]
fn tensors_that_do_not_fit_the_graph_are_refused() {
    let model = synthetic_model(1);
    let bytes = write_safetensors(&model).unwrap();

    let mut reshaped = model.clone();
    reshaped.layers[1].shape = [2, 8, 1, 1];
    reshaped.layers[1].weights.truncate(16);
    reshaped.layers[1].bias.truncate(2);
    let e = refusal(&bytes, &reshaped);
    assert!(
        e.contains("b.bias has shape [4], the graph's layer needs [2]"),
        "{e}"
    );

    let mut renamed = model.clone();
    renamed.layers[2].name = "classifier".into();
    let e = refusal(&bytes, &renamed);
    assert!(
        e.contains("tensor fc.") && e.contains("belongs to no layer"),
        "{e}"
    );

    let missing = edited(&model, |m| {
        m.remove("a.bias");
    });
    assert!(refusal(&missing, &model).contains("missing tensor a.bias"));

    let no_weights = edited(&model, |m| {
        for s in ["weight", "codes", "shared_values"] {
            m.remove(&format!("b.{s}"));
        }
    });
    assert!(refusal(&no_weights, &model).contains("missing tensor b.weight"));

    let half = edited(&model, |m| {
        m.remove("b.mask");
    });
    assert!(refusal(&half, &model).contains("come together"));

    let wrong_dtype = edited(&model, |m| {
        let bias = m.get_mut("a.bias").unwrap();
        bias.0 = Dtype::I32;
    });
    let e = refusal(&wrong_dtype, &model);
    assert!(e.contains("a.bias is I32, expected one of [F32]"), "{e}");
}

#[test]
fn inconsistent_masks_codes_and_weights_are_refused() {
    let model = synthetic_model(1);
    let set = |name: &str, index: usize, value: u8| {
        edited(&model, |m| m.get_mut(name).unwrap().2[index] = value)
    };
    let e = refusal(&set("fc.codes", 5, 200), &model);
    assert!(e.contains("code 200 but only"), "{e}");
    let e = refusal(&set("fc.mask", 5, 2), &model);
    assert!(e.contains("a mask is 0 or 1"), "{e}");
    // A weight that disagrees with its code: the low byte of weight[5].
    let changed = edited(&model, |m| {
        let weight = m.get_mut("fc.weight").unwrap();
        let mut values = f32s(&weight.2);
        values[5] += 1.0;
        weight.2 = f32_bytes(&values);
    });
    let e = refusal(&changed, &model);
    assert!(e.contains("fc: weight[5]"), "{e}");
    // Without codes, a weight where the mask is 0.
    let stray = edited(&model, |m| {
        m.remove("fc.codes");
        m.remove("fc.shared_values");
        m.get_mut("fc.mask").unwrap().2[5] = 0;
    });
    let e = refusal(&stray, &model);
    assert!(e.contains("1 nonzero weights where the mask is 0"), "{e}");
}

#[test]
fn a_newer_layout_is_refused() {
    let model = synthetic_model(1);
    let (map, _) = tensors(&write_safetensors(&model).unwrap());
    let metadata = HashMap::from([(
        METADATA_KEY.to_string(),
        "{\"format_version\":2}".to_string(),
    )]);
    let e = refusal(&serialize(&map, Some(metadata)), &model);
    assert!(e.contains("layout version 2"), "{e}");
}
