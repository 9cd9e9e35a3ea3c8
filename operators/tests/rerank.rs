//! The moment reranker on the shipped SmolLM2-135M-Instruct: on a labelled set of query /
//! evidence pairs (a matching moment and a near miss or an unrelated one per query) it ranks
//! the matching moment above its pair and scores matches higher on average; moments without
//! evidence score neutral without the model; the prompt is what the module documents.

use std::path::PathBuf;
use std::time::Instant;

use argus_operators::llm::Llm;
use argus_operators::rerank::{prompt, relevance, relevance_batch, MomentEvidence, NEUTRAL};
use argus_operators::OperatorError;
use tch::Device;

fn smollm2() -> Llm {
    let root =
        std::env::var_os("ARGUS_MODEL_DIR").expect("ARGUS_MODEL_DIR is set by deploy/env.sh");
    Llm::load(
        &PathBuf::from(root).join("smollm2-135m-instruct-hf"),
        Device::Cpu,
    )
    .expect("deploy/setup.sh converts SmolLM2-135M-Instruct")
}

struct Case {
    query: &'static str,
    ocr: Vec<String>,
    tags: Vec<String>,
    caption: Option<&'static str>,
}

fn case(query: &'static str, ocr: &[&str], tags: &[&str], caption: Option<&'static str>) -> Case {
    Case {
        query,
        ocr: ocr.iter().map(|s| s.to_string()).collect(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        caption,
    }
}

/// Per query: a matching moment, one that does not match, and whether that one is a near
/// miss (same kind of scene, the detail asked for differs) rather than unrelated.
fn pairs() -> Vec<(Case, Case, bool)> {
    vec![
        (
            case(
                "truck at gate 3",
                &["GATE 3", "TRUCK"],
                &["pickup truck", "trailer truck"],
                None,
            ),
            case(
                "truck at gate 3",
                &["GATE 5"],
                &["sports car", "convertible"],
                None,
            ),
            true,
        ),
        (
            case(
                "delivery van at the loading dock",
                &["LOADING DOCK 4"],
                &["moving van"],
                Some("A white van backs up to the loading dock."),
            ),
            case(
                "delivery van at the loading dock",
                &[],
                &["park bench", "lakeside"],
                Some("An empty park with a bench by a lake."),
            ),
            false,
        ),
        (
            case(
                "person riding a bicycle",
                &[],
                &["mountain bike", "crash helmet"],
                Some("A man rides a bicycle across the street."),
            ),
            case(
                "person riding a bicycle",
                &[],
                &["minivan", "traffic light"],
                Some("Cars wait at a red light."),
            ),
            false,
        ),
        (
            case("exit sign", &["EXIT"], &["sliding door"], None),
            case("exit sign", &["ENTRANCE"], &["revolving door"], None),
            true,
        ),
        (
            case(
                "dog in the parking lot",
                &[],
                &["golden retriever", "parking meter"],
                Some("A dog walks between parked cars."),
            ),
            case(
                "dog in the parking lot",
                &[],
                &["tabby cat", "window screen"],
                Some("A cat sits on a windowsill."),
            ),
            false,
        ),
        (
            case(
                "forklift in the warehouse",
                &["AISLE 7"],
                &["forklift", "pallet"],
                Some("A forklift carries pallets between warehouse shelves."),
            ),
            case(
                "forklift in the warehouse",
                &["CHECKOUT"],
                &["grocery store", "shopping cart"],
                None,
            ),
            false,
        ),
        (
            case("bus number 42", &["42 DOWNTOWN"], &["trolleybus"], None),
            case("bus number 42", &["17 AIRPORT"], &["trolleybus"], None),
            true,
        ),
        (
            case(
                "fire in the kitchen",
                &[],
                &["stove", "Dutch oven"],
                Some("Smoke and flames rise from a stove in a kitchen."),
            ),
            case(
                "fire in the kitchen",
                &[],
                &["cleaver", "cutting board"],
                Some("A cook chops vegetables in a kitchen."),
            ),
            true,
        ),
        (
            case("ambulance", &["AMBULANCE"], &["ambulance"], None),
            case("ambulance", &["POLICE"], &["police van"], None),
            true,
        ),
        (
            case(
                "speed limit sign",
                &["SPEED LIMIT 30"],
                &["street sign"],
                None,
            ),
            case("speed limit sign", &["NO PARKING"], &["street sign"], None),
            true,
        ),
        (
            case(
                "boat on the river",
                &[],
                &["speedboat", "canoe"],
                Some("A small boat moves down the river."),
            ),
            case(
                "boat on the river",
                &[],
                &["freight car", "steel arch bridge"],
                Some("A freight train crosses a bridge."),
            ),
            false,
        ),
        (
            case(
                "man with an umbrella in the rain",
                &[],
                &["umbrella", "trench coat"],
                Some("A man holding an umbrella walks in the rain."),
            ),
            case(
                "man with an umbrella in the rain",
                &[],
                &["sandbar", "swimming trunks"],
                Some("People sunbathe on a sunny beach."),
            ),
            false,
        ),
        (
            case("pizza delivery", &["PIZZA"], &["pizza", "moped"], None),
            case("pizza delivery", &["PHARMACY"], &["pill bottle"], None),
            false,
        ),
        (
            case(
                "red car parked by the curb",
                &[],
                &["sports car"],
                Some("A red car parks by the curb."),
            ),
            case(
                "red car parked by the curb",
                &[],
                &["pickup truck"],
                Some("A blue truck drives past the curb."),
            ),
            true,
        ),
        (
            case(
                "train at platform 2",
                &["PLATFORM 2"],
                &["electric locomotive", "passenger car"],
                None,
            ),
            case(
                "train at platform 2",
                &["TICKETS"],
                &["vending machine"],
                None,
            ),
            false,
        ),
        (
            case(
                "someone using a laptop",
                &[],
                &["laptop", "desk"],
                Some("A woman types on a laptop at a desk."),
            ),
            case(
                "someone using a laptop",
                &[],
                &["tractor", "harvester"],
                Some("A tractor ploughs a field."),
            ),
            false,
        ),
    ]
}

impl Case {
    fn evidence(&self) -> MomentEvidence<'_> {
        MomentEvidence {
            ocr: &self.ocr,
            tags: &self.tags,
            caption: self.caption,
        }
    }
}

