//! Speed of one distillation training step at batch 32 on a 2-thread
//! pool, for both shipped models (SqueezeNet v1.1 at 224x224 and Han's
//! Deep Compression v1.0 at 227x227): the teacher's forward pass (an
//! inference [`Session`] built once, as fine-tuning does), the student's
//! forward pass with a tape, the distillation loss and the backward pass.
//! Run with `cargo bench --bench training`; data from `SQZ_SHARED`
//! (default `../shared`).
//!
//! Teacher and student are both the original model: the dense engine's
//! speed does not depend on the weights' values, so this times exactly what
//! fine-tuning a compressed student costs. Prints the median of several
//! runs for each part and for the whole step, the images per second of the
//! step, the memory the tape holds, and the backward time by kind of
//! operation (median per kind over the runs).

use std::collections::BTreeMap;
use std::time::Duration;

use compress::distill::distillation_loss;

use formats::{Model, Op};
use sqz::engine::{forward_for_training, Session, StepMemory, Tensor};

mod common;
use common::{batch_of, median, models, reference_images, shared_dir, timed};

const THREADS: usize = 2;
const BATCH: usize = 32;
const WARM_UP: usize = 1;
const TIMED: usize = 5;
const TEMPERATURE: f64 = 4.0;

/// Reads the time of one part from a step's times.
type Part = fn(&StepTimes) -> Duration;

/// Times of the parts of one step.
struct StepTimes {
    teacher: Duration,
    student: Duration,
    loss: Duration,
    backward: Duration,
    by_kind: BTreeMap<&'static str, Duration>,
    tape_bytes: usize,
}

fn main() {
    let shared = shared_dir();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("thread pool");
    for (name, side, load) in models() {
        let model = load(&shared);
        // The 4 preprocessed reference images of the model, repeated.
        let input = batch_of(&reference_images(&shared, name, side), BATCH, side);
        let teacher = Session::new(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        // One memory for all steps, as a training loop keeps it.
        let mut memory = StepMemory::default();
        let mut run = || pool.install(|| step(&teacher, &model, &input, &mut memory));
        (0..WARM_UP).for_each(|_| drop(run()));
        let runs: Vec<StepTimes> = (0..TIMED).map(|_| run()).collect();
        report(name, side, &runs);
    }
}

/// Print the medians of `runs` of one model: per part, per kind of
/// operation in the backward pass, and the tape's size.
fn report(name: &str, side: usize, runs: &[StepTimes]) {
    println!(
        "{name} ({side}x{side}), batch {BATCH}, {THREADS} threads: median of {TIMED} steps after {WARM_UP} warm-up"
    );
    let parts: [(&str, Part); 5] = [
        ("teacher forward", |t| t.teacher),
        ("student forward with tape", |t| t.student),
        ("distillation loss", |t| t.loss),
        ("backward", |t| t.backward),
        ("whole step", |t| {
            t.teacher + t.student + t.loss + t.backward
        }),
    ];
    for (part_name, part) in parts {
        let time = median(runs.iter().map(part).collect());
        println!(
            "  {part_name:<26} {:>8.1} ms {:>8.1} img/s",
            time.as_secs_f64() * 1e3,
            BATCH as f64 / time.as_secs_f64()
        );
    }
    println!("  tape holds {:.1} MB", runs[0].tape_bytes as f64 / 1e6);
    println!("  backward by operation:");
    for kind in runs[0].by_kind.keys() {
        let time = median(runs.iter().map(|t| t.by_kind[kind]).collect());
        println!("    {kind:<24} {:>8.1} ms", time.as_secs_f64() * 1e3);
    }
}

/// One training step, timed part by part.
fn step(teacher: &Session, model: &Model, input: &Tensor, memory: &mut StepMemory) -> StepTimes {
    let (teacher, teacher_time) = timed(|| teacher.run(input).expect("teacher forward"));
    let (tape, student) =
        timed(|| forward_for_training(model, input, memory).expect("student forward"));
    let tape_bytes = tape.saved_bytes();
    let classes = tape.output().shape[1];
    let (distill, loss) =
        timed(|| distillation_loss(&tape.output().data, &teacher.data, classes, TEMPERATURE));
    let d_output = Tensor::new(tape.output().shape, distill.student_gradient).expect("logit shape");
    let mut by_kind = BTreeMap::new();
    let (gradients, backward) = timed(|| {
        // Fine-tuning needs no gradient of the input batch.
        tape.backward_timed(d_output, memory, false, &mut |node, time| {
            *by_kind.entry(kind(&node.op)).or_insert(Duration::ZERO) += time;
        })
        .expect("backward")
    });
    drop(gradients);
    StepTimes {
        teacher: teacher_time,
        student,
        loss,
        backward,
        by_kind,
        tape_bytes,
    }
}

fn kind(op: &Op) -> &'static str {
    match op {
        Op::Conv(c) if c.relu => "convolution + ReLU",
        Op::Conv(_) => "convolution",
        Op::Relu => "ReLU",
        Op::Pool(_) => "pooling",
        Op::GlobalAvgPool => "global average pooling",
        Op::Concat => "concat",
        Op::Dropout => "dropout",
        Op::Add => "add",
        Op::Softmax => "softmax",
        Op::Flatten => "flatten",
        Op::Lrn(_) => "LRN",
        Op::Clip(_) => "clip",
    }
}
