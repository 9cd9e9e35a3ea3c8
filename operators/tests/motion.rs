//! Frame-differencing motion on real consecutive frames and on drawn ones.
//!
//! The real frames are the Middlebury "Basketball" pair that Debian's opencv-doc ships as
//! images (two people throwing a ball, fixed camera). The package's walking-people video,
//! `vtest.avi`, is DivX-coded and OpenCV's `videoio` is not among this crate's features, so
//! the tests stay with images instead of decoding video.

use std::path::Path;

use argus_operators::motion::{Motion, MotionConfig, MotionDetector};
use argus_operators::BgrImage;
use opencv::core::{Mat, Rect, Scalar, CV_8UC3};
use opencv::imgproc;
use opencv::prelude::*;

fn sample(name: &str) -> BgrImage {
    let dir = std::env::var_os("ARGUS_SAMPLE_DIR")
        .expect("ARGUS_SAMPLE_DIR is set by deploy/env.sh (Debian package opencv-doc)");
    let path = Path::new(&dir).join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BgrImage::decode(&bytes).unwrap()
}

/// A black 640x360 frame with a white square of side `side` whose top-left corner is (x, y).
fn square_at(x: i32, y: i32, side: i32) -> BgrImage {
    let mut frame = Mat::new_rows_cols_with_default(360, 640, CV_8UC3, Scalar::all(0.0)).unwrap();
    imgproc::rectangle(
        &mut frame,
        Rect::new(x, y, side, side),
        Scalar::all(255.0),
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )
    .unwrap();
    BgrImage::new(640, 360, frame.data_bytes().unwrap().to_vec()).unwrap()
}

#[test]
fn people_moving_between_real_frames_are_motion() {
    let mut detector = MotionDetector::new(MotionConfig::default());
    let first = detector.observe(&sample("basketball1.png")).unwrap();
    assert_eq!(
        first,
        Motion::default(),
        "nothing to compare the first frame with"
    );

    let motion = detector.observe(&sample("basketball2.png")).unwrap();
    println!("{motion:#?}");
    assert!(
        motion.level > 0.005 && motion.level < 0.5,
        "some, not all, of the frame moves: {motion:?}"
    );
    assert!(!motion.regions.is_empty(), "{motion:?}");
    assert!(motion
        .regions
        .windows(2)
        .all(|pair| pair[0].area >= pair[1].area));
    // The man on the right turns and steps: the largest change. The ball, near the top of
    // the left man's hands at about (0.23, 0.25), moves too.
    assert_eq!(motion.regions[0].place(), "centre right", "{motion:?}");
    assert!(
        motion
            .regions
            .iter()
            .any(|r| r.x <= 0.23 && 0.23 <= r.x + r.width && r.y <= 0.25 && 0.25 <= r.y + r.height),
        "no region around the ball: {motion:?}"
    );
    let covered: f32 = motion.regions.iter().map(|r| r.area).sum();
    assert!(
        covered <= motion.level + 1e-6,
        "{covered} > {}",
        motion.level
    );
    for region in &motion.regions {
        assert!(region.area >= MotionConfig::default().min_region_area);
        assert!(region.x >= 0.0 && region.y >= 0.0 && region.width > 0.0 && region.height > 0.0);
        assert!(region.x + region.width <= 1.0 + 1e-6 && region.y + region.height <= 1.0 + 1e-6);
    }
}

#[test]
fn the_same_frame_twice_is_no_motion() {
    let mut detector = MotionDetector::new(MotionConfig::default());
    let frame = sample("basketball1.png");
    detector.observe(&frame).unwrap();
    assert_eq!(detector.observe(&frame).unwrap(), Motion::default());
}

#[test]
fn a_moved_square_is_found_where_it_went() {
    let mut detector = MotionDetector::new(MotionConfig::default());
    detector.observe(&square_at(40, 250, 60)).unwrap();
    // From the bottom left to the top right: both the place it left and the place it reached
    // changed, as two regions of the same size.
    let motion = detector.observe(&square_at(540, 30, 60)).unwrap();
    println!("{motion:#?}");
    assert_eq!(motion.regions.len(), 2, "{motion:?}");
    let mut places: Vec<&str> = motion.regions.iter().map(|r| r.place()).collect();
    places.sort();
    assert_eq!(places, ["bottom left", "top right"]);
    let square = (60.0 * 60.0) / (640.0 * 360.0);
    for region in &motion.regions {
        assert!(
            (region.area - square).abs() < square * 0.25,
            "{region:?} vs {square}"
        );
    }
    assert!(
        (motion.level - 2.0 * square).abs() < square * 0.5,
        "{motion:?}"
    );

    // A small step: the square's old and new positions overlap and form one region.
    let motion = detector.observe(&square_at(560, 40, 60)).unwrap();
    assert_eq!(motion.regions.len(), 1, "{motion:?}");
    assert_eq!(motion.regions[0].place(), "top right");
}

#[test]
fn specks_are_not_regions() {
    let mut detector = MotionDetector::new(MotionConfig::default());
    detector.observe(&square_at(300, 150, 3)).unwrap();
    let motion = detector.observe(&square_at(100, 100, 3)).unwrap();
    assert!(motion.regions.is_empty(), "{motion:?}");
}

#[test]
fn a_new_frame_size_starts_over() {
    let mut detector = MotionDetector::new(MotionConfig::default());
    detector.observe(&square_at(40, 250, 60)).unwrap();
    let wider = BgrImage::new(800, 360, vec![0; 800 * 360 * 3]).unwrap();
    assert_eq!(detector.observe(&wider).unwrap(), Motion::default());
    let moved = BgrImage::new(800, 360, vec![255; 800 * 360 * 3]).unwrap();
    let motion = detector.observe(&moved).unwrap();
    assert!(motion.level > 0.99, "{motion:?}");
    assert_eq!(motion.regions.len(), 1);
    assert_eq!(motion.regions[0].place(), "centre");
}
