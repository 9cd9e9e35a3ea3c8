//! Count questions ("how many people walked past?", "how many white vans were parked?")
//! answered from the track store: the number is counted, not guessed. A small model reading
//! observation lines cannot add up people across a range; the tracks can.
//!
//! [`CountQuestion::parse`] recognises the question (what is counted, in which colour, and
//! whether it must have moved, stood still, or merely been there), [`CountQuestion::count`]
//! counts the distinct tracks overlapping the range, and the [`TrackCount`] gives the model an
//! observation line to phrase the answer from, and the sentence to publish when its answer
//! does not state the number.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::activity::{nouns, Movement};
use super::colour::COLOUR_NAMES;
use super::tracks::TrackRecord;
use crate::messages::CountedAnswer;

/// What a count question counts: its COCO classes, and for a group of classes how the
/// answer names it (one class is named as captions name it, `activity::nouns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Countable {
    pub classes: &'static [&'static str],
    group: Option<(&'static str, &'static str)>,
}

impl Countable {
    const fn class(class: &'static [&'static str]) -> Self {
        Self {
            classes: class,
            group: None,
        }
    }

    /// Singular and plural.
    pub fn nouns(&self) -> (&'static str, &'static str) {
        self.group.unwrap_or_else(|| nouns(self.classes[0]))
    }
}

const PEOPLE: Countable = Countable::class(&["person"]);
const VEHICLES: Countable = Countable {
    classes: &["car", "truck", "bus", "motorcycle"],
    group: Some(("vehicle", "vehicles")),
};
const CARS: Countable = Countable::class(&["car"]);
const TRUCKS: Countable = Countable::class(&["truck"]);
const BUSES: Countable = Countable::class(&["bus"]);
const MOTORCYCLES: Countable = Countable::class(&["motorcycle"]);
const BICYCLES: Countable = Countable::class(&["bicycle"]);

/// The nouns a question may count, as asked.
const NOUNS: &[(&str, Countable)] = &[
    ("people", PEOPLE),
    ("persons", PEOPLE),
    ("person", PEOPLE),
    ("pedestrians", PEOPLE),
    ("pedestrian", PEOPLE),
    ("men", PEOPLE),
    ("women", PEOPLE),
    ("vehicles", VEHICLES),
    ("vehicle", VEHICLES),
    ("cars", CARS),
    ("car", CARS),
    ("trucks", TRUCKS),
    ("truck", TRUCKS),
    ("vans", TRUCKS),
    ("van", TRUCKS),
    ("lorries", TRUCKS),
    ("lorry", TRUCKS),
    ("buses", BUSES),
    ("bus", BUSES),
    ("motorcycles", MOTORCYCLES),
    ("motorcycle", MOTORCYCLES),
    ("motorbikes", MOTORCYCLES),
    ("motorbike", MOTORCYCLES),
    ("bicycles", BICYCLES),
    ("bicycle", BICYCLES),
    ("bikes", BICYCLES),
    ("bike", BICYCLES),
];

/// The COCO classes a word names as questions say it ("people", "van", "bikes"), if any.
pub fn classes_named(word: &str) -> Option<&'static [&'static str]> {
    NOUNS
        .iter()
        .find(|(noun, _)| *noun == word)
        .map(|(_, counted)| counted.classes)
}

/// Words allowed between "how many" and the noun besides a colour ("how many different
/// people").
const FILLERS: &[&str] = &["different", "distinct", "separate", "individual", "unique"];

/// Which tracks a count question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Those that moved ("walked past", "passed", "crossed", "entered").
    Moved,
    /// Those that stayed where they were ("were parked", "stood").
    Still,
    /// Every one ("were there", "were seen", or no verb at all).
    Any,
}

impl Asked {
    pub fn name(self) -> &'static str {
        match self {
            Asked::Moved => "moved",
            Asked::Still => "still",
            Asked::Any => "any",
        }
    }

    fn admits(self, record: &TrackRecord) -> bool {
        match self {
            Asked::Moved => record.moved(),
            Asked::Still => record.movement == Movement::Still,
            Asked::Any => true,
        }
    }
}

