//! Whether a question rule fires: the LLM's yes or no weighed against evidence the service
//! can check on the chunk.
//!
//! SmolLM2-135M's yes/no is close to chance (the rerank work measured an AUC of 0.40–0.59),
//! so a question rule cannot rest on it. A question names what it is about, and each of
//! those things can be checked against what perception measured:
//!
//! - **on-screen text** (the question mentions a sign, text, a screen, ...): the chunk's OCR
//!   lines. With words to look for ("a *wet floor* warning sign"), the share of them found
//!   on screen (`text_match`, one misread letter forgiven as moment search does) and the
//!   embedding similarity of the question to the best frame's text (`embedding`, the moment
//!   index's all-MiniLM-L6-v2); without ("is there text on screen?"), whether any line was
//!   read (`ocr`).
//! - **objects** (it names people, cars, vans, ...): whether the objects stage tracked that
//!   class in the chunk (`objects`), when it ran.
//! - **motion** (moving, walking, ...): the largest share of the view that changed
//!   (`motion`).
//! - anything else: the similarity of the question to all the chunk's observation lines and
//!   the share of its words found in them (`embedding`, `text_match`). These only lean: they
//!   never decide alone.
//!
//! Each check says yes or no, decisively or only leaning ([`Says`]). An object or motion
//! check only leans yes when the question has words no check looked for ("is a vehicle
//! *blocking the gate*?"). A question about
//! several things needs all of them (a person *and* motion), so the checks combine as an
//! AND: any decisive no is a no, all decisive yeses are a yes. The rule then fires when the
//! evidence alone is decisive, or when it leans yes and the LLM says yes: they agree. The
//! LLM is asked only then (or when nothing could be checked, where only a yes the controller
//! accepted in the first round fires). [`decide`] reports which evidence decided it.

use std::collections::BTreeMap;

use super::chunk::Chunk;
use super::words::{is_stopword, query_terms, term_matches, words};
use crate::messages::DecidedBy;
use crate::objects::counting::classes_named;

/// An embedding similarity at least this high says the question and the line are about the
/// same thing. all-MiniLM-L6-v2 gives a question and the sign it asks about 0.55–0.8 ("is
/// there a wet floor warning sign?" / "WET FLOOR CAUTION": 0.70), a sign sharing one word
/// with it 0.3–0.4 ("WET PAINT": 0.38), and other signs below 0.25.
const SIMILAR: f32 = 0.5;
/// Below this, the line is about something else.
const DISSIMILAR: f32 = 0.3;

/// The share of the view that must change, in at least two frames of a chunk, for
/// "moving": the smallest motion the alert tests' moving ball makes (0.2 %), above the
/// flicker of a still, compressed picture.
const MOVING: f32 = 0.002;

/// Words that say the question is about on-screen text, not what the text says.
const TEXT_WORDS: &[&str] = &[
    "sign",
    "signs",
    "signage",
    "text",
    "screen",
    "written",
    "writing",
    "word",
    "words",
    "say",
    "says",
    "saying",
    "read",
    "reads",
    "notice",
    "label",
    "banner",
    "poster",
    "display",
    "displayed",
    "caption",
    "warning",
    "caution",
    "lettering",
];

/// Words that ask about movement.
const MOTION_WORDS: &[&str] = &[
    "moving", "move", "moves", "moved", "motion", "movement", "walking", "walk", "walks",
    "running", "run", "driving", "drive", "passing", "crossing",
];

/// Words that ask for a person without naming one.
const SOMEONE: &[&str] = &[
    "anyone", "anybody", "someone", "somebody", "everyone", "nobody",
];

/// Words of a yes/no question that say nothing about what it is about.
const FRAMING: &[&str] = &[
    "is",
    "are",
    "was",
    "were",
    "does",
    "do",
    "did",
    "has",
    "have",
    "can",
    "there",
    "any",
    "anything",
    "something",
    "visible",
    "seen",
    "see",
    "shown",
    "showing",
    "show",
    "present",
    "currently",
    "now",
    "right",
    "here",
    "view",
    "camera",
    "scene",
    "picture",
    "image",
    "frame",
    "be",
    "being",
    "some",
    "one",
];

/// What a question rule asks about, from its words.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    /// COCO classes it names (any one of them will do).
    pub classes: Vec<&'static str>,
    pub motion: bool,
    /// It asks about on-screen text.
    pub text: bool,
    /// The words to look for: the question's words less framing, text, motion and class
    /// words.
    pub terms: Vec<String>,
}

