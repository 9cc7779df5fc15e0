//! QR codes as SVG, so the web UI can show a TOTP enrolment without any
//! script or image fetched from elsewhere.

use std::fmt::Write as _;

use qrcodegen::{QrCode, QrCodeEcc};

/// Modules of white space around the code, as the standard asks.
const QUIET_ZONE: i32 = 4;

/// The text as an SVG QR code (black on white, one path), or `None` when it
/// is too long for any QR version.
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = code.size();
    let side = size + 2 * QUIET_ZONE;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if code.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE);
            }
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_an_otpauth_uri() {
        let svg = svg("otpauth://totp/claw:admin?secret=JBSWY3DPEHPK3PXP&issuer=claw")
            .unwrap_or_default();
        assert!(svg.starts_with("<svg"));
        // Every code has three finder patterns: many dark modules.
        assert!(svg.matches('M').count() > 100);
    }

    #[test]
    fn refuses_what_no_version_holds() {
        assert!(svg(&"x".repeat(5000)).is_none());
    }
}