/// A verb phrase of count questions: its words as asked, what it asks for, and how the answer
/// says it (plural, singular).
struct Verb {
    words: &'static str,
    asked: Asked,
    many: &'static str,
    one: &'static str,
}

const fn verb(words: &'static str, asked: Asked, many: &'static str, one: &'static str) -> Verb {
    Verb {
        words,
        asked,
        many,
        one,
    }
}

/// Longer phrases first: the first one found in the question's words after the noun wins.
const VERBS: &[Verb] = &[
    verb("walked past", Asked::Moved, "walked past", "walked past"),
    verb("walk past", Asked::Moved, "walked past", "walked past"),
    verb("walked by", Asked::Moved, "walked by", "walked by"),
    verb("walk by", Asked::Moved, "walked by", "walked by"),
    verb("went past", Asked::Moved, "went past", "went past"),
    verb("go past", Asked::Moved, "went past", "went past"),
    verb("went by", Asked::Moved, "went by", "went by"),
    verb("drove past", Asked::Moved, "drove past", "drove past"),
    verb("drive past", Asked::Moved, "drove past", "drove past"),
    verb("drove by", Asked::Moved, "drove by", "drove by"),
    verb("passed by", Asked::Moved, "passed by", "passed by"),
    verb("passed", Asked::Moved, "passed", "passed"),
    verb("pass", Asked::Moved, "passed", "passed"),
    verb("crossed", Asked::Moved, "crossed", "crossed"),
    verb("cross", Asked::Moved, "crossed", "crossed"),
    verb("entered", Asked::Moved, "entered", "entered"),
    verb("enter", Asked::Moved, "entered", "entered"),
    verb("came through", Asked::Moved, "came through", "came through"),
    verb("went through", Asked::Moved, "went through", "went through"),
    verb("walked", Asked::Moved, "walked", "walked"),
    verb("walking", Asked::Moved, "were walking", "was walking"),
    verb("drove", Asked::Moved, "drove", "drove"),
    verb("driving", Asked::Moved, "were driving", "was driving"),
    verb("moved", Asked::Moved, "moved", "moved"),
    verb("moving", Asked::Moved, "were moving", "was moving"),
    verb("parked", Asked::Still, "were parked", "was parked"),
    verb("standing", Asked::Still, "were standing", "was standing"),
    verb("stood", Asked::Still, "stood", "stood"),
    verb("stopped", Asked::Still, "stopped", "stopped"),
    verb("waiting", Asked::Still, "were waiting", "was waiting"),
    verb("waited", Asked::Still, "waited", "waited"),
];

/// How the answer says tracks that were merely there.
const SEEN: Verb = verb("", Asked::Any, "were seen", "was seen");

/// How the count's observation line starts.
const COUNT_LABEL: &str = "track count";

/// A recognised count question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountQuestion {
    pub counted: Countable,
    /// Only tracks of this colour ("how many white vans").
    pub colour: Option<&'static str>,
    pub asked: Asked,
    /// The answer's verb, plural and singular ("walked past").
    verb_many: &'static str,
    verb_one: &'static str,
}

impl CountQuestion {
    /// The question as a count question: "how many" followed (after at most a colour and a
    /// word like "different") by a noun Argus tracks; `None` for any other question.
    pub fn parse(question: &str) -> Option<Self> {
        let lowered = question.to_lowercase();
        let words: Vec<&str> = lowered
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let start = words.windows(2).position(|w| w == ["how", "many"])? + 2;
        let mut colour = None;
        let mut at = start;
        let counted = loop {
            let word = *words.get(at)?;
            if let Some((_, counted)) = NOUNS.iter().find(|(noun, _)| *noun == word) {
                break *counted;
            }
            match COLOUR_NAMES.iter().find(|&&name| name == word) {
                Some(&name) if colour.is_none() => colour = Some(name),
                _ if FILLERS.contains(&word) => {}
                _ => return None,
            }
            at += 1;
        };
        let rest = &words[at + 1..];
        let verb = VERBS
            .iter()
            .find(|verb| {
                let phrase: Vec<&str> = verb.words.split(' ').collect();
                rest.windows(phrase.len()).any(|w| w == phrase.as_slice())
            })
            .unwrap_or(&SEEN);
        Some(Self {
            counted,
            colour,
            asked: verb.asked,
            verb_many: verb.many,
            verb_one: verb.one,
        })
    }