impl Topics {
    pub fn of(question: &str) -> Self {
        let all = words(question);
        let mut classes: Vec<&'static str> = Vec::new();
        let mut add = |named: &[&'static str]| {
            for class in named {
                if !classes.contains(class) {
                    classes.push(class);
                }
            }
        };
        for word in &all {
            if let Some(named) = classes_named(word) {
                add(named);
            } else if SOMEONE.contains(&word.as_str()) {
                add(&["person"]);
            }
        }
        let has = |list: &[&str]| all.iter().any(|w| list.contains(&w.as_str()));
        let terms = query_terms(question)
            .into_iter()
            .filter(|w| {
                !is_stopword(w)
                    && ![TEXT_WORDS, MOTION_WORDS, SOMEONE, FRAMING]
                        .iter()
                        .any(|list| list.contains(&w.as_str()))
                    && classes_named(w).is_none()
            })
            .collect();
        Self {
            classes,
            motion: has(MOTION_WORDS),
            text: has(TEXT_WORDS),
            terms,
        }
    }
}

impl Topics {
    /// Whether something the question is about can be checked on the chunk (else it is
    /// compared with the observation lines).
    pub fn checkable(&self, chunk: &Chunk) -> bool {
        self.text || self.motion || (!self.classes.is_empty() && chunk.tracks_objects())
    }
}

/// What one check says about the question on the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Says {
    No,
    LeansNo,
    LeansYes,
    Yes,
}

/// One piece of checked evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `ocr`, `text_match`, `embedding`, `objects` or `motion`.
    pub evidence: &'static str,
    /// What it measured, 0..1: OCR confidence, share of words found, cosine similarity,
    /// mean detector score, share of the view that moved.
    pub score: f32,
    pub says: Says,
    pub detail: String,
}

impl Check {
    fn new(evidence: &'static str, score: f32, says: Says, detail: String) -> Self {
        Self {
            evidence,
            score: score.clamp(0.0, 1.0),
            says,
            detail,
        }
    }
}

/// Similarities of the question's embedding, when the embedder is running.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Similarity {
    /// To the best of what the chunk's frames showed on screen ([`screens`]).
    pub ocr: Option<f32>,
    /// To the best of the chunk's observation lines (what the LLM is shown).
    pub observations: Option<f32>,
}

/// The chunk's distinct OCR lines, each with its best confidence, in first-seen order.
pub fn ocr_lines(chunk: &Chunk) -> Vec<(String, f32)> {
    let mut lines: Vec<(String, f32)> = Vec::new();
    for (text, score) in chunk.frames.iter().flat_map(|f| &f.ocr) {
        match lines.iter_mut().find(|(seen, _)| seen == text) {
            Some((_, best)) => *best = best.max(*score),
            None => lines.push((text.clone(), *score)),
        }
    }
    lines
}

/// What each frame showed on screen, its OCR lines joined (PP-OCR reads a sign's words as
/// lines of their own: "WET", "FLOOR", "CAUTION"), distinct, in first-seen order: what the
/// question's embedding is compared with.
pub fn screens(chunk: &Chunk) -> Vec<String> {
    let mut screens: Vec<String> = Vec::new();
    for frame in &chunk.frames {
        let text: Vec<&str> = frame.ocr.iter().map(|(text, _)| text.as_str()).collect();
        let text = text.join(" ");
        if !text.is_empty() && !screens.contains(&text) {
            screens.push(text);
        }
    }
    screens
}