/// Share of (positive, negative) pairs across all queries with the positive scored higher.
fn auc(positives: &[f32], negatives: &[f32]) -> f64 {
    let wins: f64 = positives
        .iter()
        .flat_map(|p| {
            negatives.iter().map(move |n| match p.total_cmp(n) {
                std::cmp::Ordering::Greater => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Less => 0.0,
            })
        })
        .sum();
    wins / (positives.len() * negatives.len()) as f64
}

fn mean(scores: &[f32]) -> f32 {
    scores.iter().sum::<f32>() / scores.len() as f32
}

#[test]
fn matching_moments_outrank_near_misses_and_unrelated_ones() {
    let llm = smollm2();
    let pairs = pairs();
    let started = Instant::now();
    let (mut positives, mut negatives) = (Vec::new(), Vec::new());
    for (positive, negative, _) in &pairs {
        let scores = relevance_batch(
            &llm,
            positive.query,
            &[positive.evidence(), negative.evidence()],
        )
        .unwrap();
        positives.push(scores[0]);
        negatives.push(scores[1]);
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / (2 * pairs.len()) as f64;
    let ranked = positives
        .iter()
        .zip(&negatives)
        .filter(|(p, n)| p > n)
        .count();
    let near_ranked = pairs
        .iter()
        .zip(positives.iter().zip(&negatives))
        .filter(|((_, _, near), (p, n))| *near && p > n)
        .count();
    let near = pairs.iter().filter(|(_, _, near)| *near).count();
    let correct_at_half = positives.iter().filter(|&&s| s > NEUTRAL).count()
        + negatives.iter().filter(|&&s| s <= NEUTRAL).count();
    let auc = auc(&positives, &negatives);
    let (mean_positive, mean_negative) = (mean(&positives), mean(&negatives));
    eprintln!(
        "pairwise {ranked}/{} (near misses {near_ranked}/{near}), AUC {auc:.3}, accuracy at \
         0.5 {:.3}, mean positive {mean_positive:.3} negative {mean_negative:.3}, \
         {ms:.0} ms per candidate (baseline pass shared by the pair)\npositives {positives:.2?}\n\
         negatives {negatives:.2?}",
        pairs.len(),
        correct_at_half as f64 / (2 * pairs.len()) as f64,
    );
    // Measured on SmolLM2-135M: 16/16 pairs, AUC 0.867, means 0.874 and 0.626.
    assert!(ranked >= pairs.len() - 2, "{ranked}/{} pairs", pairs.len());
    assert!(auc >= 0.8, "AUC {auc}");
    assert!(
        mean_positive - mean_negative >= 0.15,
        "{mean_positive} vs {mean_negative}"
    );
    // The batch shares the baseline; one candidate alone scores the same.
    let (positive, _, _) = &pairs[0];
    let alone = relevance(&llm, positive.query, &positive.evidence()).unwrap();
    assert!(
        (alone - positives[0]).abs() < 1e-5,
        "{alone} vs {}",
        positives[0]
    );
}

#[test]
fn moments_without_evidence_are_neutral_and_queries_are_required() {
    let llm = smollm2();
    let blank = vec!["  ".to_string()];
    let nothing = MomentEvidence {
        ocr: &blank,
        tags: &[],
        caption: Some(" "),
    };
    assert!(nothing.is_empty());
    assert_eq!(
        relevance(&llm, "truck at gate 3", &nothing).unwrap(),
        NEUTRAL
    );
    let ocr = vec!["GATE 3".to_string()];
    let gate = MomentEvidence {
        ocr: &ocr,
        ..MomentEvidence::default()
    };
    let scores = relevance_batch(&llm, "truck at gate 3", &[nothing, gate]).unwrap();
    assert_eq!(scores[0], NEUTRAL);
    assert!(
        scores[1] > 0.0 && scores[1] < 1.0 && scores[1] != NEUTRAL,
        "{scores:?}"
    );
    assert!(matches!(
        relevance(&llm, " ", &gate),
        Err(OperatorError::InvalidInput(_))
    ));
}

#[test]
fn the_prompt_lists_each_kind_of_evidence_on_its_own_line() {
    let llm = smollm2();
    let ocr = vec!["GATE 3".to_string(), " ".to_string(), "TRUCK".to_string()];
    let tags = vec!["pickup truck".to_string(), "moving van".to_string()];
    let evidence = MomentEvidence {
        ocr: &ocr,
        tags: &tags,
        caption: Some(" A truck waits at the gate. "),
    };
    assert_eq!(
        prompt(&llm, &evidence).unwrap(),
        "<|im_start|>system\nWrite a short search query for the camera observations.<|im_end|>\n\
         <|im_start|>user\nCamera observations:\ntext on screen: \"GATE 3\", \"TRUCK\"\n\
         tags: pickup truck, moving van\ncaption: A truck waits at the gate.\n<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    assert!(prompt(&llm, &MomentEvidence::default())
        .unwrap()
        .contains("Camera observations:\n(none)\n<|im_end|>"));
}