    /// The distinct tracks of `records` (ended and live ones; a track in both counts once)
    /// that the question asks for and that were in view in `[from, to)`.
    pub fn count(
        &self,
        records: &[TrackRecord],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> TrackCount {
        let tracks: BTreeSet<(DateTime<Utc>, u64)> = records
            .iter()
            .filter(|r| r.overlaps(from, to))
            .filter(|r| self.counted.classes.contains(&r.class.as_str()))
            .filter(|r| self.colour.is_none() || r.colour.as_deref() == self.colour)
            .filter(|r| self.asked.admits(r))
            .map(|r| (r.first_seen, r.track_id))
            .collect();
        TrackCount {
            question: self.clone(),
            count: tracks.len(),
            from,
            to,
        }
    }
}

/// How many tracks answer a count question over a range.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackCount {
    pub question: CountQuestion,
    pub count: usize,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl TrackCount {
    /// "7 people walked past between 10:00:00 and 10:05:00".
    pub fn statement(&self) -> String {
        let question = &self.question;
        let (one, many) = question.counted.nouns();
        let (noun, verb) = if self.count == 1 {
            (one, question.verb_one)
        } else {
            (many, question.verb_many)
        };
        let colour = question.colour.map(|c| format!("{c} ")).unwrap_or_default();
        format!(
            "{} {colour}{noun} {verb} between {} and {}",
            self.count,
            self.from.format("%H:%M:%S"),
            self.to.format("%H:%M:%S")
        )
    }

    /// The observation line the model phrases its answer from.
    pub fn observation(&self) -> String {
        format!("{COUNT_LABEL}: {}", self.statement())
    }

    /// The answer published when the model's does not state the count.
    pub fn sentence(&self) -> String {
        format!("{}.", self.statement())
    }

    /// The answer to publish: the model's own where it states the count in its own words,
    /// else the counted sentence; with what was counted. An answer that copies the count
    /// line's label ("track count: 21 people walked past  The camera recorded 10:00:20", seen
    /// on vtest.avi) is the prompt with noise around it, not a phrasing.
    pub fn publish(&self, answer: String) -> (String, CountedAnswer) {
        let phrased_by_model =
            self.stated_by(&answer) && !answer.to_lowercase().contains(COUNT_LABEL);
        let text = if phrased_by_model {
            answer
        } else {
            self.sentence()
        };
        let question = &self.question;
        let counted = CountedAnswer {
            count: self.count as u32,
            classes: question
                .counted
                .classes
                .iter()
                .map(|c| c.to_string())
                .collect(),
            colour: question.colour.map(str::to_owned),
            movement: question.asked.name().to_owned(),
            phrased_by_model,
        };
        (text, counted)
    }

    /// Whether `answer` states the count and no other number (times aside): "Seven people
    /// walked past." does; "unknown", "5 people walking left to right" (one observation
    /// line's group) or "7 people, 3 of them twice" do not.
    pub fn stated_by(&self, answer: &str) -> bool {
        let lowered = answer.to_lowercase();
        let words: Vec<&str> = lowered
            .split(|c: char| c.is_whitespace() || ",.;!?()\"'".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        // Times ("10:00:05") and dates ("2026-01-01") are not counts.
        let numbers: Vec<usize> = words.iter().filter_map(|w| number(w)).collect();
        let says_none = words
            .iter()
            .any(|w| matches!(*w, "no" | "none" | "nobody" | "nothing"));
        if numbers.iter().any(|&n| n != self.count) {
            return false;
        }
        !numbers.is_empty() || (self.count == 0 && says_none)
    }
}

/// A count written in digits or in words up to twenty.
fn number(word: &str) -> Option<usize> {
    const WORDS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    if word.chars().all(|c| c.is_ascii_digit()) {
        return word.parse().ok();
    }
    WORDS.iter().position(|&w| w == word)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn record(
        id: u64,
        class: &str,
        colour: Option<&str>,
        seen: (i64, i64),
        movement: Movement,
    ) -> TrackRecord {
        TrackRecord {
            track_id: id,
            class: class.into(),
            colour: colour.map(str::to_owned),
            first_seen: at(seen.0),
            last_seen: at(seen.1),
            first_ground: [0.1, 0.5],
            last_ground: [0.9, 0.5],
            movement,
            sightings: 10,
        }
    }

    fn walking() -> Movement {
        Movement::Moving {
            direction: "left to right".into(),
        }
    }

    fn parsed(question: &str) -> (Vec<&'static str>, Option<&'static str>, Asked) {
        let q = CountQuestion::parse(question)
            .unwrap_or_else(|| panic!("not a count question: {question}"));
        (q.counted.classes.to_vec(), q.colour, q.asked)
    }

    #[test]
    fn count_questions_are_recognised_with_class_colour_and_movement() {
        let person = vec!["person"];
        assert_eq!(
            parsed("How many people walked past between 10:00 and 10:05?"),
            (person.clone(), None, Asked::Moved)
        );
        assert_eq!(
            parsed("how many persons passed?"),
            (person.clone(), None, Asked::Moved)
        );
        assert_eq!(
            parsed("How many different people were there?"),
            (person.clone(), None, Asked::Any)
        );
        assert_eq!(
            parsed("How many pedestrians crossed the street"),
            (person, None, Asked::Moved)
        );
        assert_eq!(
            parsed("How many white vans were parked?"),
            (vec!["truck"], Some("white"), Asked::Still)
        );
        assert_eq!(
            parsed("how many vehicles entered"),
            (
                vec!["car", "truck", "bus", "motorcycle"],
                None,
                Asked::Moved
            )
        );
        assert_eq!(parsed("How many cars?"), (vec!["car"], None, Asked::Any));
        assert_eq!(
            parsed("How many trucks drove by the gate?"),
            (vec!["truck"], None, Asked::Moved)
        );
    }

    #[test]
    fn other_questions_are_not_count_questions() {
        for question in [
            "Was anyone at the door?",
            "What text is on screen?",
            "How many times did the gate open?",
            "How much traffic was there?",
            "how many",
            "Many people walked past, did they not?",
            "How many tall people walked past?",
        ] {
            assert_eq!(CountQuestion::parse(question), None, "{question}");
        }
    }

    #[test]
    fn counts_distinct_tracks_of_the_class_that_overlap_the_range_and_moved() {
        let records = vec![
            record(1, "person", None, (10, 20), walking()),
            // The same track as live, then as ended: counted once.
            record(2, "person", None, (30, 40), walking()),
            record(2, "person", None, (30, 45), walking()),
            // Moved before the range only.
            record(3, "person", None, (0, 4), walking()),
            // Still, and seen once.
            record(4, "person", None, (10, 50), Movement::Still),
            record(5, "person", None, (12, 12), Movement::Seen),
            // Not a person.
            record(6, "car", Some("red"), (10, 20), walking()),
            // After the range: first seen at its end.
            record(7, "person", None, (60, 70), walking()),
            // Ids restart with Argus: another track.
            record(1, "person", None, (50, 55), walking()),
        ];
        let walked = CountQuestion::parse("How many people walked past?").unwrap();
        let count = walked.count(&records, at(5), at(60));
        assert_eq!(count.count, 3, "tracks 1, 2 and the second 1");
        assert_eq!(
            count.sentence(),
            "3 people walked past between 10:00:05 and 10:01:00."
        );
        assert_eq!(
            count.observation(),
            "track count: 3 people walked past between 10:00:05 and 10:01:00"
        );
        let there = CountQuestion::parse("How many people were there?").unwrap();
        assert_eq!(there.count(&records, at(5), at(60)).count, 5);
        let standing = CountQuestion::parse("how many people were standing").unwrap();
        let one = standing.count(&records, at(5), at(60));
        assert_eq!(one.count, 1);
        assert_eq!(
            one.sentence(),
            "1 person was standing between 10:00:05 and 10:01:00."
        );
    }

    #[test]
    fn synonyms_count_their_classes_and_colours_filter() {
        let records = vec![
            record(1, "truck", Some("white"), (0, 10), walking()),
            record(2, "truck", Some("blue"), (0, 10), walking()),
            record(3, "car", Some("white"), (0, 10), walking()),
            record(4, "bus", None, (0, 10), walking()),
            record(5, "motorcycle", None, (0, 10), walking()),
            record(6, "bicycle", None, (0, 10), walking()),
            record(7, "person", None, (0, 10), walking()),
        ];
        let count = |question: &str| {
            CountQuestion::parse(question)
                .unwrap()
                .count(&records, at(0), at(10))
        };
        assert_eq!(count("How many vehicles passed?").count, 5);
        assert_eq!(count("How many vans passed?").count, 2);
        assert_eq!(count("How many lorries passed?").count, 2);
        assert_eq!(count("How many cars passed?").count, 1);
        assert_eq!(count("How many bikes passed?").count, 1);
        let white = count("How many white vans drove past?");
        assert_eq!(white.count, 1);
        assert_eq!(
            white.sentence(),
            "1 white van or truck drove past between 10:00:00 and 10:00:10."
        );
    }

    #[test]
    fn an_answer_states_the_count_only_with_that_number_alone() {
        let records: Vec<TrackRecord> = (0..7)
            .map(|id| record(id, "person", None, (0, 10), walking()))
            .collect();
        let seven = CountQuestion::parse("How many people walked past?")
            .unwrap()
            .count(&records, at(0), at(60));
        assert!(seven.stated_by("7 people walked past."));
        assert!(seven.stated_by("Seven people walked past between 10:00:00 and 10:01:00."));
        assert!(seven.stated_by("7"));
        assert!(!seven.stated_by("unknown"));
        assert!(!seven.stated_by("5 people walking left to right"));
        assert!(!seven.stated_by("7 people walked past, 2 of them twice"));
        assert!(!seven.stated_by("Many people walked past."));
        assert!(!seven.stated_by("No one."));
        let none = CountQuestion::parse("How many people walked past?")
            .unwrap()
            .count(&[], at(0), at(60));
        assert!(none.stated_by("No people walked past."));
        assert!(none.stated_by("0"));
        assert!(!none.stated_by("unknown"));
        assert!(!none.stated_by("2 people"));
        let (text, counted) = seven.publish("unknown".into());
        assert_eq!(text, seven.sentence());
        assert!(!counted.phrased_by_model);
        assert_eq!((counted.count, counted.movement.as_str()), (7, "moved"));
        assert_eq!(counted.classes, vec!["person"]);
        let (text, counted) = seven.publish("Seven people walked by.".into());
        assert_eq!(text, "Seven people walked by.");
        assert!(counted.phrased_by_model);
        let copied = format!(
            "10:01:00: {}  The camera recorded 10:01:00",
            seven.observation()
        );
        let (text, counted) = seven.publish(copied);
        assert_eq!(text, seven.sentence());
        assert!(!counted.phrased_by_model);
        assert_eq!(
            none.sentence(),
            "0 people walked past between 10:00:00 and 10:01:00."
        );
    }
}