/// Checks `topics` against the chunk. `observations` are the lines the LLM is shown (for
/// questions about nothing checkable); `similarity` comes from the embedder, when running.
pub fn checks(
    topics: &Topics,
    chunk: &Chunk,
    observations: &[String],
    similarity: Similarity,
) -> Vec<Check> {
    let mut checks = Vec::new();
    if topics.text {
        checks.extend(text_checks(topics, &ocr_lines(chunk), similarity.ocr));
    }
    if !topics.classes.is_empty() && chunk.tracks_objects() {
        checks.push(object_check(&topics.classes, chunk));
    }
    if topics.motion {
        // The second largest change: one changed frame is a cut, a sign switched or a
        // light flicking, not something moving.
        let mut levels: Vec<f32> = chunk.frames.iter().map(|f| f.motion.level).collect();
        levels.sort_by(|a, b| b.total_cmp(a));
        let level = levels.get(1).copied().unwrap_or(0.0);
        let says = if level >= MOVING { Says::Yes } else { Says::No };
        let detail = format!(
            "motion in {} frames (the second largest: {:.1}% of the view)",
            levels.iter().filter(|l| **l >= MOVING).count(),
            level * 100.0
        );
        checks.push(Check::new("motion", level, says, detail));
    }
    // Words the checks did not look for ("is a vehicle *blocking* the *gate*?"): a vehicle
    // tracked is needed, not enough. Only a text question looks for its words.
    if !topics.text && !topics.terms.is_empty() {
        for check in &mut checks {
            if check.says == Says::Yes {
                check.says = Says::LeansYes;
            }
        }
    }
    if !topics.checkable(chunk) {
        checks.extend(general_checks(
            topics,
            observations,
            similarity.observations,
        ));
    }
    checks
}

/// On-screen text: any line at all, or the question's words among the lines.
fn text_checks(topics: &Topics, lines: &[(String, f32)], similarity: Option<f32>) -> Vec<Check> {
    let Some((best_line, best_score)) = lines.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return vec![Check::new("ocr", 0.0, Says::No, "no text on screen".into())];
    };
    if topics.terms.is_empty() {
        let detail = format!("text on screen: \"{best_line}\"");
        return vec![Check::new("ocr", *best_score, Says::Yes, detail)];
    }
    let on_screen: Vec<String> = lines.iter().flat_map(|(text, _)| words(text)).collect();
    let mut checks = vec![word_check(&topics.terms, &on_screen, "on screen", true)];
    if let Some(similarity) = similarity {
        let says = if similarity >= SIMILAR {
            Says::Yes
        } else if similarity >= DISSIMILAR {
            Says::LeansYes
        } else {
            Says::No
        };
        let detail = format!("question to on-screen text: cosine {similarity:.2}");
        checks.push(Check::new("embedding", similarity, says, detail));
    }
    checks
}

/// The share of `terms` found among `found_in`: all of them is a yes, half a lean, none a
/// no (`decisive`: otherwise only leaning).
fn word_check(terms: &[String], found_in: &[String], place: &str, decisive: bool) -> Check {
    let found: Vec<&String> = (terms.iter())
        .filter(|term| found_in.iter().any(|word| term_matches(term, word)))
        .collect();
    let share = found.len() as f32 / terms.len() as f32;
    let says = match (share, decisive) {
        (s, true) if s >= 1.0 => Says::Yes,
        (s, _) if s >= 0.5 => Says::LeansYes,
        (s, true) if s <= 0.0 => Says::No,
        _ => Says::LeansNo,
    };
    let found: Vec<&str> = found.iter().map(|w| w.as_str()).collect();
    let detail = format!(
        "{}/{} question words {place}{}",
        found.len(),
        terms.len(),
        if found.is_empty() {
            String::new()
        } else {
            format!(" ({})", found.join(", "))
        }
    );
    Check::new("text_match", share, says, detail)
}

