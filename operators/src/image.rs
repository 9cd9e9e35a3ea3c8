use crate::OperatorError;

/// A decoded video frame as packed 8-bit BGR, rows without padding.
///
/// BGR because that is OpenCV's native order and the order the PaddleOCR models were
/// trained on; the ingest asks GStreamer for it directly so no operator converts colours.
#[derive(Clone)]
pub struct BgrImage {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl BgrImage {
    /// Wraps packed BGR bytes; fails when the length does not match `width * height * 3`.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, OperatorError> {
        let expected = width as usize * height as usize * 3;
        if width == 0 || height == 0 {
            return Err(OperatorError::InvalidInput(format!(
                "image of {width}x{height} pixels is empty"
            )));
        }
        if data.len() != expected {
            return Err(OperatorError::InvalidInput(format!(
                "{width}x{height} BGR image needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A copy of the `width` x `height` pixels at (`x`, `y`); fails when they are not all
    /// inside the image.
    pub fn crop(&self, x: u32, y: u32, width: u32, height: u32) -> Result<Self, OperatorError> {
        if width == 0 || height == 0 || x + width > self.width || y + height > self.height {
            return Err(OperatorError::InvalidInput(format!(
                "crop {width}x{height} at ({x}, {y}) is not inside a {}x{} image",
                self.width, self.height
            )));
        }
        let stride = self.width as usize * 3;
        let row = width as usize * 3;
        let mut data = Vec::with_capacity(row * height as usize);
        for line in y as usize..(y + height) as usize {
            let start = line * stride + x as usize * 3;
            data.extend_from_slice(&self.data[start..start + row]);
        }
        Self::new(width, height, data)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Borrows the pixels as a 3-channel OpenCV matrix without copying.
    pub(crate) fn as_mat(
        &self,
    ) -> Result<opencv::boxed_ref::BoxedRef<'_, opencv::core::Mat>, OperatorError> {
        let flat = opencv::core::Mat::new_rows_cols_with_data::<opencv::core::Vec3b>(
            self.height as i32,
            self.width as i32,
            bytes_as_pixels(&self.data),
        )?;
        Ok(flat)
    }
}

impl BgrImage {
    /// A JPEG of this image, scaled down to at most `max_width` pixels wide (aspect kept):
    /// thumbnails for the operator console.
    pub fn to_jpeg(&self, max_width: u32, quality: i32) -> Result<Vec<u8>, OperatorError> {
        use opencv::core::{Size, Vector, VectorToVec};
        let source = self.as_mat()?;
        let mut encoded = Vector::<u8>::new();
        let parameters = Vector::from_slice(&[opencv::imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
        if self.width > max_width {
            let height = (self.height as f64 * max_width as f64 / self.width as f64)
                .round()
                .max(1.0);
            let mut scaled = opencv::core::Mat::default();
            opencv::imgproc::resize(
                &source,
                &mut scaled,
                Size::new(max_width as i32, height as i32),
                0.0,
                0.0,
                opencv::imgproc::INTER_AREA,
            )?;
            opencv::imgcodecs::imencode(".jpg", &scaled, &mut encoded, &parameters)?;
        } else {
            opencv::imgcodecs::imencode(".jpg", &source, &mut encoded, &parameters)?;
        }
        Ok(encoded.to_vec())
    }
}

impl BgrImage {
    /// Decodes an encoded image (JPEG, PNG, BMP, WebP, TIFF...): query images uploaded by
    /// analysts. Anything else is [`OperatorError::InvalidInput`].
    pub fn decode(encoded: &[u8]) -> Result<Self, OperatorError> {
        use opencv::prelude::*;
        let not_an_image = || {
            OperatorError::InvalidInput(
                "not a readable image (JPEG, PNG, BMP, WebP or TIFF expected)".into(),
            )
        };
        if encoded.is_empty() {
            return Err(not_an_image());
        }
        let decoded = opencv::imgcodecs::imdecode(
            &opencv::core::Vector::<u8>::from_slice(encoded),
            opencv::imgcodecs::IMREAD_COLOR,
        )
        .map_err(|_| not_an_image())?;
        if decoded.empty() || decoded.typ() != opencv::core::CV_8UC3 {
            return Err(not_an_image());
        }
        let (width, height) = (decoded.cols() as u32, decoded.rows() as u32);
        let data = if decoded.is_continuous() {
            decoded.data_bytes()?.to_vec()
        } else {
            decoded.try_clone()?.data_bytes()?.to_vec()
        };
        Self::new(width, height, data)
    }
}

impl std::fmt::Debug for BgrImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BgrImage({}x{})", self.width, self.height)
    }
}

fn bytes_as_pixels(bytes: &[u8]) -> &[opencv::core::Vec3b] {
    // SAFETY: Vec3b is `#[repr(C)] [u8; 3]` (alignment 1), and callers pass a length that
    // is a multiple of 3 (checked in `BgrImage::new`).
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / 3) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_are_jpegs_no_wider_than_asked() {
        let image = BgrImage::new(640, 360, vec![128; 640 * 360 * 3]).unwrap();
        let jpeg = image.to_jpeg(160, 80).unwrap();
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF], "JPEG magic");
        let decoded = opencv::imgcodecs::imdecode(
            &opencv::core::Vector::<u8>::from_slice(&jpeg),
            opencv::imgcodecs::IMREAD_COLOR,
        )
        .unwrap();
        use opencv::prelude::*;
        assert_eq!((decoded.cols(), decoded.rows()), (160, 90));
        let back = BgrImage::decode(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (160, 90));
    }

    #[test]
    fn bytes_that_are_not_an_image_are_refused() {
        for bytes in [
            &b""[..],
            b"GIF? no, just text",
            &[0xFF, 0xD8, 0xFF, 0x00, 0x01],
        ] {
            let error = BgrImage::decode(bytes).unwrap_err();
            assert!(
                error.to_string().contains("not a readable image"),
                "{error}"
            );
        }
    }
}
