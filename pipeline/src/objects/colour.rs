//! A box's coarse colour name ("white", "red", ...), so that "the white van" can be searched
//! for and said in a caption. Each pixel of the box's middle is named by its hue, saturation
//! and brightness, and the box takes the commonest name: a mean colour would turn a white van
//! with dark windows into grey.

use argus_operators::BgrImage;

/// The names a box can get, in the order [`VOTES`] counts them.
pub const COLOUR_NAMES: [&str; 10] = [
    "black", "grey", "white", "red", "orange", "yellow", "green", "blue", "purple", "brown",
];

/// Per colour name, how many times it was measured: a track's colour is its commonest.
pub type Votes = [u32; COLOUR_NAMES.len()];

/// Below this brightness (0–1) everything is black.
const DARK: f32 = 0.2;
/// Below this saturation a pixel is grey or white, whatever its hue.
const PALE: f32 = 0.22;
/// An unsaturated pixel at least this bright is white.
const BRIGHT: f32 = 0.72;

/// The index in [`COLOUR_NAMES`] of the commonest colour in the middle of `bbox` (normalised
/// `[x1, y1, x2, y2]`); `None` for a box too small to measure.
pub fn dominant(image: &BgrImage, bbox: [f32; 4]) -> Option<usize> {
    let (width, height) = (image.width() as f32, image.height() as f32);
    let [x1, y1, x2, y2] = bbox;
    // The middle of the box: its edges are mostly background.
    let (w, h) = (x2 - x1, y2 - y1);
    let left = ((x1 + w * 0.25) * width) as usize;
    let right = ((x2 - w * 0.25) * width).min(width - 1.0) as usize;
    let top = ((y1 + h * 0.2) * height) as usize;
    let bottom = ((y2 - h * 0.3) * height).min(height - 1.0) as usize;
    if right <= left + 1 || bottom <= top + 1 {
        return None;
    }
    // About 400 samples are plenty for a vote and keep this well under a millisecond.
    let step = (((right - left) * (bottom - top)) as f32 / 400.0)
        .sqrt()
        .max(1.0) as usize;
    let mut votes: Votes = Default::default();
    let data = image.data();
    let stride = image.width() as usize * 3;
    for y in (top..bottom).step_by(step) {
        for x in (left..right).step_by(step) {
            let i = y * stride + x * 3;
            votes[name_pixel(data[i + 2], data[i + 1], data[i])] += 1;
        }
    }
    commonest(&votes)
}

/// The most voted colour, if any vote was cast.
pub fn commonest(votes: &Votes) -> Option<usize> {
    let (index, count) = votes.iter().enumerate().max_by_key(|(_, &n)| n)?;
    (*count > 0).then_some(index)
}

/// The colour name (index in [`COLOUR_NAMES`]) of one RGB pixel.
fn name_pixel(r: u8, g: u8, b: u8) -> usize {
    let (r, g, b) = (r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let value = max;
    let saturation = if max > 0.0 { (max - min) / max } else { 0.0 };
    let name = if value < DARK {
        "black"
    } else if saturation < PALE {
        if value >= BRIGHT {
            "white"
        } else {
            "grey"
        }
    } else {
        let chroma = max - min;
        let hue = if max == r {
            60.0 * ((g - b) / chroma).rem_euclid(6.0)
        } else if max == g {
            60.0 * ((b - r) / chroma + 2.0)
        } else {
            60.0 * ((r - g) / chroma + 4.0)
        };
        match hue {
            h if !(15.0..345.0).contains(&h) => {
                if value < 0.45 {
                    "brown"
                } else {
                    "red"
                }
            }
            h if h < 40.0 => {
                if value < 0.6 {
                    "brown"
                } else {
                    "orange"
                }
            }
            h if h < 70.0 => "yellow",
            h if h < 170.0 => "green",
            h if h < 260.0 => "blue",
            _ => "purple",
        }
    };
    COLOUR_NAMES
        .iter()
        .position(|n| *n == name)
        .expect("every name is listed")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40×40 image of `background` with a box of `fill` from (10, 10) to (30, 30).
    fn image(background: [u8; 3], fill: [u8; 3]) -> BgrImage {
        let mut data = Vec::new();
        for y in 0..40 {
            for x in 0..40 {
                let [r, g, b] = if (10..30).contains(&x) && (10..30).contains(&y) {
                    fill
                } else {
                    background
                };
                data.extend([b, g, r]);
            }
        }
        BgrImage::new(40, 40, data).unwrap()
    }

    fn name(rgb: [u8; 3]) -> &'static str {
        COLOUR_NAMES[name_pixel(rgb[0], rgb[1], rgb[2])]
    }

    #[test]
    fn pixels_are_named_by_hue_saturation_and_brightness() {
        assert_eq!(name([250, 250, 245]), "white");
        assert_eq!(name([128, 128, 130]), "grey");
        assert_eq!(name([20, 20, 25]), "black");
        assert_eq!(name([200, 30, 30]), "red");
        assert_eq!(name([30, 60, 200]), "blue");
        assert_eq!(name([40, 160, 60]), "green");
        assert_eq!(name([230, 210, 40]), "yellow");
        assert_eq!(name([240, 140, 20]), "orange");
        assert_eq!(name([110, 70, 30]), "brown");
        assert_eq!(name([140, 40, 170]), "purple");
    }

    #[test]
    fn a_box_takes_the_commonest_colour_of_its_middle_not_of_the_frame() {
        let white_van_on_grey_road = image([120, 120, 120], [240, 240, 236]);
        let bbox = [10.0 / 40.0, 10.0 / 40.0, 30.0 / 40.0, 30.0 / 40.0];
        let colour = dominant(&white_van_on_grey_road, bbox).map(|i| COLOUR_NAMES[i]);
        assert_eq!(colour, Some("white"));
        let red_car = image([120, 120, 120], [190, 20, 25]);
        assert_eq!(
            dominant(&red_car, bbox).map(|i| COLOUR_NAMES[i]),
            Some("red")
        );
        // A box of a pixel or two has no middle to measure.
        assert_eq!(dominant(&red_car, [0.5, 0.5, 0.51, 0.51]), None);
    }
}