/// Whether the objects stage tracked any of `classes` in the chunk: how many at once, at
/// most.
fn object_check(classes: &[&'static str], chunk: &Chunk) -> Check {
    let (mut most, mut scores): (BTreeMap<&str, usize>, Vec<f32>) = Default::default();
    for objects in chunk.frames.iter().flat_map(|f| &f.objects) {
        for class in classes {
            let of_class: Vec<f32> = (objects.tracks.iter())
                .filter(|o| o.class == *class)
                .map(|o| o.score)
                .collect();
            scores.extend(&of_class);
            let at_once = most.entry(class).or_default();
            *at_once = (*at_once).max(of_class.len());
        }
    }
    let seen: Vec<String> = (most.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(class, n)| format!("{n} × {class}"))
        .collect();
    if seen.is_empty() {
        let detail = format!("no {} tracked", classes.join(" or "));
        return Check::new("objects", 0.0, Says::No, detail);
    }
    let mean = scores.iter().sum::<f32>() / scores.len() as f32;
    let detail = format!("tracked {} at once", seen.join(", "));
    Check::new("objects", mean, Says::Yes, detail)
}

/// A question about nothing measured: how close it is to the observations. Leans only.
fn general_checks(topics: &Topics, observations: &[String], similarity: Option<f32>) -> Vec<Check> {
    let mut checks = Vec::new();
    if !topics.terms.is_empty() {
        let observed: Vec<String> = observations.iter().flat_map(|l| words(l)).collect();
        checks.push(word_check(&topics.terms, &observed, "observed", false));
    }
    if let Some(similarity) = similarity {
        let says = if similarity >= SIMILAR {
            Says::LeansYes
        } else {
            Says::LeansNo
        };
        let detail = format!("question to observations: cosine {similarity:.2}");
        checks.push(Check::new("embedding", similarity, says, detail));
    }
    checks
}

/// What the checks say together (all of them must hold), `None` when nothing was checked.
pub fn evidence_says(checks: &[Check]) -> Option<Says> {
    let says = checks.iter().map(|c| c.says);
    let least = says.clone().min()?;
    Some(match least {
        Says::No | Says::LeansNo => least,
        // Every check at least leans yes: decisive only when every one is.
        _ if says.clone().all(|s| s == Says::Yes) => Says::Yes,
        _ => Says::LeansYes,
    })
}

/// Whether the LLM must be asked: the evidence leans yes, or nothing could be checked.
pub fn needs_llm(checks: &[Check]) -> bool {
    matches!(evidence_says(checks), None | Some(Says::LeansYes))
}

/// The LLM's answer to a question rule on a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAnswer {
    pub yes: bool,
    /// The yes answer's share of the round's support (the controller's), 0..1.
    pub support: f32,
    /// The controller accepted the first round's answer (no correction was needed).
    pub accepted: bool,
}

impl LlmAnswer {
    /// The rule before evidence was checked: any yes, accepted or corrected.
    pub fn fires_alone(&self) -> bool {
        self.yes
    }
}

/// Whether a question rule fires on a chunk, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub fire: bool,
    pub decided_by: Vec<DecidedBy>,
    /// The LLM's support when it was asked and agreed; else the mean score of the deciding
    /// checks (motion excluded: a share of the view is not a confidence).
    pub confidence: Option<f32>,
    /// One line for an operator.
    pub reason: String,
}

/// Fires when the evidence alone is decisive, or leans yes and the LLM says yes; with
/// nothing to check, only on a yes the controller accepted at once. `llm` is the LLM's
/// answer when it was asked ([`needs_llm`]).
pub fn decide(checks: &[Check], llm: Option<&LlmAnswer>) -> Decision {
    let evidence = evidence_says(checks);
    let llm_yes = llm.is_some_and(|a| a.yes);
    let fire = match evidence {
        Some(Says::Yes) => true,
        Some(Says::LeansYes) => llm_yes,
        Some(Says::No | Says::LeansNo) => false,
        None => llm.is_some_and(|a| a.yes && a.accepted),
    };
    let mut decided_by: Vec<DecidedBy> = checks
        .iter()
        .map(|c| DecidedBy {
            evidence: c.evidence.to_owned(),
            score: c.score,
            detail: c.detail.clone(),
        })
        .collect();
    let asked = llm.filter(|_| evidence != Some(Says::Yes));
    if let Some(answer) = asked {
        decided_by.push(DecidedBy {
            evidence: "llm".into(),
            score: answer.support,
            detail: format!(
                "the LLM answered {}{}",
                if answer.yes { "yes" } else { "no" },
                if answer.accepted {
                    ""
                } else {
                    " after a second look"
                }
            ),
        });
    }
    let measured: Vec<f32> = (checks.iter())
        .filter(|c| c.evidence != "motion")
        .map(|c| c.score)
        .collect();
    let confidence = match asked {
        Some(answer) => Some(answer.support),
        None if !measured.is_empty() => Some(measured.iter().sum::<f32>() / measured.len() as f32),
        None => None,
    };
    let details: Vec<&str> = checks.iter().map(|c| c.detail.as_str()).collect();
    let reason = match (evidence, asked) {
        (Some(Says::Yes), _) => format!("the evidence is decisive: {}", details.join("; ")),
        (Some(_), Some(answer)) => format!(
            "{}; the LLM {} (support {:.2})",
            details.join("; "),
            if answer.yes { "agreed" } else { "disagreed" },
            answer.support
        ),
        (Some(_), None) => format!("the evidence says no: {}", details.join("; ")),
        (None, Some(answer)) => format!(
            "nothing to check; the LLM answered {} (support {:.2}{})",
            if answer.yes { "yes" } else { "no" },
            answer.support,
            if answer.accepted {
                ", accepted"
            } else {
                ", not accepted"
            }
        ),
        (None, None) => "nothing to check and the LLM was not asked".into(),
    };
    Decision {
        fire,
        decided_by,
        confidence,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_operators::motion::Motion;
    use argus_operators::BgrImage;
    use chrono::{TimeZone, Utc};

    use super::super::chunk::{ChunkBuilder, ChunkFrame};
    use super::*;
    use crate::objects::{FrameObjects, SeenObject};

    fn chunk(ocr: &[&str], motion: f32, people: Option<usize>) -> Chunk {
        let mut builder = ChunkBuilder::new("gate", "test:", 10.0);
        let start = Utc.timestamp_opt(1_767_261_600, 0).unwrap();
        for s in 0..3 {
            let at = start + chrono::Duration::seconds(s);
            let objects = people.map(|n| {
                Arc::new(FrameObjects {
                    detected: true,
                    tracks: (0..n as u64)
                        .map(|id| SeenObject {
                            track_id: id,
                            class: "person",
                            score: 0.8,
                            bbox: [0.1, 0.1, 0.2, 0.5],
                            first_seen: start,
                            colour: None,
                        })
                        .collect(),
                    events: vec![],
                    zone_counts: vec![],
                })
            });
            builder.push(ChunkFrame {
                wall_time: at,
                image: Arc::new(BgrImage::new(1, 1, vec![0, 0, 0]).unwrap()),
                ocr: ocr.iter().map(|t| (t.to_string(), 0.9)).collect(),
                motion: Motion {
                    level: motion,
                    regions: vec![],
                },
                objects: objects.into_iter().collect(),
            });
        }
        builder.flush().unwrap()
    }

    fn yes(accepted: bool) -> LlmAnswer {
        LlmAnswer {
            yes: true,
            support: 0.7,
            accepted,
        }
    }

    fn no() -> LlmAnswer {
        LlmAnswer {
            yes: false,
            support: 0.6,
            accepted: true,
        }
    }

    const WET: &str = "Is there a wet floor warning sign?";

    fn similar(ocr: f32) -> Similarity {
        Similarity {
            ocr: Some(ocr),
            observations: None,
        }
    }

    #[test]
    fn a_question_names_what_it_is_about() {
        let wet = Topics::of(WET);
        assert!(wet.text && !wet.motion && wet.classes.is_empty());
        assert_eq!(wet.terms, ["wet", "floor"]);
        let walking = Topics::of("Is anyone walking past the vans?");
        assert_eq!(walking.classes, ["person", "truck"]);
        assert!(walking.motion && !walking.text);
        assert_eq!(walking.terms, ["past"]);
        let screen = Topics::of("Is there text on screen?");
        assert!(screen.text && screen.terms.is_empty());
    }

    #[test]
    fn decisive_evidence_fires_without_the_llm() {
        let checks = checks(
            &Topics::of(WET),
            &chunk(&["WET FLOOR CAUTION"], 0.0, None),
            &[],
            similar(0.7),
        );
        assert_eq!(evidence_says(&checks), Some(Says::Yes));
        assert!(!needs_llm(&checks));
        let decision = decide(&checks, None);
        assert!(decision.fire, "{decision:?}");
        let by: Vec<&str> = decision
            .decided_by
            .iter()
            .map(|d| d.evidence.as_str())
            .collect();
        assert_eq!(by, ["text_match", "embedding"]);
        assert!(decision
            .reason
            .contains("2/2 question words on screen (wet, floor)"));
        assert!((decision.confidence.unwrap() - 0.85).abs() < 1e-6);
    }

    #[test]
    fn decisive_evidence_against_holds_even_when_the_llm_says_yes() {
        for (ocr, similarity) in [(&["HIGH VOLTAGE"][..], 0.06), (&[][..], 0.0)] {
            let checks = checks(
                &Topics::of(WET),
                &chunk(ocr, 0.0, None),
                &[],
                similar(similarity),
            );
            assert_eq!(evidence_says(&checks), Some(Says::No), "{ocr:?}");
            assert!(!needs_llm(&checks));
            assert!(!decide(&checks, Some(&yes(true))).fire);
        }
    }

    #[test]
    fn leaning_evidence_fires_only_when_the_llm_agrees() {
        // One of the two words, and a middling similarity: a hard negative or a misread sign.
        let checks = checks(
            &Topics::of(WET),
            &chunk(&["WET PAINT"], 0.0, None),
            &[],
            similar(0.38),
        );
        assert_eq!(evidence_says(&checks), Some(Says::LeansYes));
        assert!(needs_llm(&checks));
        let agreed = decide(&checks, Some(&yes(false)));
        assert!(agreed.fire);
        assert_eq!(agreed.confidence, Some(0.7), "the LLM's support");
        assert_eq!(agreed.decided_by.last().unwrap().evidence, "llm");
        assert!(
            agreed.reason.contains("the LLM agreed"),
            "{}",
            agreed.reason
        );
        let disagreed = decide(&checks, Some(&no()));
        assert!(!disagreed.fire);
        assert!(disagreed.reason.contains("the LLM disagreed"));
    }

    #[test]
    fn objects_and_motion_must_both_hold() {
        let question = Topics::of("Is anyone moving?");
        let walking = checks(
            &question,
            &chunk(&[], 0.05, Some(2)),
            &[],
            Similarity::default(),
        );
        let decision = decide(&walking, None);
        assert!(decision.fire);
        assert!(decision.reason.contains("tracked 2 × person at once"));
        assert_eq!(
            decision.confidence,
            Some(0.8),
            "the detector's, not the motion's"
        );
        let empty = checks(
            &question,
            &chunk(&[], 0.05, Some(0)),
            &[],
            Similarity::default(),
        );
        assert_eq!(evidence_says(&empty), Some(Says::No), "motion but nobody");
        let still = checks(
            &question,
            &chunk(&[], 0.0, Some(2)),
            &[],
            Similarity::default(),
        );
        assert!(
            !decide(&still, Some(&yes(true))).fire,
            "people but no motion"
        );
        // One changed frame (a sign switched at the chunk's start) is not movement.
        let mut cut = chunk(&[], 0.0, None);
        cut.frames[0].motion.level = 0.2;
        let checks_cut = checks(&question, &cut, &[], Similarity::default());
        assert_eq!(evidence_says(&checks_cut), Some(Says::No));
        // A vehicle tracked is needed to say one blocks the gate, not enough.
        let blocking = Topics::of("Is a vehicle blocking the gate?");
        assert_eq!(blocking.terms, ["blocking", "gate"]);
        let mut parked = chunk(&[], 0.0, Some(1));
        for frame in &mut parked.frames {
            let mut objects = (*frame.objects[0]).clone();
            objects.tracks[0].class = "car";
            frame.objects = vec![Arc::new(objects)];
        }
        let parked = checks(&blocking, &parked, &[], Similarity::default());
        assert_eq!(evidence_says(&parked), Some(Says::LeansYes));
        assert!(!decide(&parked, Some(&no())).fire);
        assert!(decide(&parked, Some(&yes(false))).fire);
        // Without the objects stage, motion alone decides.
        let untracked = checks(
            &question,
            &chunk(&[], 0.05, None),
            &[],
            Similarity::default(),
        );
        assert_eq!(untracked.len(), 1);
        assert!(decide(&untracked, None).fire);
    }

    #[test]
    fn a_question_about_nothing_measured_leans_and_the_llm_must_agree() {
        let question = Topics::of("Is the gate open?");
        let observed = ["text on screen: \"GATE OPEN\"".to_owned()];
        let similarity = Similarity {
            ocr: None,
            observations: Some(0.6),
        };
        let checks = checks(&question, &chunk(&[], 0.0, None), &observed, similarity);
        assert_eq!(evidence_says(&checks), Some(Says::LeansYes));
        assert!(decide(&checks, Some(&yes(true))).fire);
        assert!(!decide(&checks, Some(&no())).fire);
        // Nothing at all to check: only an accepted yes fires.
        let nothing = super::checks(
            &Topics::of("Is it?"),
            &chunk(&[], 0.0, None),
            &[],
            Similarity::default(),
        );
        assert!(nothing.is_empty() && needs_llm(&nothing));
        assert!(decide(&nothing, Some(&yes(true))).fire);
        assert!(!decide(&nothing, Some(&yes(false))).fire);
    }
}
